// NamespaceObject: one per namespace (user or organization). Owns the namespace's storage
// accounting (per blob: its size and how many of the namespace's repositories reference it), the
// usage that follows from it, the hard limit and warning threshold, and the warning's state.
//
// Usage is the sum of the sizes of the blobs referenced by at least one repository, kept exact
// incrementally: each RepositoryObject sends a +1 when a blob gains its first reference in that
// repository and a -1 when it loses its last (quota_outbox there, exactly once by delta id), so a
// layer shared by two repositories of the namespace counts once. Nothing here ever scans.
import { DurableObject } from "cloudflare:workers";
import type { RegistryEvent } from "../schema/events.ts";
import type { Digest } from "../schema/oci/reference.ts";
import type { QuotaAdmission, QuotaDelta, QuotaView } from "../schema/rpc.ts";
import type { ObjectEnv } from "./env.ts";
import { migrate } from "./sql-migrations.ts";

const MIGRATIONS = [
  `CREATE TABLE blobs (
     digest TEXT PRIMARY KEY, size INTEGER NOT NULL, repositories INTEGER NOT NULL);
   CREATE TABLE quota (
     id INTEGER PRIMARY KEY CHECK (id = 1), usage_bytes INTEGER NOT NULL, blob_count INTEGER NOT NULL,
     limit_bytes INTEGER, warning_percent INTEGER NOT NULL, warned INTEGER NOT NULL);
   INSERT INTO quota (id, usage_bytes, blob_count, limit_bytes, warning_percent, warned)
     VALUES (1, 0, 0, NULL, 80, 0);
   CREATE TABLE applied_deltas (id TEXT PRIMARY KEY, applied_at INTEGER NOT NULL);
   CREATE INDEX applied_deltas_by_time ON applied_deltas(applied_at);
   CREATE TABLE event_outbox (id TEXT PRIMARY KEY, body TEXT NOT NULL, created_at INTEGER NOT NULL);`,
];

/** The warning threshold of a namespace nobody configured, in percent of its limit (as above). */
export const DEFAULT_WARNING_PERCENT = 80;
/** Delivered delta ids are remembered this long: far beyond any retry of the same delivery. */
const DELTA_MEMORY_MS = 7 * 24 * 3600 * 1000;
/** How soon undelivered events are retried. */
const EVENT_RETRY_MS = 5_000;

/**
 * The object of the repositories outside any namespace (single-component names, which only
 * superusers may create): "/" can never be a namespace, since a namespace is what precedes one.
 */
const ROOT_OBJECT_NAME = "/";

/**
 * The namespace of a repository: its first path component, "" for single-component names (the
 * rule of workers/registry/auth/access.ts `namespaceOf`; Durable Objects do not import the Worker).
 */
export function namespaceOfRepository(repository: string): string {
  const slash = repository.indexOf("/");
  return slash < 0 ? "" : repository.slice(0, slash);
}

/** The name of the NamespaceObject that accounts for `namespace`. */
export function namespaceObjectName(namespace: string): string {
  return namespace === "" ? ROOT_OBJECT_NAME : namespace;
}

type QuotaRow = {
  usage_bytes: number;
  blob_count: number;
  limit_bytes: number | null;
  warning_percent: number;
  warned: number;
};

export class NamespaceObject extends DurableObject<ObjectEnv> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: ObjectEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ctx.blockConcurrencyWhile(async () => migrate(this.sql, MIGRATIONS));
  }

  describe(): QuotaView {
    return viewOf(this.quota());
  }

  /** How many repositories of the namespace reference a blob (0 when none). */
  references(digest: Digest): number {
    return (
      this.sql
        .exec<{ repositories: number }>("SELECT repositories FROM blobs WHERE digest = ?", digest)
        .toArray()[0]?.repositories ?? 0
    );
  }

  /**
   * Applies reference deltas exactly once each (a redelivered id is skipped) and, if usage crossed
   * the warning threshold upwards, announces it. Deltas of one repository arrive in the order
   * they were committed; the bookkeeping below would still be exact if they did not, since a
   * blob counts while its reference count is positive, whatever order brought it there.
   */
  async applyDeltas(deltas: QuotaDelta[]): Promise<{ applied: number }> {
    const now = Date.now();
    let applied = 0;
    this.ctx.storage.transactionSync(() => {
      let usage = 0;
      let count = 0;
      for (const { id, digest, size, delta } of deltas) {
        const fresh = this.sql.exec(
          "INSERT INTO applied_deltas (id, applied_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
          id,
          now,
        ).rowsWritten;
        if (fresh === 0) continue;
        applied++;
        const before = this.sql
          .exec<{ size: number; repositories: number }>(
            "SELECT size, repositories FROM blobs WHERE digest = ?",
            digest,
          )
          .toArray()[0];
        const references = (before?.repositories ?? 0) + delta;
        const counted = (before?.repositories ?? 0) > 0;
        if (references > 0 && !counted) {
          usage += size;
          count++;
        } else if (references <= 0 && counted) {
          usage -= before?.size ?? size;
          count--;
        }
        if (references === 0) this.sql.exec("DELETE FROM blobs WHERE digest = ?", digest);
        else {
          this.sql.exec(
            `INSERT INTO blobs (digest, size, repositories) VALUES (?, ?, ?)
             ON CONFLICT (digest) DO UPDATE SET size = excluded.size, repositories = excluded.repositories`,
            digest,
            size,
            references,
          );
        }
      }
      if (usage !== 0 || count !== 0) {
        this.sql.exec(
          "UPDATE quota SET usage_bytes = usage_bytes + ?, blob_count = blob_count + ?",
          usage,
          count,
        );
        this.checkWarning(now);
      }
      this.sql.exec("DELETE FROM applied_deltas WHERE applied_at < ?", now - DELTA_MEMORY_MS);
    });
    await this.flushEvents();
    return { applied };
  }

  /**
   * Whether an upload may start: `blob` is what a monolithic push or a mount would add (its size
   * null when not declared), null for a plain session whose bytes are not known yet.
   */
  admitUpload(blob: { digest: Digest; size: number | null } | null): QuotaAdmission {
    if (blob === null) return this.admission(0, true);
    if (this.references(blob.digest) > 0) return { admitted: true };
    return this.admission(blob.size ?? 0, blob.size === null);
  }

  /** Whether a manifest may be pushed: only the blobs the namespace does not count yet add bytes. */
  admitManifest(blobs: { digest: Digest; size: number }[]): QuotaAdmission {
    const fresh = new Map<string, number>();
    for (const blob of blobs) {
      if (!fresh.has(blob.digest) && this.references(blob.digest) === 0) {
        fresh.set(blob.digest, blob.size);
      }
    }
    let newBytes = 0;
    for (const size of fresh.values()) newBytes += size;
    return this.admission(newBytes, false);
  }

  /**
   * Sets the hard limit and, when given, the warning threshold (superusers, through the
   * management API). A namespace already past the new threshold is warned now.
   */
  async setLimit(limitBytes: number, warningPercent: number | null): Promise<QuotaView> {
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        "UPDATE quota SET limit_bytes = ?, warning_percent = COALESCE(?, warning_percent)",
        limitBytes,
        warningPercent,
      );
      this.checkWarning(Date.now());
    });
    await this.flushEvents();
    return this.describe();
  }

  /** Removes the hard limit (usage stays counted); returns whether there was one. */
  clearLimit(): { removed: boolean } {
    const removed = this.quota().limit_bytes !== null;
    this.sql.exec("UPDATE quota SET limit_bytes = NULL, warned = 0");
    return { removed };
  }

  override async alarm(): Promise<void> {
    await this.flushEvents();
  }

  // ---- internals -----------------------------------------------------------------------------

  private admission(newBytes: number, unknownBytes: boolean): QuotaAdmission {
    const quota = this.quota();
    const limit = quota.limit_bytes;
    if (limit === null) return { admitted: true };
    const usage = quota.usage_bytes;
    // Bytes not known yet are refused only when no byte fits any more.
    if (usage + newBytes > limit || (unknownBytes && usage >= limit)) {
      return { admitted: false, usageBytes: usage, limitBytes: limit, newBytes };
    }
    return { admitted: true };
  }

  /**
   * Re-evaluates the warning after usage or the limit changed, inside the caller's transaction:
   * an upward crossing of the threshold queues one `quota.warning`; falling below re-arms it.
   */
  private checkWarning(now: number): void {
    const quota = this.quota();
    if (quota.limit_bytes === null) return;
    const threshold = (quota.limit_bytes * quota.warning_percent) / 100;
    const above = quota.usage_bytes >= threshold;
    if (above && !quota.warned) {
      this.sql.exec("UPDATE quota SET warned = 1");
      this.queueEvent(now, "quota.warning", {
        usageBytes: quota.usage_bytes,
        limitBytes: quota.limit_bytes,
        warningPercent: quota.warning_percent,
        thresholdBytes: Math.ceil(threshold),
      });
    } else if (!above && quota.warned) {
      this.sql.exec("UPDATE quota SET warned = 0");
    }
  }

  private queueEvent(now: number, kind: "quota.warning", metadata: Record<string, unknown>): void {
    const name = this.ctx.id.name;
    const event: RegistryEvent = {
      id: crypto.randomUUID(),
      at: now,
      kind,
      ...(name && name !== ROOT_OBJECT_NAME ? { namespace: name } : {}),
      actor: { kind: "system" },
      metadata,
    };
    this.sql.exec(
      "INSERT INTO event_outbox (id, body, created_at) VALUES (?, ?, ?)",
      event.id,
      JSON.stringify(event),
      now,
    );
  }

  /**
   * Sends committed events to the queue. The event was decided in the same transaction as the
   * usage change, so a crash between the two cannot lose or repeat it; a failed send stays in
   * the outbox for the alarm, and the consumer stores each event id once.
   */
  private async flushEvents(): Promise<void> {
    const rows = this.sql
      .exec<{ id: string; body: string }>(
        "SELECT id, body FROM event_outbox ORDER BY created_at LIMIT 100",
      )
      .toArray();
    if (rows.length === 0) return;
    try {
      await this.env.EVENTS.sendBatch(
        rows.map((row) => ({ body: JSON.parse(row.body) as RegistryEvent, contentType: "json" })),
      );
      for (const row of rows) this.sql.exec("DELETE FROM event_outbox WHERE id = ?", row.id);
    } catch (error) {
      console.error("quota events not queued, will retry", error);
      const current = await this.ctx.storage.getAlarm();
      if (current === null) await this.ctx.storage.setAlarm(Date.now() + EVENT_RETRY_MS);
    }
  }

  private quota(): QuotaRow {
    return this.sql.exec<QuotaRow>("SELECT * FROM quota WHERE id = 1").toArray()[0]!;
  }
}

function viewOf(quota: QuotaRow): QuotaView {
  return {
    usageBytes: quota.usage_bytes,
    limitBytes: quota.limit_bytes,
    warningPercent: quota.warning_percent,
    blobs: quota.blob_count,
  };
}
