// Shared helpers for the build dispatch suites (builds-*.test.ts): build requests delivered through
// the registry Worker's own queue handler, a fake fleet host that is a real WebSocket client of
// /fleet/v1/connect (through SELF), log watchers over the builds API, and ways to reach into the
// coordinator (lease clocks, its tables) to drive leases and alarms without waiting.
import {
  createExecutionContext,
  createMessageBatch,
  env,
  getQueueResult,
  runInDurableObject,
  SELF,
} from "cloudflare:test";
import { expect } from "vitest";
import type { BuildCoordinator } from "../../durable-objects/build-coordinator.ts";
import type {
  BuildJob,
  BuildRequest,
  BuildWatchMessage,
  FleetCoordinatorMessage,
  FleetHostMessage,
} from "../../schema/builds.ts";
import worker from "../../workers/registry/index.ts";
import { ORIGIN } from "./helpers.ts";
import { create, type UserFixture, uniqueName } from "./identity-fixtures.ts";

export const BOOTSTRAP_FLEET_CREDENTIAL = env.FLEET_CREDENTIAL!;

export function coordinator(): DurableObjectStub<BuildCoordinator> {
  return env.BUILD_COORDINATOR.getByName("global");
}

/** A repository with a writer (may cancel) and a reader (may only watch), made in D1. */
export async function buildWorld(): Promise<{
  repository: string;
  writer: UserFixture;
  reader: UserFixture;
  outsider: UserFixture;
}> {
  return create(async (b) => {
    const writer = await b.user();
    const reader = await b.user();
    const outsider = await b.user();
    const org = b.org();
    const repository = b.repository(`${org}/${uniqueName("app")}`);
    b.grant(repository, writer, "write");
    b.grant(repository, reader, "read");
    return { repository, writer, reader, outsider };
  });
}

export function buildRequest(
  repository: string,
  requestedBy: UserFixture,
  overrides: Partial<BuildRequest> = {},
): BuildRequest {
  return {
    buildId: crypto.randomUUID(),
    repository,
    source: {
      kind: "git",
      cloneUrl: "https://git.example.test/app.git",
      ref: "refs/heads/main",
      commit: "0123456789abcdef0123456789abcdef01234567",
    },
    dockerfilePath: "Dockerfile",
    contextDir: ".",
    tags: ["latest"],
    requestedBy: { kind: "user", id: requestedBy.id, name: requestedBy.name },
    requestedAt: Date.now(),
    ...overrides,
  };
}

/** Runs the Worker's queue handler on a `builds` batch, as Queues would; returns the outcome. */
export async function deliver(...bodies: unknown[]) {
  const batch = createMessageBatch(
    "builds",
    bodies.map((body, i) => ({
      id: `m${i}-${crypto.randomUUID()}`,
      timestamp: Date.now(),
      attempts: 1,
      body,
    })),
  );
  const ctx = createExecutionContext();
  await worker.queue(batch, env);
  return getQueueResult(batch, ctx);
}

/** Polls until `check` stops throwing (state reached asynchronously: D1 mirrors, forwarding). */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 3000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > until) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

/** A WebSocket client whose messages can be awaited in order. */
class Inbox<M extends { type: string }> {
  readonly received: M[] = [];
  private waiters: (() => void)[] = [];
  closed: { code: number; reason: string } | null = null;

  constructor(readonly ws: WebSocket) {
    ws.accept();
    ws.addEventListener("message", (event) => {
      this.received.push(JSON.parse(event.data as string) as M);
      this.wake();
    });
    ws.addEventListener("close", (event) => {
      this.closed = { code: event.code, reason: event.reason };
      this.wake();
    });
  }

  private wake(): void {
    const waiters = this.waiters.splice(0);
    for (const waiter of waiters) waiter();
  }

  /** The first message received (or arriving) that matches, removed from the inbox. */
  async next<T extends M["type"]>(
    type: T,
    match: (message: Extract<M, { type: T }>) => boolean = () => true,
    timeoutMs = 3000,
  ): Promise<Extract<M, { type: T }>> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const index = this.received.findIndex(
        (m) => m.type === type && match(m as Extract<M, { type: T }>),
      );
      if (index >= 0) return this.received.splice(index, 1)[0] as Extract<M, { type: T }>;
      if (this.closed) throw new Error(`closed (${this.closed.code}) while waiting for ${type}`);
      const left = until - Date.now();
      if (left <= 0) {
        throw new Error(
          `no ${type} message; got ${JSON.stringify(this.received.map((m) => m.type))}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits until the server closed the socket. */
  async closedWith(timeoutMs = 3000): Promise<{ code: number; reason: string }> {
    await eventually(() => {
      if (!this.closed) throw new Error("still open");
    }, timeoutMs);
    return this.closed!;
  }
}

/** Opens /fleet/v1/connect with a credential; the raw response when the upgrade is refused. */
export async function connectFleet(credential: string | null): Promise<Response> {
  const headers: Record<string, string> = { Upgrade: "websocket" };
  if (credential !== null) headers.Authorization = `Bearer ${credential}`;
  return SELF.fetch(`${ORIGIN}/fleet/v1/connect`, { headers });
}

/** A fleet host as the build-fleet daemon would be, minus the building. */
export class FakeHost extends Inbox<FleetCoordinatorMessage> {
  constructor(
    ws: WebSocket,
    readonly hostId: string,
  ) {
    super(ws);
  }

  static async connect(
    options: { hostId?: string; concurrency?: number; credential?: string } = {},
  ): Promise<FakeHost> {
    const res = await connectFleet(options.credential ?? BOOTSTRAP_FLEET_CREDENTIAL);
    if (res.status !== 101 || !res.webSocket) {
      throw new Error(`fleet connect refused: ${res.status} ${await res.text()}`);
    }
    const host = new FakeHost(res.webSocket, options.hostId ?? uniqueName("host"));
    host.send({
      type: "hello",
      hostId: host.hostId,
      driver: "fake",
      concurrency: options.concurrency ?? 1,
      version: "test",
    });
    await host.next("welcome");
    return host;
  }

  send(message: FleetHostMessage | Record<string, unknown>): void {
    this.ws.send(JSON.stringify(message));
  }

  async job(buildId?: string): Promise<BuildJob> {
    const message = await this.next(
      "job",
      (m) => buildId === undefined || m.job.buildId === buildId,
    );
    return message.job;
  }

  phase(job: BuildJob, phase: "pulling" | "building" | "pushing", detail?: string): void {
    this.send({
      type: "phase",
      buildId: job.buildId,
      attempt: job.attempt,
      phase,
      ...(detail ? { detail } : {}),
    });
  }

  log(job: BuildJob, ...texts: string[]): void {
    this.send({
      type: "log",
      buildId: job.buildId,
      attempt: job.attempt,
      lines: texts.map((text) => ({ at: Date.now(), stream: "stdout", text })),
    });
  }

  succeed(job: BuildJob, digest = `sha256:${"ab".repeat(32)}`): void {
    this.send({
      type: "result",
      buildId: job.buildId,
      attempt: job.attempt,
      ok: true,
      digest,
      tags: job.tags,
    });
  }

  fail(job: BuildJob, error: string): void {
    this.send({ type: "result", buildId: job.buildId, attempt: job.attempt, ok: false, error });
  }

  heartbeat(...jobs: BuildJob[]): void {
    this.send({
      type: "heartbeat",
      running: jobs.map((j) => ({ buildId: j.buildId, attempt: j.attempt })),
    });
  }

  close(): void {
    try {
      this.ws.close(1000, "done");
    } catch {
      // Already closed.
    }
  }
}

/** A log watcher over the builds API (`?follow=1`, WebSocket). */
export class Watcher extends Inbox<BuildWatchMessage> {
  static async open(
    repository: string,
    buildId: string,
    authorization: string,
    after = 0,
  ): Promise<Watcher> {
    const res = await watchRequest(repository, buildId, authorization, after);
    if (res.status !== 101 || !res.webSocket) {
      throw new Error(`watch refused: ${res.status} ${await res.text()}`);
    }
    return new Watcher(res.webSocket);
  }

  /** Every line text received so far (in order). */
  texts(): string[] {
    return this.received.flatMap((m) => (m.type === "lines" ? m.lines.map((l) => l.text) : []));
  }
}

export function watchRequest(
  repository: string,
  buildId: string,
  authorization: string | null,
  after = 0,
): Promise<Response> {
  const headers: Record<string, string> = { Upgrade: "websocket" };
  if (authorization) headers.Authorization = authorization;
  return SELF.fetch(
    `${ORIGIN}/api/v1/repositories/${repository}/builds/${buildId}/logs?follow=1&after=${after}`,
    { headers },
  );
}

export function bearerOf(user: UserFixture): string {
  return `Bearer ${user.appToken}`;
}

/** A call to the real Worker's management API as `user` (app token). */
export function apiAs(
  user: UserFixture | null,
  method: string,
  path: string,
  body?: unknown,
): Promise<Response> {
  const headers: Record<string, string> = {};
  if (user) headers.Authorization = bearerOf(user);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return SELF.fetch(`${ORIGIN}/api/v1${path}`, {
    method,
    headers,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

export async function expectJson<T>(res: Response, status: number): Promise<T> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  return JSON.parse(text) as T;
}

// ---- reaching into the coordinator ------------------------------------------------------------

export type JobRow = {
  build_id: string;
  state: string;
  attempt: number;
  lost: number;
  host_id: string | null;
  lease_until: number | null;
};

export function coordinatorJob(buildId: string): Promise<JobRow | undefined> {
  return runInDurableObject(
    coordinator(),
    (_object, state) =>
      state.storage.sql.exec<JobRow>("SELECT * FROM jobs WHERE build_id = ?", buildId).toArray()[0],
  );
}

/**
 * Makes time pass for a host without waiting: its leases lapse and its last word is older than a
 * lease, as if it had been silent that long. Then the alarm runs.
 */
export async function silenceHost(hostId: string): Promise<void> {
  await runInDurableObject(coordinator(), (_object, state) => {
    const past = Date.now() - 60_000;
    state.storage.sql.exec("UPDATE jobs SET lease_until = ? WHERE host_id = ?", past, hostId);
    for (const ws of state.getWebSockets()) {
      const attachment = ws.deserializeAttachment() as { hostId?: string; lastSeen: number };
      if (attachment?.hostId === hostId) ws.serializeAttachment({ ...attachment, lastSeen: past });
    }
  });
}

/** Forgets every job and host (each test starts with an empty fleet). */
export async function resetCoordinator(): Promise<void> {
  await runInDurableObject(coordinator(), async (_object, state) => {
    for (const ws of state.getWebSockets()) {
      try {
        ws.close(1000, "test reset");
      } catch {
        // Already closed.
      }
    }
    state.storage.sql.exec("DELETE FROM jobs");
    state.storage.sql.exec("DELETE FROM outbox");
    await state.storage.deleteAlarm();
  });
}
