// Garbage collection inside a RepositoryObject: which manifests and blob links nothing keeps any
// more, found through a queue of candidates filled by the changes that may free them (never a
// scan of the manifests or tags), and collected by the object's alarm. Also the link claims that
// make each blob link count at the blob's BlobRefObject before it is committed.
// The design and its race analysis: docs/garbage-collection.md.
import type { Digest } from "../schema/oci/reference.ts";
import type { BlobLink, ManifestRetention, RepositoryGcStats } from "../schema/rpc.ts";
import { blobRefShardName } from "./blob-ref-shards.ts";
import type { ObjectEnv } from "./env.ts";
import { flushGcEvents, GC_EVENTS_TABLE, inChunks, recordGcEvent } from "./gc-events.ts";
import { DEFAULT_GC_GRACE_SECONDS } from "./gc-grace.ts";
import { MeteredSql } from "./gc-stats.ts";
import { namespaceOfRepository } from "./namespace-object.ts";

const LEGACY_GRACE_MS = DEFAULT_GC_GRACE_SECONDS * 1000;

/**
 * Appended to the RepositoryObject's MIGRATIONS. A candidate is a (kind, digest) to examine at
 * `due_at`; `hold_until` is the end of its push or link grace, which no other reason shortens.
 * Content stored before this existed is examined once, after the default grace, and its links
 * are counted at their shards (a link counts like a reference).
 */
export const GC_MIGRATION = `
  CREATE TABLE gc_candidates (
    kind TEXT NOT NULL, digest TEXT NOT NULL, due_at INTEGER NOT NULL,
    hold_until INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (kind, digest));
  CREATE INDEX gc_candidates_by_due ON gc_candidates(due_at);
  CREATE TABLE gc_claims (id TEXT PRIMARY KEY, digest TEXT NOT NULL, created_at INTEGER NOT NULL);
  CREATE INDEX tags_ended_by_digest ON tags(digest, end_ms) WHERE end_ms IS NOT NULL;
  ALTER TABLE ref_outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'ref';
  ALTER TABLE ref_outbox ADD COLUMN undoes TEXT;
  ${GC_EVENTS_TABLE}
  INSERT INTO gc_candidates (kind, digest, due_at, hold_until)
    SELECT 'manifest', digest, created_at + ${LEGACY_GRACE_MS}, created_at + ${LEGACY_GRACE_MS}
    FROM manifests;
  INSERT INTO gc_candidates (kind, digest, due_at, hold_until)
    SELECT 'link', digest, linked_at + ${LEGACY_GRACE_MS}, linked_at + ${LEGACY_GRACE_MS}
    FROM blob_links;
  INSERT INTO ref_outbox (id, digest, delta, created_at, kind)
    SELECT lower(hex(randomblob(16))), digest, 1, linked_at, 'link' FROM blob_links;`;

/** Candidates examined in one transaction, and in one alarm (more: the alarm comes back). */
const COLLECT_BATCH = 200;
const COLLECT_PER_ALARM = 2000;
/** Digests listed in one `blob.unlink` event. */
const LINKS_PER_EVENT = 100;

type CandidateKind = "manifest" | "link";
type CandidateRow = { kind: CandidateKind; digest: string; due_at: number; hold_until: number };

/** A link claim in progress: `id` null when the blob was linked already (nothing to claim). */
export interface LinkClaim {
  digest: string;
  id: string | null;
  granted: boolean;
}

export interface CollectorHost {
  readonly sql: SqlStorage;
  readonly env: ObjectEnv;
  transactionSync<T>(closure: () => T): T;
  /** The push and link grace, in ms. */
  readonly graceMs: number;
  /** The repository's retention window for ended tag lifetimes, in ms (0 allowed). */
  retentionMs(): number;
  /** Sets the object's one alarm to `at` unless it is already due earlier. */
  scheduleAlarm(at: number): Promise<void>;
}

export interface CollectionRun {
  manifests: number;
  links: number;
  /** Candidates left due: the alarm should come straight back. */
  more: boolean;
}

export class RepositoryCollector {
  /** The earliest candidate queued since the alarm was last armed for candidates. */
  private unarmed: number | null = null;
  private readonly db: MeteredSql;
  private readonly work = { runs: 0, examined: 0, manifestsCollected: 0, linksRemoved: 0 };

  constructor(
    private readonly host: CollectorHost,
    /** The repository's name (the object is always reached by name), for audit events. */
    private readonly repository: string | undefined,
  ) {
    this.db = new MeteredSql(host.sql);
  }

  // ---- candidates: every change that may free something queues it ---------------------------

  /** Examine `digest` at `dueAt` (earlier wins), and never before `holdUntil`. */
  enqueue(kind: CandidateKind, digest: string, dueAt: number, holdUntil = 0): void {
    this.db.run(
      `INSERT INTO gc_candidates (kind, digest, due_at, hold_until) VALUES (?, ?, ?, ?)
       ON CONFLICT (kind, digest) DO UPDATE SET due_at = MIN(due_at, excluded.due_at),
         hold_until = MAX(hold_until, excluded.hold_until)`,
      kind,
      digest,
      dueAt,
      holdUntil,
    );
    if (this.unarmed === null || dueAt < this.unarmed) this.unarmed = dueAt;
  }

  /** A manifest was pushed (new or again): kept for the grace, then examined. */
  notePush(digest: string, now: number): void {
    const until = now + this.host.graceMs;
    this.enqueue("manifest", digest, until, until);
  }

  /** A blob was linked (upload or mount): its manifest comes within the grace, or it goes. */
  noteLink(digest: string, now: number): void {
    const until = now + this.host.graceMs;
    this.enqueue("link", digest, until, until);
  }

  /** A tag lifetime of `digest` ended: its manifest may go when the retention window passes. */
  tagEnded(digest: string, endMs: number): void {
    this.enqueue("manifest", digest, endMs + this.host.retentionMs());
  }

  /**
   * A manifest is leaving (deleted or collected, inside that transaction): what it kept, its
   * children, its referrers and its blobs' links, is examined now.
   */
  released(digest: string, now: number): void {
    const refs = this.db.all<{ target: string; kind: string }>(
      "SELECT target, kind FROM manifest_refs WHERE manifest = ?",
      digest,
    );
    for (const ref of refs) {
      this.enqueue(ref.kind === "blob" ? "link" : "manifest", ref.target, now);
    }
    const referrers = this.db.all<{ digest: string }>(
      "SELECT digest FROM manifests WHERE subject = ?",
      digest,
    );
    for (const referrer of referrers) this.enqueue("manifest", referrer.digest, now);
  }

  /** Makes sure the alarm comes for what was queued (call after the transaction). */
  async arm(): Promise<void> {
    const at = this.unarmed;
    if (at === null) return;
    this.unarmed = null;
    await this.host.scheduleAlarm(at);
  }

  nextDue(): number | null {
    return this.db.all<{ at: number | null }>("SELECT MIN(due_at) AS at FROM gc_candidates")[0]!.at;
  }

  // ---- collection (the alarm) -----------------------------------------------------------------

  /** Examines the candidates due at `now`, in batches of one transaction each. */
  collectDue(now: number): CollectionRun {
    // The alarm sets itself for nextDue() when done: what this run queues needs no arming.
    this.unarmed = null;
    const run: CollectionRun = { manifests: 0, links: 0, more: false };
    let examined = 0;
    while (examined < COLLECT_PER_ALARM) {
      const batch = this.host.transactionSync(() => this.collectBatch(now, run));
      if (batch === 0) break;
      examined += batch;
    }
    if (examined > 0) this.work.runs++;
    this.work.examined += examined;
    this.work.manifestsCollected += run.manifests;
    this.work.linksRemoved += run.links;
    run.more = examined >= COLLECT_PER_ALARM && (this.nextDue() ?? Number.POSITIVE_INFINITY) <= now;
    return run;
  }

  /** The collection work since the object started (see gc-stats.ts). */
  stats(): RepositoryGcStats {
    const pending = this.host.sql
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM gc_candidates")
      .one().n;
    return {
      ...this.work,
      rowsRead: this.db.rowsRead,
      rowsWritten: this.db.rowsWritten,
      pending,
    };
  }

  /** Each rule `examineManifest` weighs, for `digest` at `now`; null if it is not stored. */
  explain(digest: string, now: number): ManifestRetention | null {
    const manifest = this.host.sql
      .exec<{ subject: string | null }>("SELECT subject FROM manifests WHERE digest = ?", digest)
      .toArray()[0];
    if (!manifest) return null;
    const column = <T>(query: string, ...bindings: unknown[]): T[] =>
      this.host.sql
        .exec<{ value: SqlStorageValue }>(query, ...bindings)
        .toArray()
        .map((row) => row.value as T);
    const tags = column<string>(
      "SELECT name AS value FROM tags WHERE digest = ? AND end_ms IS NULL ORDER BY name LIMIT 100",
      digest,
    );
    const parents = column<string>(
      `SELECT manifest AS value FROM manifest_refs WHERE target = ? AND kind = 'manifest'
       ORDER BY manifest LIMIT 100`,
      digest,
    );
    const subject =
      manifest.subject !== null &&
      column<number>("SELECT 1 AS value FROM manifests WHERE digest = ?", manifest.subject).length >
        0
        ? manifest.subject
        : null;
    const ended = column<number | null>(
      "SELECT MAX(end_ms) AS value FROM tags WHERE digest = ? AND end_ms IS NOT NULL",
      digest,
    )[0];
    const historyEnd = ended == null ? null : ended + this.host.retentionMs();
    const historyUntil = historyEnd !== null && historyEnd > now ? historyEnd : null;
    const hold = column<number>(
      "SELECT hold_until AS value FROM gc_candidates WHERE kind = 'manifest' AND digest = ?",
      digest,
    )[0];
    const pushGraceUntil = hold !== undefined && hold > now ? hold : null;
    const permanent = tags.length > 0 || parents.length > 0 || subject !== null;
    const timed = Math.max(historyUntil ?? 0, pushGraceUntil ?? 0);
    return {
      digest: digest as Digest,
      kept: permanent || timed > 0,
      tags,
      parents,
      subject,
      historyUntil,
      pushGraceUntil,
      collectableAt: !permanent && timed > 0 ? timed : null,
    };
  }

  private collectBatch(now: number, run: CollectionRun): number {
    const due = this.db.all<CandidateRow>(
      `SELECT kind, digest, due_at, hold_until FROM gc_candidates
       WHERE due_at <= ? ORDER BY due_at LIMIT ?`,
      now,
      COLLECT_BATCH,
    );
    const unlinked: string[] = [];
    for (const candidate of due) {
      const next =
        candidate.hold_until > now
          ? candidate.hold_until
          : candidate.kind === "manifest"
            ? this.examineManifest(candidate.digest, now)
            : this.examineLink(candidate.digest, now);
      if (next === "collected") {
        if (candidate.kind === "manifest") run.manifests++;
        else unlinked.push(candidate.digest);
      }
      if (typeof next === "number") {
        this.db.run(
          "UPDATE gc_candidates SET due_at = ? WHERE kind = ? AND digest = ?",
          next,
          candidate.kind,
          candidate.digest,
        );
      } else {
        // Kept by something whose removal queues it again, or gone: nothing to wait for. (A
        // candidate queued again meanwhile has another due time, and stays.)
        this.db.run(
          "DELETE FROM gc_candidates WHERE kind = ? AND digest = ? AND due_at = ?",
          candidate.kind,
          candidate.digest,
          candidate.due_at,
        );
      }
    }
    run.links += unlinked.length;
    for (const chunk of inChunks(unlinked, LINKS_PER_EVENT)) {
      this.recordEvent("blob.unlink", { digests: chunk, reason: "unreferenced" });
    }
    return due.length;
  }

  /**
   * A manifest is kept while a current tag points at it, an index of the repository lists it,
   * it refers to a subject the repository holds, or a tag left it inside the retention window;
   * each of those, when it ends, queues the manifest again. Returns when to look again (a
   * time-bound reason), "kept" / "absent" (nothing to wait for), or "collected".
   */
  private examineManifest(digest: string, now: number): number | "kept" | "absent" | "collected" {
    const manifest = this.db.all<{ subject: string | null; media_type: string; size: number }>(
      "SELECT subject, media_type, size FROM manifests WHERE digest = ?",
      digest,
    )[0];
    if (!manifest) return "absent";
    const kept =
      this.db.exists("SELECT 1 FROM tags WHERE digest = ? AND end_ms IS NULL LIMIT 1", digest) ||
      this.db.exists(
        "SELECT 1 FROM manifest_refs WHERE target = ? AND kind = 'manifest' LIMIT 1",
        digest,
      ) ||
      (manifest.subject !== null &&
        this.db.exists("SELECT 1 FROM manifests WHERE digest = ?", manifest.subject));
    if (kept) return "kept";
    const ended = this.db.all<{ at: number | null }>(
      "SELECT MAX(end_ms) AS at FROM tags WHERE digest = ? AND end_ms IS NOT NULL",
      digest,
    )[0]?.at;
    const retentionMs = this.host.retentionMs();
    if (ended != null && ended + retentionMs > now) return ended + retentionMs;

    this.released(digest, now);
    const blobs = this.db.all<{ target: string }>(
      "SELECT target FROM manifest_refs WHERE manifest = ? AND kind = 'blob'",
      digest,
    );
    for (const blob of blobs) this.queueDelta(blob.target, -1, "ref", null, now);
    this.db.run("DELETE FROM manifest_refs WHERE manifest = ?", digest);
    this.db.run("DELETE FROM manifest_chunks WHERE digest = ?", digest);
    this.db.run("DELETE FROM manifests WHERE digest = ?", digest);
    this.recordEvent("manifest.collect", {
      digest,
      mediaType: manifest.media_type,
      size: manifest.size,
      ...(ended != null ? { lastTagEndedAt: new Date(ended).toISOString() } : {}),
    });
    return "collected";
  }

  /** A link goes once no manifest of the repository references its blob (grace checked). */
  private examineLink(digest: string, now: number): "kept" | "absent" | "collected" {
    if (!this.isLinked(digest)) return "absent";
    if (
      this.db.exists(
        "SELECT 1 FROM manifest_refs WHERE target = ? AND kind = 'blob' LIMIT 1",
        digest,
      )
    ) {
      return "kept";
    }
    this.db.run("DELETE FROM blob_links WHERE digest = ?", digest);
    this.queueDelta(digest, -1, "link", null, now);
    return "collected";
  }

  // ---- link claims: a link is counted at the shard before it is committed ---------------------

  /**
   * Claims a link for `link` at the blob's shard (refused when the blob is gone or being swept).
   * The claim row is durable before the call, so an object that dies before settling takes the
   * claim back when it restarts (`recoverClaims`). Always follow with `settleClaim`.
   */
  async claimLink(link: BlobLink): Promise<LinkClaim> {
    if (this.isLinked(link.digest)) return { digest: link.digest, id: null, granted: true };
    const id = crypto.randomUUID();
    this.db.run(
      "INSERT INTO gc_claims (id, digest, created_at) VALUES (?, ?, ?)",
      id,
      link.digest,
      Date.now(),
    );
    try {
      const shard = this.host.env.BLOB_REF.getByName(blobRefShardName(link.digest));
      const { granted } = await shard.claimLink(link.digest, link.key, id);
      return { digest: link.digest, id, granted };
    } catch (error) {
      // Unknown whether the shard applied it: the compensation below is right either way.
      console.error(`link claim for ${link.digest} failed`, error);
      return { digest: link.digest, id, granted: false };
    }
  }

  /**
   * Inside the transaction that commits the link (when `commit`): true when the caller may link.
   * A claim not used (refused, surplus because another request linked meanwhile, or the caller
   * is not committing) is taken back through the outbox, applied once by the shard.
   */
  settleClaim(claim: LinkClaim, commit: boolean, now: number): boolean {
    if (claim.id === null) return commit && this.isLinked(claim.digest);
    // Not mine any more: the object restarted meanwhile and already took it back.
    if (this.db.run("DELETE FROM gc_claims WHERE id = ?", claim.id) === 0) return false;
    const use = commit && claim.granted && !this.isLinked(claim.digest);
    if (!use) this.queueDelta(claim.digest, -1, "link", claim.id, now);
    return commit && claim.granted;
  }

  /**
   * At construction: claims whose request died with the previous instance are taken back.
   * Returns how many (their compensations wait in the outbox).
   */
  recoverClaims(now: number): number {
    const orphans = this.db.all<{ id: string; digest: string }>("SELECT id, digest FROM gc_claims");
    for (const orphan of orphans) {
      this.queueDelta(orphan.digest, -1, "link", orphan.id, now);
      this.db.run("DELETE FROM gc_claims WHERE id = ?", orphan.id);
    }
    return orphans.length;
  }

  /** A link removed outside collection (blob DELETE): its count at the shard goes too. */
  unlinked(digest: string, now: number): void {
    this.queueDelta(digest, -1, "link", null, now);
  }

  /** The repository is being emptied: every link's count goes (before the links are deleted). */
  releaseAllLinks(now: number): void {
    this.db.run(
      `INSERT INTO ref_outbox (id, digest, delta, created_at, kind)
       SELECT lower(hex(randomblob(16))), digest, -1, ?, 'link' FROM blob_links`,
      now,
    );
  }

  // ---- events -------------------------------------------------------------------------------

  flushEvents(): Promise<boolean> {
    return flushGcEvents(this.host.sql, this.host.env.EVENTS);
  }

  private recordEvent(
    kind: "manifest.collect" | "blob.unlink",
    metadata: Record<string, unknown>,
  ): void {
    recordGcEvent(this.host.sql, {
      kind,
      at: Date.now(),
      ...(this.repository !== undefined
        ? { repository: this.repository, namespace: namespaceOfRepository(this.repository) }
        : {}),
      metadata,
    });
  }

  // ---- internals -----------------------------------------------------------------------------

  private isLinked(digest: string): boolean {
    return this.db.exists("SELECT 1 FROM blob_links WHERE digest = ?", digest);
  }

  /** Into the object's reference outbox (delivered in insertion order by flushRefDeltas). */
  private queueDelta(
    digest: string,
    delta: 1 | -1,
    kind: "ref" | "link",
    undoes: string | null,
    now: number,
  ): void {
    this.db.run(
      "INSERT INTO ref_outbox (id, digest, delta, created_at, kind, undoes) VALUES (?, ?, ?, ?, ?, ?)",
      crypto.randomUUID(),
      digest,
      delta,
      now,
      kind,
      undoes,
    );
  }
}
