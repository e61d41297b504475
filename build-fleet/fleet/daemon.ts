// The fleet host: takes the jobs the coordinator pushes (up to its concurrency), runs each with
// the job runner, reports phases, batched logs and results, honours cancels, and on shutdown stops
// taking jobs, lets running ones finish within a grace period and hands the rest back.
import type { BuildJob, FleetCoordinatorMessage, FleetHostMessage } from "../../schema/builds.ts";
import type { SandboxDriver } from "../drivers/driver.ts";
import { FleetConnection } from "./connection.ts";
import { type AbortReason, type JobEnd, type JobRunnerDeps, runJob } from "./job-runner.ts";
import { LogBatcher } from "./log-batcher.ts";
import type { RegistryClient } from "./registry-client.ts";

export const FLEET_VERSION = "0.1.0";

export interface DaemonOptions {
  registry: RegistryClient;
  /** Where the fleet WebSocket is, when not on the registry's own URL. */
  coordinatorUrl?: URL;
  credential: string;
  hostId: string;
  concurrency: number;
  driver: SandboxDriver;
  workDir: string;
  /** Environment of helper programs (never the daemon's own). */
  env: NodeJS.ProcessEnv;
  allowLocalGit: boolean;
  jobTimeoutMs: number;
  log(text: string): void;
  /** Runs one job; the real runner unless a test replaces it. */
  runJob?: typeof runJob;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

interface RunningJob {
  job: BuildJob;
  controller: AbortController;
  done: Promise<void>;
}

export class FleetDaemon {
  readonly #options: DaemonOptions;
  readonly #connection: FleetConnection;
  readonly #running = new Map<string, RunningJob>();
  #draining = false;
  #stopped: Promise<void> | undefined;

  constructor(options: DaemonOptions) {
    this.#options = options;
    this.#connection = new FleetConnection({
      registryUrl: options.coordinatorUrl ?? options.registry.url,
      credential: options.credential,
      hello: () => ({
        type: "hello",
        hostId: options.hostId,
        driver: options.driver.name,
        // A draining host takes nothing new; saying so keeps the coordinator from sending any.
        concurrency: this.#draining ? 0 : options.concurrency,
        version: FLEET_VERSION,
      }),
      running: () =>
        [...this.#running.values()].map(({ job }) => ({
          buildId: job.buildId,
          attempt: job.attempt,
        })),
      onMessage: (message) => this.#onMessage(message),
      log: options.log,
      initialBackoffMs: options.initialBackoffMs,
      maxBackoffMs: options.maxBackoffMs,
    });
  }

  get connection(): FleetConnection {
    return this.#connection;
  }

  /** The attempts running now. */
  get running(): { buildId: string; attempt: number }[] {
    return [...this.#running.values()].map(({ job }) => ({
      buildId: job.buildId,
      attempt: job.attempt,
    }));
  }

  start(): void {
    this.#connection.start();
  }

  /**
   * Stops taking jobs, waits up to `graceMs` for the running ones, hands back those still
   * running (`release`, after killing their sandbox), then closes the connection. Idempotent.
   */
  shutdown(graceMs: number): Promise<void> {
    this.#stopped ??= this.#shutdown(graceMs);
    return this.#stopped;
  }

  async #shutdown(graceMs: number): Promise<void> {
    this.#draining = true;
    this.#connection.sayHello();
    const all = () => Promise.all([...this.#running.values()].map((running) => running.done));
    if (this.#running.size > 0) {
      this.#options.log(
        `fleet: shutting down: waiting up to ${Math.round(graceMs / 1000)} s for ${this.#running.size} build(s)`,
      );
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([all(), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
    }
    this.releaseNow();
    await all();
    await this.#connection.close();
  }

  /** Kills every running build's sandbox and hands the build back to the coordinator. */
  releaseNow(): void {
    this.#draining = true;
    for (const running of this.#running.values()) {
      const reason: AbortReason = { kind: "release", reason: "the fleet host is shutting down" };
      running.controller.abort(reason);
    }
  }

  #onMessage(message: FleetCoordinatorMessage): void {
    switch (message.type) {
      case "job":
        this.#take(message.job);
        return;
      case "cancel": {
        const running = this.#running.get(message.buildId);
        if (running === undefined || running.job.attempt !== message.attempt) return;
        this.#options.log(
          `fleet: build ${message.buildId}#${message.attempt} cancelled: ${message.reason}`,
        );
        const reason: AbortReason = { kind: "cancel", reason: message.reason };
        running.controller.abort(reason);
        return;
      }
      case "error":
        this.#options.log(`fleet: the coordinator says: ${message.message}`);
        return;
      case "welcome":
        return;
    }
  }

  #take(job: BuildJob): void {
    const current = this.#running.get(job.buildId);
    if (current !== undefined && current.job.attempt === job.attempt) return;
    if (this.#draining || this.#running.size >= this.#options.concurrency) {
      this.#send({
        type: "release",
        buildId: job.buildId,
        attempt: job.attempt,
        reason: this.#draining
          ? "the fleet host is shutting down"
          : "the fleet host is at capacity",
      });
      // A release marks the host draining at the coordinator; a host that is not says hello again.
      if (!this.#draining) this.#connection.sayHello();
      return;
    }
    // A newer attempt of a build this host still runs replaces it (the old one is stale).
    current?.controller.abort({
      kind: "cancel",
      reason: "superseded by a newer attempt",
    } satisfies AbortReason);
    const receivedAt = Date.now();
    const controller = new AbortController();
    const running: RunningJob = { job, controller, done: Promise.resolve() };
    running.done = this.#run(job, controller.signal, receivedAt).finally(() => {
      if (this.#running.get(job.buildId) === running) this.#running.delete(job.buildId);
    });
    this.#running.set(job.buildId, running);
  }

  async #run(job: BuildJob, signal: AbortSignal, receivedAt: number): Promise<void> {
    const { buildId, attempt } = job;
    const label = `${buildId}#${attempt}`;
    this.#options.log(
      `fleet: build ${label}: ${job.repository}:${job.tags.join(",")} with the ${this.#options.driver.name} driver`,
    );
    const batcher = new LogBatcher((lines) => this.#send({ type: "log", buildId, attempt, lines }));
    const deps: JobRunnerDeps = {
      driver: this.#options.driver,
      registry: this.#options.registry,
      workDir: this.#options.workDir,
      env: this.#options.env,
      allowLocalGit: this.#options.allowLocalGit,
      timeoutMs: this.#options.jobTimeoutMs,
    };
    const warning = this.#options.driver.startupWarning;
    if (warning) {
      // The driver's banner as one log line: each build's log says what isolated it.
      batcher.add("system", warning.replace(/^!+\s*/gm, "").replaceAll("\n", " "));
    }
    let end: JobEnd;
    try {
      end = await (this.#options.runJob ?? runJob)(
        job,
        deps,
        {
          phase: (phase, detail) => {
            batcher.flush();
            this.#send({
              type: "phase",
              buildId,
              attempt,
              phase,
              ...(detail === undefined ? {} : { detail }),
            });
          },
          log: (stream, text) => batcher.add(stream, text),
        },
        signal,
        receivedAt,
      );
    } catch (error) {
      end = {
        kind: "error",
        error: `fleet host error: ${(error as Error).message}`,
        timings: { receivedAt },
      };
    }
    if (end.kind === "error") batcher.add("system", `build failed: ${end.error}`);
    batcher.flush();
    const { timings } = end;
    const since = (at: number | undefined) =>
      at === undefined ? "-" : `${at - timings.receivedAt} ms`;
    switch (end.kind) {
      case "complete":
        this.#send({
          type: "result",
          buildId,
          attempt,
          ok: true,
          digest: end.digest,
          tags: end.tags,
        });
        this.#options.log(
          `fleet: build ${label} pushed ${end.digest} (building after ${since(timings.buildingAt)}, pushed after ${since(timings.pushedAt)})`,
        );
        return;
      case "error":
        this.#send({ type: "result", buildId, attempt, ok: false, error: end.error });
        this.#options.log(`fleet: build ${label} failed: ${end.error}`);
        return;
      case "aborted":
        // A cancelled attempt is already over at the coordinator; a released one goes elsewhere.
        if (end.reason.kind === "release") {
          this.#send({ type: "release", buildId, attempt, reason: end.reason.reason });
          this.#options.log(`fleet: build ${label} handed back: ${end.reason.reason}`);
        } else {
          this.#options.log(`fleet: build ${label} stopped: ${end.reason.reason}`);
        }
        return;
    }
  }

  #send(message: FleetHostMessage): void {
    this.#connection.send(message);
  }
}
