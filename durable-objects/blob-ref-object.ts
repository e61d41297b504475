// BlobRefObject: sharded by digest prefix. Owns, per blob, its size, where its copies are and
// its reference count across all repositories (one per repository manifest that lists it).
import { DurableObject } from "cloudflare:workers";
import type { Digest } from "../schema/oci/reference.ts";
import type { BlobRecord, RefDelta } from "../schema/rpc.ts";
import type { ObjectEnv } from "./env.ts";
import { migrate } from "./sql-migrations.ts";

const MIGRATIONS = [
  `CREATE TABLE blobs (
     digest TEXT PRIMARY KEY, size INTEGER NOT NULL, refcount INTEGER NOT NULL DEFAULT 0,
     created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
   CREATE TABLE copies (
     digest TEXT NOT NULL, region TEXT NOT NULL, r2_key TEXT NOT NULL, PRIMARY KEY (digest, region));
   CREATE TABLE applied_deltas (id TEXT PRIMARY KEY, applied_at INTEGER NOT NULL);
   CREATE INDEX applied_deltas_by_time ON applied_deltas(applied_at);`,
];

/** Delivered delta ids are remembered this long: far beyond any retry of the same delivery. */
const DELTA_MEMORY_MS = 7 * 24 * 3600 * 1000;

/** 256 shards per algorithm, named by the first two hex characters of the digest. */
export function blobRefShardName(digest: string): string {
  const colon = digest.indexOf(":");
  return `${digest.slice(0, colon)}:${digest.slice(colon + 1, colon + 3)}`;
}

export class BlobRefObject extends DurableObject<ObjectEnv> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: ObjectEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ctx.blockConcurrencyWhile(async () => migrate(this.sql, MIGRATIONS));
  }

  get(digest: Digest): BlobRecord | null {
    const row = this.sql
      .exec<{ size: number; refcount: number }>(
        "SELECT size, refcount FROM blobs WHERE digest = ?",
        digest,
      )
      .toArray()[0];
    if (!row) return null;
    const copies = this.sql
      .exec<{ region: string; r2_key: string }>(
        "SELECT region, r2_key FROM copies WHERE digest = ? ORDER BY region",
        digest,
      )
      .toArray()
      .map((copy) => ({ region: copy.region, key: copy.r2_key }));
    return { digest, size: row.size, refcount: row.refcount, copies };
  }

  /**
   * Records a freshly written copy. When the region already holds a copy (two uploads of the
   * same bytes raced), the existing copy wins and the caller deletes its own.
   */
  registerCopy(
    digest: Digest,
    size: number,
    region: string,
    key: string,
  ): { key: string; created: boolean } {
    const existing = this.sql
      .exec<{ r2_key: string }>(
        "SELECT r2_key FROM copies WHERE digest = ? AND region = ?",
        digest,
        region,
      )
      .toArray()[0];
    if (existing) return { key: existing.r2_key, created: false };
    const now = Date.now();
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        `INSERT INTO blobs (digest, size, refcount, created_at, updated_at) VALUES (?, ?, 0, ?, ?)
         ON CONFLICT (digest) DO UPDATE SET size = excluded.size, updated_at = excluded.updated_at`,
        digest,
        size,
        now,
        now,
      );
      this.sql.exec(
        "INSERT INTO copies (digest, region, r2_key) VALUES (?, ?, ?)",
        digest,
        region,
        key,
      );
    });
    return { key, created: true };
  }

  /** Applies reference-count deltas exactly once each (a redelivered id is skipped). */
  applyDeltas(deltas: RefDelta[]): { applied: number } {
    const now = Date.now();
    let applied = 0;
    this.ctx.storage.transactionSync(() => {
      for (const { id, digest, delta } of deltas) {
        const fresh = this.sql.exec(
          "INSERT INTO applied_deltas (id, applied_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
          id,
          now,
        ).rowsWritten;
        if (fresh === 0) continue;
        this.sql.exec(
          `INSERT INTO blobs (digest, size, refcount, created_at, updated_at) VALUES (?, 0, ?, ?, ?)
           ON CONFLICT (digest) DO UPDATE SET refcount = refcount + excluded.refcount,
             updated_at = excluded.updated_at`,
          digest,
          delta,
          now,
          now,
        );
        applied++;
      }
      this.sql.exec("DELETE FROM applied_deltas WHERE applied_at < ?", now - DELTA_MEMORY_MS);
    });
    return { applied };
  }
}
