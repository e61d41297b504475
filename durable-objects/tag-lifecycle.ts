// Tag lifecycle inside a RepositoryObject: the repository's effective policy (pushed from D1),
// immutability checks, tag expiry, auto-prune, and the time machine (history, restore, erase).
// The object keeps the alarm, the manifests and the tag move itself; this module decides which
// lifetimes end and records why, with the audit events in an outbox written in the same
// transaction (delivered after commit, retried by the alarm: an expiry at 3 a.m. is audited too).
import type { EventKind, RegistryEvent } from "../schema/events.ts";
import {
  DEFAULT_TAG_RETENTION_MS,
  type LifecyclePolicy,
  type LifecycleRefusal,
  type LifecycleResult,
  type PruneRule,
  type TagEndReason,
  type TagHistoryPage,
  type TagLifetime,
} from "../schema/lifecycle.ts";

/** Appended to the RepositoryObject's MIGRATIONS. */
export const TAG_LIFECYCLE_MIGRATION = `
  ALTER TABLE tags ADD COLUMN expires_ms INTEGER;
  ALTER TABLE tags ADD COLUMN end_reason TEXT;
  CREATE INDEX tags_expiring ON tags(expires_ms) WHERE end_ms IS NULL AND expires_ms IS NOT NULL;
  CREATE INDEX tags_current_by_start ON tags(start_ms) WHERE end_ms IS NULL;
  CREATE INDEX tags_by_name ON tags(name, id);
  CREATE TABLE lifecycle_events (
    id TEXT PRIMARY KEY, body TEXT NOT NULL, created_at INTEGER NOT NULL);`;

/** What the lifecycle needs from its RepositoryObject. */
export interface LifecycleHost {
  readonly sql: SqlStorage;
  transactionSync<T>(closure: () => T): T;
  /** The object's own tag move: ends the current lifetime and starts one at `digest`. */
  moveTag(tag: string, digest: string, now: number): boolean;
  /** Tells the garbage collector that `digest` may be collectable from `dueAt` on. */
  collectableAt(digest: string, dueAt: number): void;
  /** Tags changed outside a push: the object's resolved-manifest cache must be emptied. */
  tagsChanged(): void;
  /** Sets the object's one alarm to `at` unless it is already due earlier. */
  scheduleAlarm(at: number): Promise<void>;
  readonly events: Queue;
  /** The repository's name (the object is always reached by name). */
  repositoryName(): string | undefined;
}

const POLICY_KEY = "lifecycle_policy";
/** How soon undelivered lifecycle events are retried. */
const EVENT_RETRY_MS = 5_000;
const EVENTS_PER_SEND = 100;
/** Tags listed in one batched expiry or prune event (the audit log bounds metadata size). */
const TAGS_PER_EVENT = 100;

type LifetimeRow = { id: number; name: string; digest: string };
type Trigger = "push" | "restore" | "policy" | "alarm";

/** Tag rows that no immutability pattern (`?` bound to a JSON array of globs) protects. */
const NOT_IMMUTABLE = "NOT EXISTS (SELECT 1 FROM json_each(?) p WHERE t.name GLOB p.value)";

export class TagLifecycle {
  constructor(private readonly host: LifecycleHost) {}

  // ---- policy -------------------------------------------------------------------------------

  /** The policy last pushed from D1; null before the first push (defaults apply). */
  policy(): LifecyclePolicy | null {
    const raw = this.host.sql
      .exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", POLICY_KEY)
      .toArray()[0]?.value;
    return raw ? (JSON.parse(raw) as LifecyclePolicy) : null;
  }

  retentionMs(): number {
    return this.policy()?.retentionMs ?? DEFAULT_TAG_RETENTION_MS;
  }

  /**
   * Stores a policy unless it is older than the one held (pushes can arrive out of order), and
   * applies it at once: prune rules take effect now, not at the next push.
   */
  async setPolicy(policy: LifecyclePolicy): Promise<{ applied: boolean; pruned: number }> {
    const previous = this.policy();
    if (previous && previous.revision > policy.revision) return { applied: false, pruned: 0 };
    const now = Date.now();
    const pruned = this.host.transactionSync(() => {
      this.host.sql.exec(
        `INSERT INTO meta (key, value) VALUES (?, ?)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        POLICY_KEY,
        JSON.stringify(policy),
      );
      const retained = previous?.retentionMs ?? DEFAULT_TAG_RETENTION_MS;
      if (policy.retentionMs < retained) this.windowShrank(retained, policy.retentionMs, now);
      return this.pruneNow(policy, now, "policy");
    });
    if (pruned > 0) this.host.tagsChanged();
    await this.settle();
    return { applied: true, pruned };
  }

  /**
   * A shorter window frees manifests kept only by history earlier than planned: tell the
   * collector their new due time (it re-checks everything when it gets there).
   */
  private windowShrank(oldMs: number, newMs: number, now: number): void {
    const rows = this.host.sql
      .exec<{ digest: string; ended: number }>(
        `SELECT digest, MAX(end_ms) AS ended FROM tags
         WHERE end_ms IS NOT NULL AND end_ms >= ? GROUP BY digest`,
        now - oldMs,
      )
      .toArray();
    for (const row of rows) this.host.collectableAt(row.digest, Math.max(now, row.ended + newMs));
  }

  // ---- immutability (checked by the object in the same synchronous step as the write) ---------

  /** The immutability pattern protecting `tag`, if any. */
  protectingPattern(tag: string, policy = this.policy()): string | null {
    if (!policy || policy.immutableTags.length === 0) return null;
    return (
      this.host.sql
        .exec<{ value: string }>(
          "SELECT value FROM json_each(?) WHERE ? GLOB value LIMIT 1",
          JSON.stringify(policy.immutableTags),
          tag,
        )
        .toArray()[0]?.value ?? null
    );
  }

  /** Why pointing `tag` at `digest` is refused, or null. Creating an immutable tag is allowed. */
  refuseTagMove(tag: string, digest: string): string | null {
    const current = this.current(tag);
    if (!current || current.digest === digest) return null;
    const pattern = this.protectingPattern(tag);
    return pattern
      ? `tag ${tag} is immutable (rule "${pattern}"): it cannot be moved to another manifest`
      : null;
  }

  refuseTagDelete(tag: string): string | null {
    if (!this.current(tag)) return null;
    const pattern = this.protectingPattern(tag);
    return pattern ? `tag ${tag} is immutable (rule "${pattern}"): it cannot be deleted` : null;
  }

  /** Deleting a manifest untags it: refused while an immutable tag points at it. */
  refuseManifestDelete(digest: string): string | null {
    const policy = this.policy();
    if (!policy || policy.immutableTags.length === 0) return null;
    const tag = this.host.sql
      .exec<{ name: string; pattern: string }>(
        `SELECT t.name, p.value AS pattern FROM tags t, json_each(?) p
         WHERE t.digest = ? AND t.end_ms IS NULL AND t.name GLOB p.value ORDER BY t.name LIMIT 1`,
        JSON.stringify(policy.immutableTags),
        digest,
      )
      .toArray()[0];
    return tag
      ? `manifest ${digest} is tagged ${tag.name}, which is immutable (rule "${tag.pattern}"): it cannot be deleted`
      : null;
  }

  // ---- expiry ---------------------------------------------------------------------------------

  /**
   * Inside a push's transaction, after `tag` moved: the image's `quay.expires-after` label sets
   * when the new lifetime ends. Ignored for an immutable tag, which never expires.
   */
  armExpiry(tag: string, inMs: number, now: number): void {
    if (this.protectingPattern(tag)) return;
    this.host.sql.exec(
      "UPDATE tags SET expires_ms = ? WHERE name = ? AND end_ms IS NULL",
      now + inMs,
      tag,
    );
  }

  /** Sets (or, with null, clears) when a current tag expires. */
  async setExpiry(
    tag: string,
    expiresMs: number | null,
  ): Promise<LifecycleResult<{ digest: string; previousMs: number | null }>> {
    const row = this.host.sql
      .exec<{ id: number; digest: string; expires_ms: number | null }>(
        "SELECT id, digest, expires_ms FROM tags WHERE name = ? AND end_ms IS NULL",
        tag,
      )
      .toArray()[0];
    if (!row) return refusal("NOT_FOUND", `tag ${tag} not found`);
    const pattern = expiresMs === null ? null : this.protectingPattern(tag);
    if (pattern) {
      return refusal("FORBIDDEN", `tag ${tag} is immutable (rule "${pattern}"): it cannot expire`);
    }
    this.host.sql.exec("UPDATE tags SET expires_ms = ? WHERE id = ?", expiresMs, row.id);
    await this.settle();
    return { ok: true, digest: row.digest, previousMs: row.expires_ms };
  }

  // ---- auto-prune, expiry and the alarm -------------------------------------------------------

  /** After a push moved a tag: count rules may now cut an older tag. */
  async afterTagPush(now: number): Promise<void> {
    const policy = this.policy();
    if (policy && this.host.transactionSync(() => this.pruneNow(policy, now, "push")) > 0) {
      this.host.tagsChanged();
    }
    await this.settle();
  }

  /** The alarm's share: ends what is due, delivers events; returns when it is next due. */
  async onAlarm(now: number): Promise<number | null> {
    const policy = this.policy();
    const ended = this.host.transactionSync(
      () => this.expireDue(policy, now) + (policy ? this.pruneNow(policy, now, "alarm") : 0),
    );
    if (ended > 0) this.host.tagsChanged();
    return earliest(this.nextDue(policy), await this.flushEvents());
  }

  /** Delivers pending events and makes sure the alarm comes when the next lifecycle work is due. */
  private async settle(): Promise<void> {
    const due = earliest(this.nextDue(this.policy()), await this.flushEvents());
    if (due !== null) await this.host.scheduleAlarm(due);
  }

  private expireDue(policy: LifecyclePolicy | null, now: number): number {
    const rows = this.host.sql
      .exec<LifetimeRow & { expires_ms: number }>(
        `SELECT id, name, digest, expires_ms FROM tags t
         WHERE end_ms IS NULL AND expires_ms IS NOT NULL AND expires_ms <= ? AND ${NOT_IMMUTABLE}`,
        now,
        JSON.stringify(policy?.immutableTags ?? []),
      )
      .toArray();
    this.endLifetimes(rows, now, "expired");
    for (const chunk of chunks(rows, TAGS_PER_EVENT)) {
      this.recordEvent(policy, "tag.expire", now, {
        tags: chunk.map((row) => ({
          tag: row.name,
          digest: row.digest,
          expiresAt: new Date(row.expires_ms).toISOString(),
        })),
      });
    }
    return rows.length;
  }

  /** Ends every current tag a prune rule cuts (immutable tags never); returns how many. */
  private pruneNow(policy: LifecyclePolicy, now: number, trigger: Trigger): number {
    if (policy.prune.length === 0) return 0;
    const immutable = JSON.stringify(policy.immutableTags);
    const doomed = new Map<number, LifetimeRow & { rule: string }>();
    for (const rule of policy.prune) {
      for (const row of this.cutBy(rule, immutable, now)) {
        if (!doomed.has(row.id)) doomed.set(row.id, { ...row, rule: rule.id });
      }
    }
    const rows = [...doomed.values()];
    this.endLifetimes(rows, now, "pruned");
    for (const chunk of chunks(rows, TAGS_PER_EVENT)) {
      this.recordEvent(policy, "tag.prune", now, {
        trigger,
        tags: chunk.map((row) => ({ tag: row.name, digest: row.digest, policy: row.rule })),
      });
    }
    return rows.length;
  }

  private cutBy(rule: PruneRule, immutable: string, now: number): LifetimeRow[] {
    const scope = `FROM tags t WHERE end_ms IS NULL AND (?1 IS NULL OR name GLOB ?1)
      AND NOT EXISTS (SELECT 1 FROM json_each(?2) p WHERE t.name GLOB p.value)`;
    return rule.kind === "keep-count"
      ? this.host.sql
          .exec<LifetimeRow>(
            `SELECT id, name, digest ${scope} ORDER BY start_ms DESC, id DESC LIMIT -1 OFFSET ?3`,
            rule.tagPattern,
            immutable,
            rule.count,
          )
          .toArray()
      : this.host.sql
          .exec<LifetimeRow>(
            `SELECT id, name, digest ${scope} AND start_ms <= ?3`,
            rule.tagPattern,
            immutable,
            now - rule.olderThanMs,
          )
          .toArray();
  }

  /** When expiry or an age rule next has work: no polling, the alarm is set for exactly then. */
  private nextDue(policy: LifecyclePolicy | null): number | null {
    const immutable = JSON.stringify(policy?.immutableTags ?? []);
    // ORDER BY … LIMIT 1 walks the partial indexes in order and stops at the first tag no rule
    // protects (a MIN() with these filters would read every row).
    let due =
      this.host.sql
        .exec<{ at: number }>(
          `SELECT expires_ms AS at FROM tags t
           WHERE end_ms IS NULL AND expires_ms IS NOT NULL AND ${NOT_IMMUTABLE}
           ORDER BY expires_ms LIMIT 1`,
          immutable,
        )
        .toArray()[0]?.at ?? null;
    for (const rule of policy?.prune ?? []) {
      if (rule.kind !== "older-than") continue;
      const oldest = this.host.sql
        .exec<{ at: number }>(
          `SELECT start_ms AS at FROM tags t
           WHERE end_ms IS NULL AND (?1 IS NULL OR name GLOB ?1)
             AND NOT EXISTS (SELECT 1 FROM json_each(?2) p WHERE t.name GLOB p.value)
           ORDER BY start_ms LIMIT 1`,
          rule.tagPattern,
          immutable,
        )
        .toArray()[0]?.at;
      if (oldest !== undefined) due = earliest(due, oldest + rule.olderThanMs);
    }
    return due;
  }

  /** Ends lifetimes (inside the caller's transaction); their manifests leave with the window. */
  private endLifetimes(rows: LifetimeRow[], now: number, reason: TagEndReason): void {
    if (rows.length === 0) return;
    for (const row of rows) {
      this.host.sql.exec(
        "UPDATE tags SET end_ms = ?, end_reason = ? WHERE id = ?",
        now,
        reason,
        row.id,
      );
    }
    const dueAt = now + this.retentionMs();
    for (const digest of new Set(rows.map((row) => row.digest))) {
      this.host.collectableAt(digest, dueAt);
    }
  }

  // ---- time machine ---------------------------------------------------------------------------

  /** Lifetimes newest first, optionally of one tag, before the entry `beforeId` (the cursor). */
  listHistory(query: {
    tag: string | null;
    limit: number;
    beforeId: number | null;
  }): TagHistoryPage {
    const now = Date.now();
    const retentionMs = this.retentionMs();
    const rows = this.host.sql
      .exec<{
        id: number;
        name: string;
        digest: string;
        start_ms: number;
        end_ms: number | null;
        end_reason: TagEndReason | null;
        expires_ms: number | null;
        present: number;
        moved: number;
        current_digest: string | null;
      }>(
        `SELECT t.id, t.name, t.digest, t.start_ms, t.end_ms, t.end_reason, t.expires_ms,
           EXISTS (SELECT 1 FROM manifests m WHERE m.digest = t.digest) AS present,
           EXISTS (SELECT 1 FROM tags n
                   WHERE n.name = t.name AND n.id > t.id AND n.start_ms = t.end_ms) AS moved,
           (SELECT c.digest FROM tags c WHERE c.name = t.name AND c.end_ms IS NULL) AS current_digest
         FROM tags t
         WHERE t.id < ? ${query.tag === null ? "" : "AND t.name = ?"}
         ORDER BY t.id DESC LIMIT ?`,
        // One tag's history walks the (name, id) index; all of it, the primary key.
        ...[query.beforeId ?? Number.MAX_SAFE_INTEGER, ...(query.tag === null ? [] : [query.tag])],
        query.limit + 1,
      )
      .toArray();
    const entries = rows.slice(0, query.limit).map((row): TagLifetime => {
      const ended = row.end_ms !== null;
      return {
        id: row.id,
        tag: row.name,
        digest: row.digest,
        startMs: row.start_ms,
        endMs: row.end_ms,
        endReason: ended ? (row.end_reason ?? (row.moved ? "moved" : "deleted")) : null,
        expiresMs: row.expires_ms,
        manifestPresent: row.present === 1,
        restorable:
          ended &&
          row.end_ms! >= now - retentionMs &&
          row.present === 1 &&
          row.current_digest !== row.digest,
      };
    });
    return { entries, more: rows.length > query.limit, retentionMs };
  }

  /**
   * Points `tag` back at a digest it held inside the retention window. The move is a push like
   * any other: refused for an immutable tag, recorded as history, followed by auto-prune.
   */
  async restore(
    tag: string,
    digest: string,
  ): Promise<LifecycleResult<{ moved: boolean; previousDigest: string | null }>> {
    const now = Date.now();
    const current = this.current(tag);
    if (current?.digest === digest) return { ok: true, moved: false, previousDigest: digest };
    if (current) {
      const pattern = this.protectingPattern(tag);
      if (pattern) {
        return refusal(
          "FORBIDDEN",
          `tag ${tag} is immutable (rule "${pattern}"): it cannot be moved to another manifest`,
        );
      }
    }
    const ended = this.host.sql
      .exec<{ at: number | null }>(
        "SELECT MAX(end_ms) AS at FROM tags WHERE name = ? AND digest = ? AND end_ms IS NOT NULL",
        tag,
        digest,
      )
      .toArray()[0]?.at;
    if (ended == null) return refusal("NOT_FOUND", `tag ${tag} never pointed at ${digest}`);
    const retentionMs = this.retentionMs();
    if (ended < now - retentionMs) {
      return refusal(
        "CONFLICT",
        `tag ${tag} left ${digest} at ${new Date(ended).toISOString()}, outside the retention ` +
          `window (only what ended after ${new Date(now - retentionMs).toISOString()} can be restored)`,
      );
    }
    const present = this.host.sql
      .exec("SELECT 1 FROM manifests WHERE digest = ?", digest)
      .toArray().length;
    if (!present) return refusal("CONFLICT", `manifest ${digest} is no longer stored`);
    const policy = this.policy();
    this.host.transactionSync(() => {
      this.host.moveTag(tag, digest, now);
      if (current) {
        this.host.sql.exec("UPDATE tags SET end_reason = 'restored' WHERE id = ?", current.id);
      }
      if (policy) this.pruneNow(policy, now, "restore");
    });
    this.host.tagsChanged();
    await this.settle();
    return { ok: true, moved: true, previousDigest: current?.digest ?? null };
  }

  /** Erases an ended lifetime for good: its manifest no longer waits for the window to pass. */
  erase(id: number): LifecycleResult<{ tag: string; digest: string }> {
    const row = this.host.sql
      .exec<LifetimeRow & { end_ms: number | null }>(
        "SELECT id, name, digest, end_ms FROM tags WHERE id = ?",
        id,
      )
      .toArray()[0];
    if (!row) return refusal("NOT_FOUND", `history entry ${id} not found`);
    if (row.end_ms === null) {
      return refusal(
        "CONFLICT",
        `history entry ${id} is tag ${row.name}'s current lifetime: delete the tag first`,
      );
    }
    this.host.transactionSync(() => {
      this.host.sql.exec("DELETE FROM tags WHERE id = ?", id);
      this.host.collectableAt(row.digest, Date.now());
    });
    return { ok: true, tag: row.name, digest: row.digest };
  }

  // ---- events ---------------------------------------------------------------------------------

  /** Queued inside the transaction that made the change; sent after commit. */
  private recordEvent(
    policy: LifecyclePolicy | null,
    kind: EventKind,
    now: number,
    metadata: Record<string, unknown>,
  ): void {
    const event: RegistryEvent = {
      id: crypto.randomUUID(),
      at: now,
      kind,
      actor: { kind: "system", name: "tag-lifecycle" },
      ...this.where(policy),
      metadata,
    };
    this.host.sql.exec(
      "INSERT INTO lifecycle_events (id, body, created_at) VALUES (?, ?, ?)",
      event.id,
      JSON.stringify(event),
      now,
    );
  }

  /**
   * Sends queued events; returns when to retry if the queue refused. Two overlapping flushes may
   * send an event twice: the audit log stores each event id once.
   */
  private async flushEvents(): Promise<number | null> {
    for (;;) {
      const rows = this.host.sql
        .exec<{ id: string; body: string }>(
          "SELECT id, body FROM lifecycle_events ORDER BY created_at, id LIMIT ?",
          EVENTS_PER_SEND,
        )
        .toArray();
      if (rows.length === 0) return null;
      try {
        await this.host.events.sendBatch(
          rows.map((row) => ({ body: JSON.parse(row.body) as RegistryEvent, contentType: "json" })),
        );
      } catch (error) {
        console.error("lifecycle events not queued, will retry", error);
        return Date.now() + EVENT_RETRY_MS;
      }
      for (const row of rows)
        this.host.sql.exec("DELETE FROM lifecycle_events WHERE id = ?", row.id);
      if (rows.length < EVENTS_PER_SEND) return null;
    }
  }

  /** The repository an event is about: from the policy, else the object's own name. */
  private where(policy: LifecyclePolicy | null): { namespace?: string; repository?: string } {
    if (policy) return { namespace: policy.namespace, repository: policy.repository };
    const repository = this.host.repositoryName();
    if (repository === undefined) return {};
    const slash = repository.indexOf("/");
    return { namespace: slash < 0 ? "" : repository.slice(0, slash), repository };
  }

  private current(tag: string): LifetimeRow | undefined {
    return this.host.sql
      .exec<LifetimeRow>("SELECT id, name, digest FROM tags WHERE name = ? AND end_ms IS NULL", tag)
      .toArray()[0];
  }
}

function refusal(error: LifecycleRefusal["error"], message: string): LifecycleRefusal {
  return { ok: false, error, message };
}

function earliest(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let at = 0; at < items.length; at += size) out.push(items.slice(at, at + size));
  return out;
}
