// BuildObject: one per build (named by the build id). Owns the build's phases and log lines, fans
// them out live to watchers over hibernatable WebSockets, says whether a build token of an attempt
// is still honoured, and when the build ends archives its log to R2, mirrors the outcome to the D1
// `builds` row and announces it on the event queue. The BuildCoordinator decides; this records.
import { DurableObject } from "cloudflare:workers";
import { buildLogKey } from "../schema/blob-keys.ts";
import {
  type BuildLogEntry,
  type BuildLogLine,
  type BuildPhase,
  type BuildRequest,
  type BuildWatchMessage,
  isFinalPhase,
  MAX_BUILD_LOG_BYTES,
  MAX_LOG_LINE_CHARS,
} from "../schema/builds.ts";
import type { EventActor, EventKind, RegistryEvent } from "../schema/events.ts";
import type { ObjectEnv } from "./env.ts";
import { migrate } from "./sql-migrations.ts";

const MIGRATIONS = [
  // `build` holds one row. `request` is null for a build cancelled before the queue consumer
  // recorded it here (the cancel wins; the late request only fills in the details).
  `CREATE TABLE build (
     one INTEGER PRIMARY KEY CHECK (one = 1), build_id TEXT NOT NULL, repository TEXT NOT NULL,
     request TEXT, phase TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0, host TEXT,
     queued_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,
     digest TEXT, pushed_tags TEXT, error TEXT, ended_by TEXT,
     log_bytes INTEGER NOT NULL DEFAULT 0, log_truncated INTEGER NOT NULL DEFAULT 0,
     mirror_pending INTEGER NOT NULL DEFAULT 0, archive_pending INTEGER NOT NULL DEFAULT 0,
     event_pending INTEGER NOT NULL DEFAULT 0, logs_archived INTEGER NOT NULL DEFAULT 0,
     logs_pruned INTEGER NOT NULL DEFAULT 0);
   CREATE TABLE phases (
     seq INTEGER PRIMARY KEY AUTOINCREMENT, phase TEXT NOT NULL, at INTEGER NOT NULL,
     attempt INTEGER NOT NULL, detail TEXT);
   CREATE TABLE log_lines (
     seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, stream TEXT NOT NULL,
     text TEXT NOT NULL, attempt INTEGER NOT NULL);`,
];

/** Log lines stay in this object this long after the end; then pages come from the R2 archive. */
export const BUILD_LOG_RETENTION_MS = 7 * 24 * 3600 * 1000;
/** How soon a failed D1 mirror, R2 archive or event send is tried again. */
const RETRY_MS = 10_000;
/** Lines per message of a watcher's history. */
const HISTORY_CHUNK = 500;
const WATCH_TAG = "watch";

type BuildRow = {
  build_id: string;
  repository: string;
  request: string | null;
  phase: BuildPhase;
  attempt: number;
  host: string | null;
  queued_at: number;
  started_at: number | null;
  finished_at: number | null;
  digest: string | null;
  pushed_tags: string | null;
  error: string | null;
  ended_by: string | null;
  log_bytes: number;
  log_truncated: number;
  mirror_pending: number;
  archive_pending: number;
  event_pending: number;
  logs_archived: number;
  logs_pruned: number;
};

export interface BuildPhaseRecord {
  phase: BuildPhase;
  at: number;
  attempt: number;
  detail?: string;
}

/** The live state of a build, as the builds API shows it. */
export interface BuildState {
  id: string;
  repository: string;
  phase: BuildPhase;
  /** The current (or last) attempt; 0 before the first dispatch. */
  attempt: number;
  host: string | null;
  queuedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  digest: string | null;
  /** The tags the pushed image got (on success). */
  pushedTags: string[];
  error: string | null;
  phases: BuildPhaseRecord[];
  logLines: number;
}

/** How a build ends: from its host (attempt-checked), the coordinator, or a person cancelling. */
export type BuildOutcome =
  | { kind: "complete"; attempt: number; digest: string; tags: string[] }
  | { kind: "error"; attempt: number; error: string }
  /** Decided by the coordinator (attempts exhausted, timed out): no attempt to check. */
  | { kind: "failed"; error: string }
  | { kind: "cancelled"; buildId: string; repository: string; by: EventActor; reason: string };

export interface LogPage {
  lines: BuildLogEntry[];
  /** Pass as `after` for the next page; null when there is nothing more yet. */
  nextAfter: number | null;
  finished: boolean;
}

export class BuildObject extends DurableObject<ObjectEnv> {
  private readonly sql: SqlStorage;
  /** One D1 mirror write at a time, so phases never land out of order. */
  private mirroring: Promise<void> | null = null;
  private mirrorAgain = false;

  constructor(ctx: DurableObjectState, env: ObjectEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ctx.blockConcurrencyWhile(async () => migrate(this.sql, MIGRATIONS));
  }

  // ---- recording (called by the queue consumer and the BuildCoordinator) ---------------------

  /** Records the build (idempotent: a redelivered request changes nothing). */
  create(request: BuildRequest): BuildState {
    const row = this.row();
    if (!row) {
      this.ctx.storage.transactionSync(() => {
        this.sql.exec(
          `INSERT INTO build (one, build_id, repository, request, phase, queued_at)
           VALUES (1, ?, ?, ?, 'queued', ?)`,
          request.buildId,
          request.repository,
          JSON.stringify(request),
          request.requestedAt,
        );
        this.addPhase("queued", request.requestedAt, 0);
      });
    } else if (row.request === null) {
      this.sql.exec(
        "UPDATE build SET request = ?, queued_at = ? WHERE one = 1",
        JSON.stringify(request),
        request.requestedAt,
      );
    }
    return this.state()!;
  }

  /** The request the build was recorded with (the fleet API serves its source archive). */
  request(): BuildRequest | null {
    const row = this.row();
    return row?.request ? (JSON.parse(row.request) as BuildRequest) : null;
  }

  /**
   * The coordinator leased the build to `host` as `attempt`; from now on only that attempt's
   * token and messages count. False when the build has already ended (it must not run).
   */
  assign(attempt: number, host: string): boolean {
    const row = this.row();
    if (!row || isFinalPhase(row.phase)) return false;
    if (attempt < row.attempt) return false;
    if (attempt === row.attempt) return row.host === host;
    const now = Date.now();
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        `UPDATE build SET attempt = ?, host = ?, phase = 'waiting',
           started_at = coalesce(started_at, ?) WHERE one = 1`,
        attempt,
        host,
        now,
      );
      this.addPhase("waiting", now, attempt, `on ${host}`);
      this.insertLines(attempt, [
        { at: now, stream: "system", text: `attempt ${attempt}: dispatched to fleet host ${host}` },
      ]);
    });
    this.broadcastPhase("waiting", now, attempt, `on ${host}`);
    this.mirrorSoon();
    return true;
  }

  /**
   * The attempt will not finish (its host was lost, or handed it back): the build waits for
   * another host. The attempt's token stops being honoured at once.
   */
  async requeue(attempt: number, reason: string, lost: boolean): Promise<void> {
    const row = this.row();
    if (!row || isFinalPhase(row.phase) || attempt !== row.attempt || row.phase === "queued") {
      return;
    }
    const now = Date.now();
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("UPDATE build SET phase = 'queued' WHERE one = 1");
      this.addPhase("queued", now, attempt, reason);
      this.insertLines(attempt, [{ at: now, stream: "system", text: reason }]);
    });
    this.broadcastPhase("queued", now, attempt, reason);
    this.mirrorSoon();
    if (lost) {
      await this.sendEvent(`build:${row.build_id}:retry:${attempt}`, "build.retry", row, {
        attempt,
        reason,
      }).catch((error: unknown) => console.error("build.retry event not queued", error));
    }
  }

  /** A phase reported by the host running `attempt` (non-final phases only). */
  report(attempt: number, phase: BuildPhase, detail?: string): boolean {
    const row = this.row();
    if (!row || isFinalPhase(row.phase) || isFinalPhase(phase) || phase === "queued") return false;
    if (attempt !== row.attempt || row.phase === "queued") return false;
    if (phase === row.phase) return true;
    const now = Date.now();
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("UPDATE build SET phase = ? WHERE one = 1", phase);
      this.addPhase(phase, now, attempt, detail);
    });
    this.broadcastPhase(phase, now, attempt, detail);
    this.mirrorSoon();
    return true;
  }

  /** Log lines from the host running `attempt`; lines of any other attempt are dropped. */
  appendLogs(attempt: number, lines: BuildLogLine[]): number {
    const row = this.row();
    if (!row || isFinalPhase(row.phase) || attempt !== row.attempt || row.phase === "queued") {
      return 0;
    }
    const stored = this.insertLines(attempt, lines);
    if (stored.length > 0) this.broadcast({ type: "lines", lines: stored });
    return stored.length;
  }

  /** Ends the build; false when it had already ended or the outcome is for a stale attempt. */
  async finish(outcome: BuildOutcome): Promise<{ changed: boolean; phase: BuildPhase }> {
    let row = this.row();
    if (!row && outcome.kind === "cancelled") {
      // Cancelled before the queue consumer recorded it here: remember the cancel.
      this.sql.exec(
        `INSERT INTO build (one, build_id, repository, request, phase, queued_at)
         VALUES (1, ?, ?, NULL, 'queued', ?)`,
        outcome.buildId,
        outcome.repository,
        Date.now(),
      );
      row = this.row();
    }
    if (!row) return { changed: false, phase: "queued" };
    if (isFinalPhase(row.phase)) return { changed: false, phase: row.phase };
    if (
      (outcome.kind === "complete" || outcome.kind === "error") &&
      outcome.attempt !== row.attempt
    ) {
      return { changed: false, phase: row.phase };
    }
    const now = Date.now();
    const phase: BuildPhase =
      outcome.kind === "complete"
        ? "complete"
        : outcome.kind === "cancelled"
          ? "cancelled"
          : "error";
    const error =
      outcome.kind === "error" || outcome.kind === "failed"
        ? outcome.error.slice(0, MAX_LOG_LINE_CHARS)
        : null;
    const detail =
      outcome.kind === "cancelled"
        ? `cancelled by ${outcome.by.name ?? outcome.by.kind}: ${outcome.reason}`
        : outcome.kind === "complete"
          ? `pushed ${outcome.digest}`
          : error!;
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        `UPDATE build SET phase = ?, finished_at = ?, digest = ?, pushed_tags = ?, error = ?,
           ended_by = ?, mirror_pending = 1, archive_pending = 1, event_pending = 1 WHERE one = 1`,
        phase,
        now,
        outcome.kind === "complete" ? outcome.digest : null,
        outcome.kind === "complete" ? JSON.stringify(outcome.tags) : null,
        error,
        outcome.kind === "cancelled" ? JSON.stringify(outcome.by) : null,
      );
      this.addPhase(phase, now, row.attempt, detail);
      this.insertLines(row.attempt, [{ at: now, stream: "system", text: detail }], true);
    });
    await this.ctx.storage.setAlarm(now + RETRY_MS);
    this.broadcastPhase(phase, now, row.attempt, detail);
    this.endWatchers();
    await this.flushEnd();
    return { changed: true, phase };
  }

  // ---- reading ------------------------------------------------------------------------------

  state(): BuildState | null {
    const row = this.row();
    if (!row) return null;
    const phases = this.sql
      .exec<{ phase: BuildPhase; at: number; attempt: number; detail: string | null }>(
        "SELECT phase, at, attempt, detail FROM phases ORDER BY seq",
      )
      .toArray()
      .map((p) => ({
        phase: p.phase,
        at: p.at,
        attempt: p.attempt,
        ...(p.detail === null ? {} : { detail: p.detail }),
      }));
    const count = this.sql
      .exec<{ n: number }>("SELECT coalesce(max(seq), 0) AS n FROM log_lines")
      .one().n;
    return {
      id: row.build_id,
      repository: row.repository,
      phase: row.phase,
      attempt: row.attempt,
      host: row.host,
      queuedAt: row.queued_at,
      startedAt: row.started_at,
      finishedAt: row.finished_at,
      digest: row.digest,
      pushedTags: row.pushed_tags ? (JSON.parse(row.pushed_tags) as string[]) : [],
      error: row.error,
      phases,
      logLines: count,
    };
  }

  /** Whether a build token of `attempt` is honoured: the attempt is current and running. */
  tokenActive(attempt: number): boolean {
    const row = this.row();
    return (
      row !== null && !isFinalPhase(row.phase) && row.phase !== "queued" && row.attempt === attempt
    );
  }

  /** Log lines after sequence number `after`, at most `limit`. */
  async logs(after: number, limit: number): Promise<LogPage> {
    const row = this.row();
    if (!row) return { lines: [], nextAfter: null, finished: false };
    const finished = isFinalPhase(row.phase);
    const all = row.logs_pruned ? await this.archivedLines() : null;
    const lines = all
      ? all.filter((line) => line.seq > after).slice(0, limit + 1)
      : this.storedLines(after, limit + 1);
    const page = lines.slice(0, limit);
    const more = lines.length > limit;
    const last = page.at(-1)?.seq ?? after;
    return {
      lines: page,
      // While the build runs there may be more later: the caller resumes after the last line.
      nextAfter: more || !finished ? last : null,
      finished,
    };
  }

  // ---- watchers (the only fetch: a WebSocket upgrade cannot be an RPC result) ---------------

  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return new Response("expected Upgrade: websocket", { status: 426 });
    }
    const after = Number(new URL(request.url).searchParams.get("after") ?? "0");
    const row = this.row();
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, [WATCH_TAG]);
    // History and live lines cannot interleave: nothing below awaits until the history is queued,
    // so no other call runs in between (the archive read only happens once the build has ended).
    if (row?.logs_pruned) {
      const lines = (await this.archivedLines()).filter((line) => line.seq > after);
      this.sendHistory(server, lines, row);
    } else {
      this.sendHistory(server, row ? this.storedLines(after, Number.MAX_SAFE_INTEGER) : [], row);
    }
    return new Response(null, { status: 101, webSocket: client });
  }

  override webSocketMessage(): void {
    // Watchers only listen.
  }

  override webSocketClose(ws: WebSocket, code: number): void {
    try {
      ws.close(code === 1005 ? 1000 : code, "closing");
    } catch {
      // Already closed.
    }
  }

  // ---- after the end: mirror, archive, announce, and later prune ------------------------------

  override async alarm(): Promise<void> {
    const row = this.row();
    if (!row) return;
    if (row.mirror_pending || row.archive_pending || row.event_pending) await this.flushEnd();
    const after = this.row()!;
    const now = Date.now();
    if (
      after.finished_at !== null &&
      after.logs_archived &&
      !after.logs_pruned &&
      now >= after.finished_at + BUILD_LOG_RETENTION_MS
    ) {
      // The archive holds every line; pages are served from it from now on.
      this.ctx.storage.transactionSync(() => {
        this.sql.exec("DELETE FROM log_lines");
        this.sql.exec("UPDATE build SET logs_pruned = 1 WHERE one = 1");
      });
    }
    this.scheduleFollowUp();
  }

  /** Does whatever of mirror / archive / event is still owed; failures wait for the alarm. */
  private async flushEnd(): Promise<void> {
    const row = this.row()!;
    const results = await Promise.allSettled([
      row.mirror_pending ? this.mirror() : Promise.resolve(),
      row.archive_pending ? this.archive(row) : Promise.resolve(),
      row.event_pending ? this.announceEnd(row) : Promise.resolve(),
    ]);
    for (const result of results) {
      if (result.status === "rejected") console.error(`build ${row.build_id}`, result.reason);
    }
    this.scheduleFollowUp();
  }

  private scheduleFollowUp(): void {
    const row = this.row();
    if (!row) return;
    const now = Date.now();
    let next: number | null = null;
    if (row.mirror_pending || row.archive_pending || row.event_pending) next = now + RETRY_MS;
    else if (row.finished_at !== null && row.logs_archived && !row.logs_pruned) {
      next = row.finished_at + BUILD_LOG_RETENTION_MS;
    }
    if (next === null) void this.ctx.storage.deleteAlarm();
    else void this.ctx.storage.setAlarm(next);
  }

  private async archive(row: BuildRow): Promise<void> {
    const lines = this.storedLines(0, Number.MAX_SAFE_INTEGER);
    const body = lines.map((line) => JSON.stringify(line)).join("\n");
    await this.env.BLOBS.put(buildLogKey(row.build_id), body, {
      httpMetadata: { contentType: "application/x-ndjson" },
      customMetadata: { build: row.build_id, repository: row.repository, phase: row.phase },
    });
    this.sql.exec("UPDATE build SET archive_pending = 0, logs_archived = 1 WHERE one = 1");
  }

  private async archivedLines(): Promise<BuildLogEntry[]> {
    const row = this.row()!;
    const object = await this.env.BLOBS.get(buildLogKey(row.build_id));
    if (!object) return [];
    const text = await object.text();
    return text === "" ? [] : text.split("\n").map((line) => JSON.parse(line) as BuildLogEntry);
  }

  private async announceEnd(row: BuildRow): Promise<void> {
    const kind: EventKind =
      row.phase === "complete"
        ? "build.complete"
        : row.phase === "cancelled"
          ? "build.cancelled"
          : "build.failed";
    const request = row.request ? (JSON.parse(row.request) as BuildRequest) : null;
    await this.sendEvent(
      `build:${row.build_id}:end`,
      kind,
      row,
      {
        phase: row.phase,
        attempts: row.attempt,
        durationMs: row.finished_at !== null ? row.finished_at - row.queued_at : null,
        ...(row.digest ? { digest: row.digest } : {}),
        ...(row.pushed_tags ? { tags: JSON.parse(row.pushed_tags) } : {}),
        ...(row.error ? { error: row.error } : {}),
        ...(request?.triggerId ? { triggerId: request.triggerId } : {}),
        ...(request ? { requestedBy: request.requestedBy } : {}),
      },
      row.ended_by ? (JSON.parse(row.ended_by) as EventActor) : undefined,
    );
    this.sql.exec("UPDATE build SET event_pending = 0 WHERE one = 1");
  }

  /** Events with a fixed id: a resend after a failure is stored once by the consumer. */
  private async sendEvent(
    id: string,
    kind: EventKind,
    row: BuildRow,
    metadata: Record<string, unknown>,
    actor: EventActor = { kind: "build", id: row.build_id, name: row.build_id },
  ): Promise<void> {
    const slash = row.repository.indexOf("/");
    const event: RegistryEvent = {
      id,
      at: Date.now(),
      kind,
      ...(slash > 0 ? { namespace: row.repository.slice(0, slash) } : {}),
      repository: row.repository,
      actor,
      metadata: { buildId: row.build_id, ...metadata },
    };
    await this.env.EVENTS.send(event, { contentType: "json" });
  }

  /** Mirrors without waiting (phases while running); a failure is retried by the alarm. */
  private mirrorSoon(): void {
    this.sql.exec("UPDATE build SET mirror_pending = 1 WHERE one = 1");
    this.mirror().catch((error: unknown) => {
      console.error("build mirror to D1 failed", error);
      void this.ctx.storage.setAlarm(Date.now() + RETRY_MS);
    });
  }

  /** Writes the current state to the D1 row; calls during a write coalesce into one more. */
  private mirror(): Promise<void> {
    if (this.mirroring) {
      this.mirrorAgain = true;
      return this.mirroring;
    }
    this.mirroring = (async () => {
      try {
        do {
          this.mirrorAgain = false;
          await this.writeMirror();
        } while (this.mirrorAgain);
      } finally {
        this.mirroring = null;
      }
    })();
    return this.mirroring;
  }

  private async writeMirror(): Promise<void> {
    const row = this.row()!;
    await this.env.DB.prepare(
      `UPDATE builds SET phase = ?, started_at = ?, finished_at = ?, attempts = ?, digest = ?,
         error = ?, host = ? WHERE id = ?`,
    )
      .bind(
        row.phase,
        row.started_at,
        row.finished_at,
        row.attempt,
        row.digest,
        row.error,
        row.host,
        row.build_id,
      )
      .run();
    // Only a write of the newest state clears the flag (another change may have come meanwhile).
    const now = this.row()!;
    if (now.phase === row.phase && now.attempt === row.attempt) {
      this.sql.exec("UPDATE build SET mirror_pending = 0 WHERE one = 1");
    }
  }

  // ---- storage and fan-out helpers ----------------------------------------------------------

  private row(): BuildRow | null {
    return this.sql.exec<BuildRow>("SELECT * FROM build WHERE one = 1").toArray()[0] ?? null;
  }

  private addPhase(phase: BuildPhase, at: number, attempt: number, detail?: string): void {
    this.sql.exec(
      "INSERT INTO phases (phase, at, attempt, detail) VALUES (?, ?, ?, ?)",
      phase,
      at,
      attempt,
      detail ?? null,
    );
  }

  /**
   * Stores lines within the per-build budget (MAX_BUILD_LOG_BYTES): the first line over it is
   * replaced by one note, later ones are dropped. `force` stores system lines regardless.
   */
  private insertLines(attempt: number, lines: BuildLogLine[], force = false): BuildLogEntry[] {
    const stored: BuildLogEntry[] = [];
    const row = this.row()!;
    let bytes = row.log_bytes;
    let truncated = row.log_truncated === 1;
    const insert = (line: BuildLogLine) => {
      const seq = this.sql
        .exec<{ seq: number }>(
          "INSERT INTO log_lines (at, stream, text, attempt) VALUES (?, ?, ?, ?) RETURNING seq",
          line.at,
          line.stream,
          line.text,
          attempt,
        )
        .one().seq;
      stored.push({ seq, ...line });
    };
    this.ctx.storage.transactionSync(() => {
      for (const raw of lines) {
        const text =
          raw.text.length > MAX_LOG_LINE_CHARS
            ? `${raw.text.slice(0, MAX_LOG_LINE_CHARS)}…`
            : raw.text;
        const line = { at: raw.at, stream: raw.stream, text };
        if (force) {
          insert(line);
          continue;
        }
        if (truncated) continue;
        if (bytes + text.length > MAX_BUILD_LOG_BYTES) {
          truncated = true;
          insert({
            at: line.at,
            stream: "system",
            text: `log truncated: more than ${MAX_BUILD_LOG_BYTES} bytes; further lines are dropped`,
          });
          continue;
        }
        bytes += text.length;
        insert(line);
      }
      this.sql.exec(
        "UPDATE build SET log_bytes = ?, log_truncated = ? WHERE one = 1",
        bytes,
        truncated ? 1 : 0,
      );
    });
    return stored;
  }

  private storedLines(after: number, limit: number): BuildLogEntry[] {
    return this.sql
      .exec<{ seq: number; at: number; stream: BuildLogLine["stream"]; text: string }>(
        "SELECT seq, at, stream, text FROM log_lines WHERE seq > ? ORDER BY seq LIMIT ?",
        after,
        limit,
      )
      .toArray()
      .map((line) => ({ seq: line.seq, at: line.at, stream: line.stream, text: line.text }));
  }

  private sendHistory(ws: WebSocket, lines: BuildLogEntry[], row: BuildRow | null): void {
    for (const phase of this.state()?.phases ?? []) send(ws, { type: "phase", ...phase });
    for (let at = 0; at < lines.length; at += HISTORY_CHUNK) {
      send(ws, { type: "lines", lines: lines.slice(at, at + HISTORY_CHUNK) });
    }
    if (row && isFinalPhase(row.phase)) {
      send(ws, endMessage(row));
      ws.close(1000, "build ended");
    }
  }

  private broadcastPhase(phase: BuildPhase, at: number, attempt: number, detail?: string): void {
    this.broadcast({ type: "phase", phase, at, attempt, ...(detail ? { detail } : {}) });
  }

  private broadcast(message: BuildWatchMessage): void {
    for (const ws of this.ctx.getWebSockets(WATCH_TAG)) send(ws, message);
  }

  private endWatchers(): void {
    const row = this.row()!;
    for (const ws of this.ctx.getWebSockets(WATCH_TAG)) {
      send(ws, endMessage(row));
      try {
        ws.close(1000, "build ended");
      } catch {
        // Already closing.
      }
    }
  }
}

function endMessage(row: BuildRow): BuildWatchMessage {
  return {
    type: "end",
    phase: row.phase,
    ...(row.digest ? { digest: row.digest } : {}),
    ...(row.error ? { error: row.error } : {}),
  };
}

/** A watcher that went away is no reason to fail the build's own work. */
function send(ws: WebSocket, message: BuildWatchMessage): void {
  try {
    ws.send(JSON.stringify(message));
  } catch {
    // Closed meanwhile.
  }
}
