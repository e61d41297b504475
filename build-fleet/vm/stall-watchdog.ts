// The kvm driver's no-progress watchdog. A guest that prints nothing (no log line, no control
// line) and whose heartbeats show no CPU use for `stallTimeoutMs` is taken as hung: a deadlocked
// build or a wedged VM would otherwise hold its slot until the job's wall-clock limit (an hour).
// A long silent compile stays alive through its heartbeats (guest/run-job.sh sends one every
// 10 s with the guest's busy CPU ticks); only a step that sleeps silently that long is cut short.

/** A beat counts as progress when the guest used this much CPU since the last (0.2 CPU-s). */
export const HEARTBEAT_BUSY_TICKS = 20; // must match BUSY_TICKS_PER_BEAT in guest/run-job.sh

/** Heartbeat lines are tiny; anything longer than this is cut off rather than buffered. */
const MAX_BEAT_LINE = 64;

export class StallWatchdog {
  readonly #stallTimeoutMs: number;
  readonly #now: () => number;
  #lastProgress: number;
  #lastBusy: number | undefined;
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

  /** Bytes from the heartbeat port: `beat <busy ticks>` lines. Anything else is ignored. */
  heartbeat(chunk: Buffer | string): void {
    const lines = (this.#partial + chunk.toString()).split("\n");
    this.#partial = (lines.pop() ?? "").slice(-MAX_BEAT_LINE);
    for (const line of lines) {
      const match = /^beat (\d{1,15})$/.exec(line.trim());
      if (match === null) continue;
      const busy = Number(match[1]);
      if (this.#lastBusy !== undefined && busy - this.#lastBusy >= HEARTBEAT_BUSY_TICKS)
        this.#lastProgress = this.#now();
      this.#lastBusy = busy;
    }
  }

  /** Milliseconds without progress so far. */
  silentMs(): number {
    return this.#now() - this.#lastProgress;
  }

  stalled(): boolean {
    return this.silentMs() >= this.#stallTimeoutMs;
  }
}
