// BuildCoordinator: one for the registry (named "global"). Owns the build jobs not yet finished
// (pending, or leased to a fleet host for one attempt), the connected fleet hosts (hibernatable
// WebSockets: each socket's attachment says which host it is), and the leases. Jobs are pushed to
// hosts with free capacity as soon as both exist; heartbeats extend leases; the alarm takes jobs
// back from hosts gone silent and hands them to another host, up to MAX_BUILD_ATTEMPTS. Each
// build's BuildObject records what happens; calls to it that must not be lost go through an
// outbox, delivered in order per build together with the host's forwarded phases and log lines.
import { DurableObject } from "cloudflare:workers";
import {
  BUILD_PHASES,
  BUILD_TIMEOUT_MS,
  type BuildJob,
  type BuildLogLine,
  type BuildPhase,
  type BuildRequest,
  FLEET_HEARTBEAT_MS,
  FLEET_LEASE_MS,
  type FleetCoordinatorMessage,
  type FleetHostMessage,
  isFinalPhase,
  MAX_BUILD_ATTEMPTS,
  MAX_LOG_LINE_CHARS,
  MAX_LOG_LINES_PER_MESSAGE,
} from "../schema/builds.ts";
import type { EventActor } from "../schema/events.ts";
import { issueBuildToken } from "../workers/registry/services/builds-tokens.ts";
import type { BuildObject, BuildOutcome } from "./build-object.ts";
import type { ObjectEnv } from "./env.ts";
import { migrate } from "./sql-migrations.ts";

const MIGRATIONS = [
  // jobs: builds the coordinator still owes a result. `attempt` counts dispatches (the number a
  // host's messages must carry); `lost` counts attempts whose host went silent.
  // finished: builds it is done with, so a redelivered request or a late cancel changes nothing.
  `CREATE TABLE jobs (
     build_id TEXT PRIMARY KEY, repository TEXT NOT NULL, request TEXT NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('pending', 'leased')),
     attempt INTEGER NOT NULL DEFAULT 0, lost INTEGER NOT NULL DEFAULT 0,
     host_id TEXT, last_host TEXT, lease_until INTEGER, deadline INTEGER,
     enqueued_at INTEGER NOT NULL, ready_at INTEGER NOT NULL);
   CREATE INDEX jobs_by_state ON jobs(state, enqueued_at, build_id);
   CREATE INDEX jobs_by_host ON jobs(host_id) WHERE host_id IS NOT NULL;
   CREATE TABLE finished (build_id TEXT PRIMARY KEY, phase TEXT NOT NULL, at INTEGER NOT NULL);
   CREATE INDEX finished_by_time ON finished(at);
   CREATE TABLE outbox (
     id INTEGER PRIMARY KEY AUTOINCREMENT, build_id TEXT NOT NULL, call TEXT NOT NULL,
     next_try INTEGER NOT NULL, tries INTEGER NOT NULL DEFAULT 0);
   CREATE INDEX outbox_by_build ON outbox(build_id, id);`,
];

/** Finished builds are remembered this long: far beyond any queue redelivery. */
const FINISHED_MEMORY_MS = 7 * 24 * 3600 * 1000;
/** How soon an undelivered BuildObject call, or a dispatch that could not be recorded, is retried. */
const RETRY_MS = 5_000;
export const COORDINATOR_NAME = "global";
/** The header the registry Worker names the authenticated fleet credential with. */
export const FLEET_CREDENTIAL_HEADER = "X-Fleet-Credential-Id";
const HOST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const MAX_CONCURRENCY = 256;

/** What a fleet host's socket carries across hibernation. */
interface HostAttachment {
  connectionId: string;
  credentialId: string;
  connectedAt: number;
  lastSeen: number;
  /** Set by `hello`. */
  hostId?: string;
  driver?: string;
  concurrency?: number;
  version?: string;
  /** After a `release` the host is shutting down: it gets no new jobs. */
  draining?: boolean;
}

type JobRow = {
  build_id: string;
  repository: string;
  request: string;
  state: "pending" | "leased";
  attempt: number;
  lost: number;
  host_id: string | null;
  last_host: string | null;
  lease_until: number | null;
  deadline: number | null;
  enqueued_at: number;
  ready_at: number;
};

/** A call to a BuildObject that must happen (at least once; each is idempotent there). */
type OutboxCall =
  | { method: "requeue"; attempt: number; reason: string; lost: boolean }
  | { method: "finish"; outcome: BuildOutcome };

export interface FleetHostView {
  hostId: string;
  driver: string;
  concurrency: number;
  version: string;
  running: number;
  connectedAt: number;
  lastSeen: number;
  draining: boolean;
  credentialId: string;
}

export interface CoordinatorStatus {
  hosts: FleetHostView[];
  pending: number;
  running: number;
}

export class BuildCoordinator extends DurableObject<ObjectEnv> {
  private readonly sql: SqlStorage;
  /** Per build, the tail of its chain of BuildObject calls: they arrive in the order sent. */
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(ctx: DurableObjectState, env: ObjectEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ctx.blockConcurrencyWhile(async () => migrate(this.sql, MIGRATIONS));
  }

  // ---- RPC: the queue consumer and the builds API ---------------------------------------------

  /** Takes a recorded build for dispatch (idempotent by build id). */
  enqueue(request: BuildRequest): { accepted: boolean } {
    const done = this.sql
      .exec("SELECT 1 FROM finished WHERE build_id = ?", request.buildId)
      .toArray();
    if (done.length > 0) return { accepted: false };
    const now = Date.now();
    this.sql.exec(
      `INSERT INTO jobs (build_id, repository, request, state, enqueued_at, ready_at)
       VALUES (?, ?, ?, 'pending', ?, ?) ON CONFLICT (build_id) DO NOTHING`,
      request.buildId,
      request.repository,
      JSON.stringify(request),
      now,
      now,
    );
    this.dispatch();
    return { accepted: true };
  }

  /**
   * Cancels a build at any phase: a pending job is dropped, a running one is stopped on its host.
   * Returns the build's phase afterwards and whether this call changed it.
   */
  async cancel(
    buildId: string,
    repository: string,
    by: EventActor,
    reason: string,
  ): Promise<{ changed: boolean; phase: BuildPhase }> {
    const outcome: BuildOutcome = { kind: "cancelled", buildId, repository, by, reason };
    const job = this.job(buildId);
    if (job) {
      if (job.state === "leased" && job.host_id) {
        this.sendToHost(job.host_id, { type: "cancel", buildId, attempt: job.attempt, reason });
      }
      this.retire(buildId, "cancelled");
      this.queueCall(buildId, { method: "finish", outcome });
      await this.deliver(buildId).catch(() => undefined);
      this.dispatch();
      return { changed: true, phase: "cancelled" };
    }
    // Not dispatched by this object: not yet handed over by the queue consumer, or already
    // finished. An outcome decided here but not yet delivered goes first (it wins over the
    // cancel); otherwise remember the cancel first, so a request arriving meanwhile is not run.
    const decided = this.sql.exec("SELECT 1 FROM finished WHERE build_id = ?", buildId).toArray();
    if (decided.length > 0) await this.deliver(buildId).catch(() => undefined);
    this.sql.exec(
      "INSERT INTO finished (build_id, phase, at) VALUES (?, 'cancelled', ?) ON CONFLICT DO NOTHING",
      buildId,
      Date.now(),
    );
    const result = await this.env.BUILD.getByName(buildId).finish(outcome);
    this.sql.exec("UPDATE finished SET phase = ? WHERE build_id = ?", result.phase, buildId);
    return result;
  }

  /** Closes the connections made with a revoked fleet credential; returns how many. */
  disconnectCredential(credentialId: string): number {
    const sockets = this.ctx.getWebSockets(credentialTag(credentialId));
    for (const ws of sockets) closeSocket(ws, 4003, "fleet credential revoked");
    return sockets.length;
  }

  status(): CoordinatorStatus {
    const hosts: FleetHostView[] = [];
    for (const { attachment } of this.hosts()) {
      if (!attachment.hostId) continue;
      hosts.push({
        hostId: attachment.hostId,
        driver: attachment.driver ?? "",
        concurrency: attachment.concurrency ?? 0,
        version: attachment.version ?? "",
        running: this.leasedCount(attachment.hostId),
        connectedAt: attachment.connectedAt,
        lastSeen: attachment.lastSeen,
        draining: attachment.draining === true,
        credentialId: attachment.credentialId,
      });
    }
    const counts = this.sql
      .exec<{ state: string; n: number }>("SELECT state, count(*) AS n FROM jobs GROUP BY state")
      .toArray();
    const count = (state: string) => counts.find((row) => row.state === state)?.n ?? 0;
    return { hosts, pending: count("pending"), running: count("leased") };
  }

  // ---- fleet hosts: the WebSocket (the only fetch: an upgrade cannot be an RPC result) -------

  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return new Response("expected Upgrade: websocket", { status: 426 });
    }
    const credentialId = request.headers.get(FLEET_CREDENTIAL_HEADER);
    if (!credentialId) return new Response("no fleet credential", { status: 401 });
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, [credentialTag(credentialId)]);
    const now = Date.now();
    const attachment: HostAttachment = {
      connectionId: crypto.randomUUID(),
      credentialId,
      connectedAt: now,
      lastSeen: now,
    };
    server.serializeAttachment(attachment);
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, data: string | ArrayBuffer): Promise<void> {
    const attachment = ws.deserializeAttachment() as HostAttachment;
    const message = parseHostMessage(data);
    if (typeof message === "string") {
      send(ws, { type: "error", message });
      return;
    }
    const now = Date.now();
    attachment.lastSeen = now;
    if (message.type === "hello") {
      this.hello(ws, attachment, message);
      return;
    }
    const hostId = attachment.hostId;
    if (!hostId) {
      ws.serializeAttachment(attachment);
      send(ws, { type: "error", message: "say hello first" });
      return;
    }
    ws.serializeAttachment(attachment);
    switch (message.type) {
      case "heartbeat":
        this.heartbeat(ws, hostId, message.running, now);
        return;
      case "phase": {
        const job = this.currentJob(hostId, message.buildId, message.attempt);
        if (!job) return;
        if (isFinalPhase(message.phase)) {
          send(ws, {
            type: "error",
            message: `phase ${message.phase} is reported with a result message`,
          });
          return;
        }
        this.extendLease(message.buildId, now);
        const { attempt, phase, detail } = message;
        this.chain(message.buildId, (build) => build.report(attempt, phase, detail));
        return;
      }
      case "log": {
        if (!this.currentJob(hostId, message.buildId, message.attempt)) return;
        const { attempt, lines } = message;
        this.chain(message.buildId, (build) => build.appendLogs(attempt, lines));
        return;
      }
      case "result": {
        if (!this.currentJob(hostId, message.buildId, message.attempt)) return;
        const outcome: BuildOutcome = message.ok
          ? {
              kind: "complete",
              attempt: message.attempt,
              digest: message.digest,
              tags: message.tags,
            }
          : { kind: "error", attempt: message.attempt, error: message.error };
        this.retire(message.buildId, message.ok ? "complete" : "error");
        this.queueCall(message.buildId, { method: "finish", outcome });
        void this.deliver(message.buildId).catch(() => undefined);
        this.dispatch();
        return;
      }
      case "release": {
        if (!this.currentJob(hostId, message.buildId, message.attempt)) return;
        attachment.draining = true;
        ws.serializeAttachment(attachment);
        this.requeue(
          message.buildId,
          message.attempt,
          `fleet host ${hostId} handed the build back (${message.reason}); waiting for another host`,
          false,
        );
        this.dispatch();
        return;
      }
    }
  }

  override webSocketClose(ws: WebSocket, code: number): void {
    // Its leases stay until they expire: a host that reconnects in time keeps its jobs.
    closeSocket(ws, code === 1005 ? 1000 : code, "closing");
  }

  override webSocketError(ws: WebSocket): void {
    closeSocket(ws, 1011, "error");
  }

  // ---- the alarm: expired leases, timeouts, undelivered calls --------------------------------

  override async alarm(): Promise<void> {
    const now = Date.now();
    const expired = this.sql
      .exec<JobRow>("SELECT * FROM jobs WHERE state = 'leased' AND lease_until <= ?", now)
      .toArray();
    const silent = new Set<string>();
    for (const job of expired) {
      const hostId = job.host_id!;
      const alive = this.hosts().some(
        ({ attachment }) =>
          attachment.hostId === hostId && attachment.lastSeen > now - FLEET_LEASE_MS,
      );
      if (!alive) silent.add(hostId);
      else {
        this.sendToHost(hostId, {
          type: "cancel",
          buildId: job.build_id,
          attempt: job.attempt,
          reason: "the lease lapsed: the attempt was not reported as running",
        });
      }
      this.loseAttempt(
        job,
        alive
          ? `fleet host ${hostId} no longer reports attempt ${job.attempt} as running`
          : `fleet host ${hostId} stopped heartbeating (no word for ${FLEET_LEASE_MS / 1000} s)`,
      );
    }
    // A silent host is gone: close it, so it is not given the job again.
    for (const { ws, attachment } of this.hosts()) {
      if (attachment.hostId && silent.has(attachment.hostId)) {
        closeSocket(ws, 4000, "lease expired: no heartbeat");
      }
    }
    const overdue = this.sql
      .exec<JobRow>("SELECT * FROM jobs WHERE state = 'leased' AND deadline <= ?", now)
      .toArray();
    for (const job of overdue) {
      const error = `timed out: still running after ${BUILD_TIMEOUT_MS / 60_000} minutes`;
      if (job.host_id) {
        this.sendToHost(job.host_id, {
          type: "cancel",
          buildId: job.build_id,
          attempt: job.attempt,
          reason: error,
        });
      }
      this.retire(job.build_id, "error");
      this.queueCall(job.build_id, { method: "finish", outcome: { kind: "failed", error } });
    }
    this.sql.exec("DELETE FROM finished WHERE at < ?", now - FINISHED_MEMORY_MS);
    const owed = this.sql
      .exec<{ build_id: string }>("SELECT DISTINCT build_id FROM outbox WHERE next_try <= ?", now)
      .toArray();
    await Promise.allSettled(owed.map(({ build_id }) => this.deliver(build_id)));
    this.dispatch();
    await this.scheduleAlarm();
  }

  // ---- host messages --------------------------------------------------------------------------

  private hello(
    ws: WebSocket,
    attachment: HostAttachment,
    message: Extract<FleetHostMessage, { type: "hello" }>,
  ): void {
    // A host that reconnects replaces its older connection, and inherits its leases.
    for (const other of this.hosts()) {
      if (other.ws !== ws && other.attachment.hostId === message.hostId) {
        closeSocket(other.ws, 4001, "replaced by a newer connection of the same host");
      }
    }
    attachment.hostId = message.hostId;
    attachment.driver = message.driver;
    attachment.concurrency = message.concurrency;
    attachment.version = message.version;
    attachment.draining = false;
    ws.serializeAttachment(attachment);
    send(ws, { type: "welcome", heartbeatMs: FLEET_HEARTBEAT_MS, leaseMs: FLEET_LEASE_MS });
    this.dispatch();
  }

  private heartbeat(
    ws: WebSocket,
    hostId: string,
    running: { buildId: string; attempt: number }[],
    now: number,
  ): void {
    for (const { buildId, attempt } of running) {
      if (this.currentJob(hostId, buildId, attempt)) {
        this.extendLease(buildId, now);
      } else {
        // Cancelled, finished, or taken back after the lease lapsed: the host must stop.
        send(ws, {
          type: "cancel",
          buildId,
          attempt,
          reason: "this attempt is no longer current",
        });
      }
    }
  }

  // ---- dispatch ------------------------------------------------------------------------------

  /** Leases pending jobs to hosts with free capacity (synchronously), then sends them. */
  private dispatch(): void {
    const now = Date.now();
    const hosts = this.hosts()
      .filter(
        ({ attachment }) =>
          attachment.hostId &&
          !attachment.draining &&
          attachment.lastSeen > now - FLEET_LEASE_MS &&
          (attachment.concurrency ?? 0) > 0,
      )
      .map(({ attachment }) => ({
        hostId: attachment.hostId!,
        free: attachment.concurrency! - this.leasedCount(attachment.hostId!),
      }))
      .filter((host) => host.free > 0);
    const capacity = hosts.reduce((sum, host) => sum + host.free, 0);
    if (capacity === 0) return;
    const jobs = this.sql
      .exec<JobRow>(
        `SELECT * FROM jobs WHERE state = 'pending' AND ready_at <= ?
         ORDER BY enqueued_at, build_id LIMIT ?`,
        now,
        capacity,
      )
      .toArray();
    for (const job of jobs) {
      const open = hosts.filter((host) => host.free > 0);
      if (open.length === 0) break;
      // The freest host, preferring one that did not just lose or hand back this job.
      open.sort(
        (a, b) =>
          Number(a.hostId === job.last_host) - Number(b.hostId === job.last_host) ||
          b.free - a.free,
      );
      const host = open[0]!;
      host.free -= 1;
      const attempt = job.attempt + 1;
      this.sql.exec(
        `UPDATE jobs SET state = 'leased', attempt = ?, host_id = ?, lease_until = ?, deadline = ?
         WHERE build_id = ?`,
        attempt,
        host.hostId,
        now + FLEET_LEASE_MS,
        now + BUILD_TIMEOUT_MS,
        job.build_id,
      );
      void this.startAttempt(job, attempt, host.hostId).catch((error: unknown) =>
        console.error(`build ${job.build_id}: attempt ${attempt} failed to start`, error),
      );
    }
    void this.scheduleAlarm();
  }

  /** Records the attempt on the BuildObject (so its token is honoured), then sends the job. */
  private async startAttempt(job: JobRow, attempt: number, hostId: string): Promise<void> {
    const request = JSON.parse(job.request) as BuildRequest;
    const build = this.env.BUILD.getByName(job.build_id);
    let assigned: boolean;
    let token: { token: string; expiresAt: number };
    try {
      assigned = await build.assign(attempt, hostId);
      token = await issueBuildToken(
        {
          signingKey: this.env.TOKEN_SIGNING_KEY,
          service: this.env.REGISTRY_SERVICE || "edge-registry",
        },
        {
          id: request.buildId,
          attempt,
          repository: request.repository,
          requester: request.requestedBy,
        },
      );
    } catch (error) {
      console.error(`build ${job.build_id}: attempt ${attempt} not started`, error);
      if (this.currentJob(hostId, job.build_id, attempt)) {
        this.sql.exec(
          `UPDATE jobs SET state = 'pending', host_id = NULL, lease_until = NULL, deadline = NULL,
             ready_at = ? WHERE build_id = ?`,
          Date.now() + RETRY_MS,
          job.build_id,
        );
        await this.scheduleAlarm();
      }
      return;
    }
    if (!this.currentJob(hostId, job.build_id, attempt)) return; // cancelled meanwhile
    if (!assigned) {
      // The build ended without this object (cancelled before dispatch): forget the job.
      const phase = (await build.state())?.phase ?? "cancelled";
      this.retire(job.build_id, phase);
      this.dispatch();
      return;
    }
    const message: FleetCoordinatorMessage = {
      type: "job",
      job: {
        buildId: request.buildId,
        attempt,
        repository: request.repository,
        source: request.source,
        dockerfilePath: request.dockerfilePath,
        contextDir: request.contextDir,
        tags: request.tags,
        token: token.token,
        tokenExpiresAt: token.expiresAt,
      } satisfies BuildJob,
    };
    if (!this.sendToHost(hostId, message)) {
      // The host left between lease and send: the job was never delivered, so no attempt lost.
      this.requeue(
        job.build_id,
        attempt,
        `fleet host ${hostId} disconnected before the job reached it`,
        false,
      );
      this.dispatch();
    }
  }

  private requeue(buildId: string, attempt: number, reason: string, lost: boolean): void {
    const job = this.job(buildId);
    this.sql.exec(
      `UPDATE jobs SET state = 'pending', host_id = NULL, last_host = ?, lease_until = NULL,
         deadline = NULL, ready_at = ?, lost = lost + ? WHERE build_id = ?`,
      job?.host_id ?? null,
      Date.now(),
      lost ? 1 : 0,
      buildId,
    );
    this.queueCall(buildId, { method: "requeue", attempt, reason, lost });
    void this.deliver(buildId).catch(() => undefined);
  }

  /** An attempt whose host is gone: retried elsewhere, or the build fails after the last one. */
  private loseAttempt(job: JobRow, reason: string): void {
    if (job.lost + 1 >= MAX_BUILD_ATTEMPTS) {
      this.retire(job.build_id, "error");
      this.queueCall(job.build_id, {
        method: "finish",
        outcome: {
          kind: "failed",
          error: `gave up after ${MAX_BUILD_ATTEMPTS} attempts lost their fleet host; last: ${reason}`,
        },
      });
      void this.deliver(job.build_id).catch(() => undefined);
      return;
    }
    this.requeue(
      job.build_id,
      job.attempt,
      `${reason}; retrying on another host (attempt ${job.lost + 2} of ${MAX_BUILD_ATTEMPTS})`,
      true,
    );
  }

  /** The coordinator is done with a build: it leaves `jobs` and is remembered as finished. */
  private retire(buildId: string, phase: BuildPhase): void {
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("DELETE FROM jobs WHERE build_id = ?", buildId);
      this.sql.exec(
        `INSERT INTO finished (build_id, phase, at) VALUES (?, ?, ?)
         ON CONFLICT (build_id) DO UPDATE SET phase = excluded.phase`,
        buildId,
        phase,
        Date.now(),
      );
    });
  }

  // ---- BuildObject calls, in order per build -------------------------------------------------

  /** Runs `call` after every earlier call for the same build. Best effort: phases and logs. */
  private chain(buildId: string, call: (build: DurableObjectStub<BuildObject>) => unknown): void {
    const build = this.env.BUILD.getByName(buildId);
    this.inOrder(buildId, async () => {
      try {
        await call(build);
      } catch (error) {
        console.error(`build ${buildId}: forwarding to its BuildObject failed`, error);
      }
    });
  }

  private inOrder<T>(buildId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(buildId) ?? Promise.resolve();
    const next = previous.then(work, work);
    const tail = next.catch(() => undefined);
    this.chains.set(buildId, tail);
    void tail.then(() => {
      if (this.chains.get(buildId) === tail) this.chains.delete(buildId);
    });
    return next;
  }

  private queueCall(buildId: string, call: OutboxCall): void {
    this.sql.exec(
      "INSERT INTO outbox (build_id, call, next_try) VALUES (?, ?, ?)",
      buildId,
      JSON.stringify(call),
      Date.now(),
    );
  }

  /** Delivers a build's outbox in order (after its forwarded messages); stops at a failure. */
  private deliver(buildId: string): Promise<void> {
    return this.inOrder(buildId, async () => {
      const build = this.env.BUILD.getByName(buildId);
      const calls = this.sql
        .exec<{ id: number; call: string; tries: number }>(
          "SELECT id, call, tries FROM outbox WHERE build_id = ? ORDER BY id",
          buildId,
        )
        .toArray();
      for (const row of calls) {
        const call = JSON.parse(row.call) as OutboxCall;
        try {
          if (call.method === "requeue") await build.requeue(call.attempt, call.reason, call.lost);
          else await build.finish(call.outcome);
        } catch (error) {
          console.error(`build ${buildId}: ${call.method} not delivered`, error);
          this.sql.exec(
            "UPDATE outbox SET tries = tries + 1, next_try = ? WHERE id = ?",
            Date.now() + RETRY_MS * Math.min(2 ** row.tries, 60),
            row.id,
          );
          await this.scheduleAlarm();
          throw error;
        }
        this.sql.exec("DELETE FROM outbox WHERE id = ?", row.id);
      }
    });
  }

  // ---- helpers -------------------------------------------------------------------------------

  private job(buildId: string): JobRow | null {
    return (
      this.sql.exec<JobRow>("SELECT * FROM jobs WHERE build_id = ?", buildId).toArray()[0] ?? null
    );
  }

  /** The job, if `hostId` holds its lease for `attempt`; messages for anything else are stale. */
  private currentJob(hostId: string, buildId: string, attempt: number): JobRow | null {
    const job = this.job(buildId);
    return job && job.state === "leased" && job.host_id === hostId && job.attempt === attempt
      ? job
      : null;
  }

  private extendLease(buildId: string, now: number): void {
    this.sql.exec(
      "UPDATE jobs SET lease_until = ? WHERE build_id = ? AND state = 'leased'",
      now + FLEET_LEASE_MS,
      buildId,
    );
  }

  private leasedCount(hostId: string): number {
    return this.sql
      .exec<{ n: number }>(
        "SELECT count(*) AS n FROM jobs WHERE host_id = ? AND state = 'leased'",
        hostId,
      )
      .one().n;
  }

  private hosts(): { ws: WebSocket; attachment: HostAttachment }[] {
    return this.ctx.getWebSockets().flatMap((ws) => {
      if (ws.readyState !== WebSocket.OPEN) return [];
      const attachment = ws.deserializeAttachment() as HostAttachment | null;
      return attachment ? [{ ws, attachment }] : [];
    });
  }

  /** Sends to the host's current connection; false when it has none. */
  private sendToHost(hostId: string, message: FleetCoordinatorMessage): boolean {
    for (const { ws, attachment } of this.hosts()) {
      if (attachment.hostId === hostId && send(ws, message)) return true;
    }
    return false;
  }

  /** The alarm wakes for the earliest lease expiry, deadline, retry or memory cleanup. */
  private async scheduleAlarm(): Promise<void> {
    const next = this.sql
      .exec<{ at: number | null }>(
        `SELECT min(at) AS at FROM (
           SELECT min(lease_until) AS at FROM jobs WHERE state = 'leased'
           UNION ALL SELECT min(deadline) FROM jobs WHERE state = 'leased'
           UNION ALL SELECT min(ready_at) FROM jobs WHERE state = 'pending' AND ready_at > ?
           UNION ALL SELECT min(next_try) FROM outbox
           UNION ALL SELECT min(at) + ? FROM finished)`,
        Date.now(),
        FINISHED_MEMORY_MS,
      )
      .one().at;
    if (next === null) return;
    const current = await this.ctx.storage.getAlarm();
    if (current === null || next < current) await this.ctx.storage.setAlarm(next);
  }
}

function credentialTag(credentialId: string): string {
  return `credential:${credentialId}`;
}

function send(ws: WebSocket, message: FleetCoordinatorMessage): boolean {
  try {
    ws.send(JSON.stringify(message));
    return true;
  } catch {
    return false;
  }
}

function closeSocket(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // Already closed.
  }
}

// ---- the host protocol, checked at the edge of the object ------------------------------------

const HOST_PHASES = BUILD_PHASES.filter((phase) => phase !== "queued");
const STREAMS = ["stdout", "stderr", "system"];
const BUILD_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** The message, or why it is refused (sent back to the host as an `error`). */
export function parseHostMessage(data: string | ArrayBuffer): FleetHostMessage | string {
  if (typeof data !== "string") return "messages are JSON text";
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return "messages are JSON text";
  }
  if (typeof value !== "object" || value === null) return "a message is a JSON object";
  const m = value as Record<string, unknown>;
  const isAttempt = (v: unknown) => Number.isInteger(v) && (v as number) >= 1;
  const isText = (v: unknown, max: number) => typeof v === "string" && v.length <= max;
  const buildRef = () =>
    typeof m.buildId === "string" && BUILD_ID.test(m.buildId) && isAttempt(m.attempt);
  switch (m.type) {
    case "hello":
      if (typeof m.hostId !== "string" || !HOST_ID.test(m.hostId)) {
        return "hello.hostId must be 1-128 letters, digits, . _ : -";
      }
      if (
        !Number.isInteger(m.concurrency) ||
        (m.concurrency as number) < 0 ||
        (m.concurrency as number) > MAX_CONCURRENCY
      ) {
        return `hello.concurrency must be an integer from 0 to ${MAX_CONCURRENCY}`;
      }
      if (!isText(m.driver, 64) || !isText(m.version, 64)) {
        return "hello.driver and hello.version must be strings of at most 64 characters";
      }
      return value as FleetHostMessage;
    case "heartbeat":
      if (
        !Array.isArray(m.running) ||
        m.running.length > MAX_CONCURRENCY ||
        !m.running.every(
          (r: unknown) =>
            typeof r === "object" &&
            r !== null &&
            typeof (r as Record<string, unknown>).buildId === "string" &&
            isAttempt((r as Record<string, unknown>).attempt),
        )
      ) {
        return "heartbeat.running must list {buildId, attempt}";
      }
      return value as FleetHostMessage;
    case "phase":
      if (!buildRef()) return "phase needs buildId and attempt";
      if (!HOST_PHASES.includes(m.phase as Exclude<BuildPhase, "queued">)) {
        return `phase.phase must be one of ${HOST_PHASES.join(", ")}`;
      }
      if (m.detail !== undefined && !isText(m.detail, MAX_LOG_LINE_CHARS)) {
        return "phase.detail must be a string";
      }
      return value as FleetHostMessage;
    case "log":
      if (!buildRef()) return "log needs buildId and attempt";
      if (
        !Array.isArray(m.lines) ||
        m.lines.length > MAX_LOG_LINES_PER_MESSAGE ||
        !m.lines.every(isLogLine)
      ) {
        return `log.lines must be at most ${MAX_LOG_LINES_PER_MESSAGE} {at, stream, text}`;
      }
      return value as FleetHostMessage;
    case "result":
      if (!buildRef()) return "result needs buildId and attempt";
      if (m.ok === true) {
        if (typeof m.digest !== "string" || !/^sha256:[0-9a-f]{64}$/.test(m.digest)) {
          return "result.digest must be a sha256 digest";
        }
        if (!Array.isArray(m.tags) || !m.tags.every((tag) => isText(tag, 128))) {
          return "result.tags must be a list of tags";
        }
        return value as FleetHostMessage;
      }
      if (m.ok === false && isText(m.error, 64 * 1024)) return value as FleetHostMessage;
      return "result needs ok: true with digest and tags, or ok: false with error";
    case "release":
      if (!buildRef()) return "release needs buildId and attempt";
      if (!isText(m.reason, 1024)) return "release.reason must be a string";
      return value as FleetHostMessage;
    default:
      return `unknown message type ${JSON.stringify(m.type)}`;
  }
}

function isLogLine(value: unknown): value is BuildLogLine {
  if (typeof value !== "object" || value === null) return false;
  const line = value as Record<string, unknown>;
  return (
    typeof line.at === "number" &&
    Number.isFinite(line.at) &&
    STREAMS.includes(line.stream as string) &&
    typeof line.text === "string" &&
    line.text.length <= 1024 * 1024
  );
}
