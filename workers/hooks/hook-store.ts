// The hooks Worker's D1 access: the trigger a hook names (with its repository's state and its
// owner), and the delivery ids already seen. A delivery is claimed with one INSERT on the
// (trigger, delivery) primary key, so two concurrent copies of one delivery cannot both pass;
// a row that expired may be claimed again, and expired rows are swept a few at a time.
import { and, eq, lt, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import type { BuildTriggerProvider, RefFilter } from "../../schema/build-triggers.ts";
import { buildTriggers, hookDeliveries, repositories, users } from "../../schema/db/d1.ts";

/**
 * How long a delivery id is remembered. GitHub and GitLab sign no timestamp, so this bounds how
 * late a captured hook could be replayed; rows are ~100 bytes, so keep them long.
 */
export const DELIVERY_RETENTION_MS = 90 * 24 * 60 * 60 * 1000;
const SWEEP_BATCH = 100;

export interface StoredTrigger {
  id: string;
  repository: string;
  repositoryState: "normal" | "read-only";
  provider: BuildTriggerProvider;
  cloneUrl: string;
  dockerfilePath: string;
  contextDir: string;
  refFilter: RefFilter;
  tagTemplates: string[];
  defaultBranch: string | null;
  enabled: boolean;
  secretSealed: string;
  owner: { id: string; name: string } | null;
}

export async function findTrigger(db: D1Database, id: string): Promise<StoredTrigger | undefined> {
  const row = await drizzle(db)
    .select({
      trigger: buildTriggers,
      repositoryState: repositories.state,
      ownerName: users.username,
    })
    .from(buildTriggers)
    .innerJoin(repositories, eq(repositories.name, buildTriggers.repository))
    .leftJoin(users, eq(users.id, buildTriggers.ownerId))
    .where(eq(buildTriggers.id, id))
    .get();
  if (!row) return undefined;
  const { trigger } = row;
  return {
    id: trigger.id,
    repository: trigger.repository,
    repositoryState: row.repositoryState,
    provider: trigger.provider,
    cloneUrl: trigger.cloneUrl,
    dockerfilePath: trigger.dockerfilePath,
    contextDir: trigger.contextDir,
    refFilter: trigger.refFilter,
    tagTemplates: trigger.tagTemplates,
    defaultBranch: trigger.defaultBranch,
    enabled: trigger.enabled,
    secretSealed: trigger.secretSealed,
    owner:
      trigger.ownerId !== null && row.ownerName !== null
        ? { id: trigger.ownerId, name: row.ownerName }
        : null,
  };
}

/** Records the delivery; false when the same delivery id was seen (and has not expired). */
export async function claimDelivery(
  db: D1Database,
  claim: { triggerId: string; deliveryId: string; buildId: string | null; now: number },
): Promise<boolean> {
  const received = new Date(claim.now);
  const expires = new Date(claim.now + DELIVERY_RETENTION_MS);
  const rows = await drizzle(db)
    .insert(hookDeliveries)
    .values({
      triggerId: claim.triggerId,
      deliveryId: claim.deliveryId,
      receivedAt: received,
      expiresAt: expires,
      buildId: claim.buildId,
    })
    .onConflictDoUpdate({
      target: [hookDeliveries.triggerId, hookDeliveries.deliveryId],
      set: { receivedAt: received, expiresAt: expires, buildId: claim.buildId },
      setWhere: lt(hookDeliveries.expiresAt, received),
    })
    .returning({ deliveryId: hookDeliveries.deliveryId })
    .all();
  return rows.length === 1;
}

/** Forgets a claim whose build could not be queued, so the provider's retry is not a replay. */
export async function releaseDelivery(
  db: D1Database,
  claim: { triggerId: string; deliveryId: string },
): Promise<void> {
  await drizzle(db)
    .delete(hookDeliveries)
    .where(
      and(
        eq(hookDeliveries.triggerId, claim.triggerId),
        eq(hookDeliveries.deliveryId, claim.deliveryId),
      ),
    )
    .run();
}

/** Deletes a bounded batch of expired delivery rows (run after responding). */
export async function sweepExpiredDeliveries(db: D1Database, now: number): Promise<number> {
  const result = await drizzle(db).run(
    sql`DELETE FROM ${hookDeliveries} WHERE rowid IN (SELECT rowid FROM ${hookDeliveries} WHERE ${hookDeliveries.expiresAt} < ${now} LIMIT ${SWEEP_BATCH})`,
  );
  return result.meta.changes ?? 0;
}
