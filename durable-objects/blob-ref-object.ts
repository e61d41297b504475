// BlobRefObject: sharded by digest prefix. Owns, per blob, its size, where its copies are, how
// many manifests reference it and how many repositories link it, and when it may be swept; its
// alarm deletes the blobs nothing has counted for a grace period (docs/garbage-collection.md).
import { DurableObject } from "cloudflare:workers";
import type { Digest } from "../schema/oci/reference.ts";
import type { BlobRecord, RefDelta, ShardGcStats } from "../schema/rpc.ts";
import type { ObjectEnv } from "./env.ts";
import { flushGcEvents, GC_EVENTS_TABLE, inChunks, recordGcEvent } from "./gc-events.ts";
import { gcGraceMs } from "./gc-grace.ts";
import { MeteredSql } from "./gc-stats.ts";
import { migrate } from "./sql-migrations.ts";

const MIGRATIONS = [
  `CREATE TABLE blobs (
     digest TEXT PRIMARY KEY, size INTEGER NOT NULL, refcount INTEGER NOT NULL DEFAULT 0,
     created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
   CREATE TABLE copies (
     digest TEXT NOT NULL, region TEXT NOT NULL, r2_key TEXT NOT NULL, PRIMARY KEY (digest, region));
   CREATE TABLE applied_deltas (id TEXT PRIMARY KEY, applied_at INTEGER NOT NULL);
   CREATE INDEX applied_deltas_by_time ON applied_deltas(applied_at);`,
  // Garbage collection. `links`: repositories the blob is linked to; a link counts like a
  // reference, so a blob readable through some repository is never swept. `due_at`: set while
  // nothing counts the blob (grace end), null otherwise. `doomed_copies`: R2 objects of swept
  // blobs whose deletion is under way (the sweep's intent, so a crash mid-sweep resumes).
  // Blobs stored before this have no due time: they are swept once something touches them.
  `ALTER TABLE blobs ADD COLUMN links INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE blobs ADD COLUMN due_at INTEGER;
   CREATE INDEX blobs_by_due ON blobs(due_at) WHERE due_at IS NOT NULL;
   CREATE TABLE doomed_copies (
     r2_key TEXT PRIMARY KEY, digest TEXT NOT NULL, region TEXT NOT NULL, size INTEGER NOT NULL);
   ${GC_EVENTS_TABLE}`,
];

/** Delivered delta ids are remembered this long: far beyond any retry of the same delivery. */
const DELTA_MEMORY_MS = 7 * 24 * 3600 * 1000;
/** Blobs marked in one transaction (and R2 keys deleted in one call, which takes ≤ 1000). */
const SWEEP_BATCH = 100;
/** Blobs swept in one alarm; more due means the alarm comes straight back. */
const SWEEP_PER_ALARM = 1000;
/** How soon a failed R2 delete or event send is retried. */
const RETRY_MS = 30_000;
/** Blobs listed in one `blob.collect` event (the audit log bounds metadata size). */
const BLOBS_PER_EVENT = 100;

export { blobRefShardName } from "./blob-ref-shards.ts";

type BlobRow = { size: number; refcount: number; links: number; due_at: number | null };

export class BlobRefObject extends DurableObject<ObjectEnv> {
  private readonly sql: SqlStorage;
  /** Every statement below goes through it: rows read and written are counted (gcStats). */
  private readonly db: MeteredSql;
  private readonly graceMs: number;
  private readonly work = {
    sweeps: 0,
    blobsSwept: 0,
    bytesSwept: 0,
    r2DeleteCalls: 0,
    r2KeysDeleted: 0,
  };
  /** The alarm as this object last set it (only this class sets it): arming needs no read. */
  private alarmAt: number | null = null;

  constructor(ctx: DurableObjectState, env: ObjectEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.db = new MeteredSql(this.sql);
    this.graceMs = gcGraceMs(env);
    ctx.blockConcurrencyWhile(async () => {
      migrate(this.sql, MIGRATIONS);
      this.alarmAt = await ctx.storage.getAlarm();
    });
  }

  get(digest: Digest): BlobRecord | null {
    const row = this.row(digest);
    if (!row) return null;
    const copies = this.db
      .all<{ region: string; r2_key: string }>(
        "SELECT region, r2_key FROM copies WHERE digest = ? ORDER BY region",
        digest,
      )
      .map((copy) => ({ region: copy.region, key: copy.r2_key }));
    return {
      digest,
      size: row.size,
      refcount: row.refcount,
      links: row.links,
      collectableAt: row.due_at,
      copies,
    };
  }

  /**
   * `get` for an upload that is about to reuse the stored copy instead of its own bytes: the
   * blob's grace starts again, so the link claim that follows finds it still there. Null when it
   * is gone (or being swept): the upload then keeps its own bytes.
   */
  revive(digest: Digest): BlobRecord | null {
    if (!this.row(digest)) return null;
    this.restartGrace(digest, Date.now());
    return this.get(digest);
  }

  /**
   * Records a freshly written copy. When the region already holds a copy (two uploads of the
   * same bytes raced), the existing copy wins and the caller deletes its own. Either way the
   * blob's grace starts again: an upload revives it.
   */
  registerCopy(
    digest: Digest,
    size: number,
    region: string,
    key: string,
  ): { key: string; created: boolean } {
    const now = Date.now();
    return this.ctx.storage.transactionSync(() => {
      const existing = this.db.all<{ r2_key: string }>(
        "SELECT r2_key FROM copies WHERE digest = ? AND region = ?",
        digest,
        region,
      )[0];
      if (existing) {
        this.restartGrace(digest, now);
        return { key: existing.r2_key, created: false };
      }
      this.db.run(
        `INSERT INTO blobs (digest, size, refcount, created_at, updated_at) VALUES (?, ?, 0, ?, ?)
         ON CONFLICT (digest) DO UPDATE SET size = excluded.size, updated_at = excluded.updated_at`,
        digest,
        size,
        now,
        now,
      );
      this.db.run(
        "INSERT INTO copies (digest, region, r2_key) VALUES (?, ?, ?)",
        digest,
        region,
        key,
      );
      this.restartGrace(digest, now);
      return { key, created: true };
    });
  }

  /**
   * A repository is about to link the blob (upload or mount): counts the link before the
   * repository commits it, so no sweep can take a blob some repository already shows. Refused
   * when the blob, or the copy `key` the link would point at, is gone or being swept; the
   * repository then takes the claim back (`undoes`) whatever the answer, unless it linked.
   */
  claimLink(digest: Digest, key: string, claimId: string): { granted: boolean } {
    const now = Date.now();
    return this.ctx.storage.transactionSync(() => {
      if (!this.db.exists("SELECT 1 FROM copies WHERE digest = ? AND r2_key = ?", digest, key)) {
        return { granted: false };
      }
      // A claim id is used once; one seen before (granted, or already taken back) is refused.
      if (!this.remember(claimId, now)) return { granted: false };
      this.db.run(
        "UPDATE blobs SET links = links + 1, due_at = NULL, updated_at = ? WHERE digest = ?",
        now,
        digest,
      );
      return { granted: true };
    });
  }

  /** Applies reference and link deltas exactly once each (a redelivered id is skipped). */
  applyDeltas(deltas: RefDelta[]): { applied: number } {
    const now = Date.now();
    let applied = 0;
    this.ctx.storage.transactionSync(() => {
      const touched = new Set<Digest>();
      for (const { id, digest, delta, kind, undoes } of deltas) {
        if (!this.remember(id, now)) continue;
        // Taking back a claim that never arrived: remembering its id refuses it forever.
        if (undoes !== undefined && this.remember(undoes, now)) continue;
        const column = kind === "link" ? "links" : "refcount";
        this.db.run(
          `INSERT INTO blobs (digest, size, refcount, links, created_at, updated_at)
           VALUES (?1, 0, ?2, ?3, ?4, ?4)
           ON CONFLICT (digest) DO UPDATE SET ${column} = ${column} + ?5, updated_at = ?4`,
          digest,
          column === "refcount" ? delta : 0,
          column === "links" ? delta : 0,
          now,
          delta,
        );
        touched.add(digest);
        applied++;
      }
      // Any change of references restarts the grace of a blob nothing counts any more.
      for (const digest of touched) this.restartGrace(digest, now);
      this.db.run("DELETE FROM applied_deltas WHERE applied_at < ?", now - DELTA_MEMORY_MS);
    });
    return { applied };
  }

  /** The sweep work since the object started (see gc-stats.ts). */
  gcStats(): ShardGcStats {
    const pending = this.sql
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM blobs WHERE due_at IS NOT NULL")
      .one().n;
    return {
      ...this.work,
      rowsRead: this.db.rowsRead,
      rowsWritten: this.db.rowsWritten,
      pending,
    };
  }

  // ---- the sweep ------------------------------------------------------------------------------

  /**
   * Deletes blobs whose grace ended with nothing counting them, oldest due first, in batches:
   * work in proportion to the garbage (an index on the due time), never a listing of the bucket.
   */
  override async alarm(): Promise<void> {
    this.alarmAt = null;
    let settled = await this.deleteDoomed();
    for (let swept = 0; settled && swept < SWEEP_PER_ALARM; ) {
      const marked = this.markDue(Date.now(), SWEEP_BATCH);
      if (marked === 0) break;
      swept += marked;
      settled = await this.deleteDoomed();
    }
    const sent = await flushGcEvents(this.sql, this.env.EVENTS);
    this.scheduleNext(settled && sent);
  }

  /**
   * Marks due blobs in one transaction: each leaves `blobs` and `copies` (from here on it does
   * not exist: a claim is refused, a revive answers null, a new upload registers a new copy
   * under its own key) and its R2 keys enter `doomed_copies` before any R2 call is awaited.
   */
  private markDue(now: number, limit: number): number {
    return this.ctx.storage.transactionSync(() => {
      const due = this.db.all<{ digest: string; size: number; refcount: number; links: number }>(
        `SELECT digest, size, refcount, links FROM blobs
         WHERE due_at IS NOT NULL AND due_at <= ? ORDER BY due_at LIMIT ?`,
        now,
        limit,
      );
      const swept: { digest: string; size: number }[] = [];
      for (const blob of due) {
        if (blob.refcount + blob.links > 0) {
          // Unreachable while due_at is kept exact; never sweep a counted blob on a stale mark.
          this.db.run("UPDATE blobs SET due_at = NULL WHERE digest = ?", blob.digest);
          continue;
        }
        this.db.run(
          `INSERT INTO doomed_copies (r2_key, digest, region, size)
           SELECT r2_key, digest, region, ? FROM copies WHERE digest = ?
           ON CONFLICT (r2_key) DO NOTHING`,
          blob.size,
          blob.digest,
        );
        this.db.run("DELETE FROM copies WHERE digest = ?", blob.digest);
        this.db.run("DELETE FROM blobs WHERE digest = ?", blob.digest);
        swept.push({ digest: blob.digest, size: blob.size });
      }
      for (const chunk of inChunks(swept, BLOBS_PER_EVENT)) {
        recordGcEvent(this.sql, {
          kind: "blob.collect",
          at: Date.now(),
          metadata: {
            blobs: chunk,
            bytes: chunk.reduce((sum, blob) => sum + blob.size, 0),
          },
        });
      }
      if (due.length > 0) this.work.sweeps++;
      this.work.blobsSwept += swept.length;
      this.work.bytesSwept += swept.reduce((sum, blob) => sum + blob.size, 0);
      return due.length;
    });
  }

  /** Deletes the R2 objects of marked blobs; false when R2 failed (they stay for a retry). */
  private async deleteDoomed(): Promise<boolean> {
    for (;;) {
      const keys = this.db
        .all<{ r2_key: string }>("SELECT r2_key FROM doomed_copies LIMIT ?", SWEEP_BATCH)
        .map((row) => row.r2_key);
      if (keys.length === 0) return true;
      // Should this object die during the call, the alarm returns and finishes the job.
      this.arm(Date.now() + RETRY_MS);
      this.work.r2DeleteCalls++;
      try {
        await this.env.BLOBS.delete(keys);
      } catch (error) {
        console.error(`R2 delete of ${keys.length} swept blobs failed, will retry`, error);
        return false;
      }
      this.work.r2KeysDeleted += keys.length;
      for (const key of keys) this.db.run("DELETE FROM doomed_copies WHERE r2_key = ?", key);
    }
  }

  /** Sets the alarm for exactly the next work: due blobs, or a retry of what failed. */
  private scheduleNext(settled: boolean): void {
    const due = this.db.all<{ at: number | null }>(
      "SELECT MIN(due_at) AS at FROM blobs WHERE due_at IS NOT NULL",
    )[0]?.at;
    let next = due ?? null;
    if (!settled) next = Math.min(next ?? Number.POSITIVE_INFINITY, Date.now() + RETRY_MS);
    if (next === null) {
      this.alarmAt = null;
      void this.ctx.storage.deleteAlarm();
      return;
    }
    this.alarmAt = next;
    void this.ctx.storage.setAlarm(next);
  }

  // ---- internals -----------------------------------------------------------------------------

  private row(digest: string): BlobRow | undefined {
    return this.db.all<BlobRow>(
      "SELECT size, refcount, links, due_at FROM blobs WHERE digest = ?",
      digest,
    )[0];
  }

  /** Records a delta or claim id; false when it was seen before. */
  private remember(id: string, now: number): boolean {
    return (
      this.db.run(
        "INSERT INTO applied_deltas (id, applied_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
        id,
        now,
      ) > 0
    );
  }

  /** A blob nothing counts may be swept a grace period from now; a counted one may not be. */
  private restartGrace(digest: string, now: number): void {
    const row = this.row(digest);
    if (!row) return;
    if (row.refcount < 0 || row.links < 0) {
      console.error(`blob ${digest} counted below zero (${row.refcount} refs, ${row.links} links)`);
    }
    const due = row.refcount + row.links > 0 ? null : now + this.graceMs;
    this.db.run("UPDATE blobs SET due_at = ? WHERE digest = ?", due, digest);
    if (due !== null) this.arm(due);
  }

  /** Makes sure the alarm comes by `at` (storage writes are ordered and gated: no await). */
  private arm(at: number): void {
    if (this.alarmAt !== null && this.alarmAt <= at) return;
    this.alarmAt = at;
    void this.ctx.storage.setAlarm(at);
  }
}
