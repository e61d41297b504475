// The kvm driver's no-progress watchdog. A VM that sends nothing for `stallTimeoutMs` (no log
// line, no control line, no heartbeat) is wedged: without this it would hold its slot until the
// job's wall-clock limit (an hour). guest/run-job.sh sends a heartbeat every 3 s while the agent
// runs, so a long silent step is still alive; a hang inside a live guest is left to the timeout.
//
// Why heartbeats are liveness only, not "the guest used CPU": while any RUN step runs, buildah
// polls `runc state` every 100 ms, which under TCG keeps a vCPU ~80% busy even for `sleep`.

/** Heartbeat lines are tiny; anything longer than this is cut off rather than buffered. */
const MAX_BEAT_LINE = 64;

export class StallWatchdog {
  readonly #stallTimeoutMs: number;
  readonly #now: () => number;
  #lastProgress: number;
  #partial = "";

  constructor(stallTimeoutMs: number, now: () => number = Date.now) {
    if (!Number.isFinite(stallTimeoutMs) || stallTimeoutMs <= 0)
      throw new Error("stallTimeoutMs must be a positive number of milliseconds");
    this.#stallTimeoutMs = stallTimeoutMs;
    this.#now = now;
    this.#lastProgress = now();
  }

  /** The guest printed something (a log or a control line). */
  output(): void {
    this.#lastProgress = this.#now();
  }

  /** Bytes from the heartbeat port: each whole `beat <uptime>` line is a sign of life. */
  heartbeat(chunk: Buffer | string): void {
    const lines = (this.#partial + chunk.toString()).split("\n");
    this.#partial = (lines.pop() ?? "").slice(-MAX_BEAT_LINE);
    if (lines.some((line) => /^beat [\d.]{1,20}$/.test(line.trim())))
      this.#lastProgress = this.#now();
  }

  /** Milliseconds without progress so far. */
  silentMs(): number {
    return this.#now() - this.#lastProgress;
  }

  stalled(): boolean {
    return this.silentMs() >= this.#stallTimeoutMs;
  }
}
