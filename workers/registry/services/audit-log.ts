// Reading the audit log and the pull counters (the queue consumer writes them): who may see which
// rows, the filters, and newest-first pages keyed on (at, id).
//
// What a caller sees: superusers everything; everyone else the rows of the namespaces they
// administer (their own, organizations where they are on an admin team), of the repositories they
// administer through a grant (to them or a team of theirs), and the failed logins aimed at their
// own username. An explicit filter outside that scope is refused as the rest of the API refuses:
// 404 for what they cannot see, 403 for what they can see but not administer.
import { and, desc, eq, gte, inArray, like, lt, or, type SQL } from "drizzle-orm";
import {
  auditLog,
  permissions,
  pullCounts,
  repositories,
  teamMembers,
  teams,
} from "../../../schema/db/d1.ts";
import type { ActorKind, EventKind } from "../../../schema/events.ts";
import { repositoryAccess } from "../auth/access.ts";
import { type IdentityContext, namespaceStanding, ormOf } from "./identity/context.ts";
import { forbidden, notFound } from "./identity/errors.ts";
import { type Page, type PageRequest, toPage } from "./identity/pagination.ts";

export interface AuditLogFilter {
  namespace?: string;
  repository?: string;
  /** Exact kinds (`tag.push`) or families (`team.*`); any of them matches. */
  kinds?: string[];
  /** Inclusive lower bound, ms since the epoch. */
  since?: number;
  /** Exclusive upper bound, ms since the epoch. */
  until?: number;
  /** The actor's name as recorded (username, `ns+robot`). */
  actor?: string;
}

export interface AuditLogEntry {
  /** The event id (stable across redeliveries). */
  id: string;
  at: string;
  kind: EventKind;
  namespace: string | null;
  repository: string | null;
  actor: { kind: ActorKind | null; name: string | null };
  clientIp: string | null;
  metadata: Record<string, unknown> | null;
}

export async function queryAuditLog(
  ctx: IdentityContext,
  filter: AuditLogFilter,
  page: PageRequest,
): Promise<Page<AuditLogEntry>> {
  const conditions: (SQL | undefined)[] = [await visibleTo(ctx, filter)];
  if (filter.namespace !== undefined) conditions.push(eq(auditLog.namespace, filter.namespace));
  if (filter.repository !== undefined) conditions.push(eq(auditLog.repository, filter.repository));
  if (filter.actor !== undefined) conditions.push(eq(auditLog.actor, filter.actor));
  if (filter.since !== undefined) conditions.push(gte(auditLog.at, new Date(filter.since)));
  if (filter.until !== undefined) conditions.push(lt(auditLog.at, new Date(filter.until)));
  if (filter.kinds && filter.kinds.length > 0) {
    conditions.push(
      or(
        ...filter.kinds.map((kind) =>
          // Kinds are checked to be [a-z.-] at the edge, so no LIKE wildcard can slip in.
          kind.endsWith(".*")
            ? like(auditLog.kind, `${kind.slice(0, -1)}%`)
            : eq(auditLog.kind, kind),
        ),
      ),
    );
  }
  if (page.after) {
    const [at, id] = page.after.map(Number) as [number, number];
    conditions.push(
      or(lt(auditLog.at, new Date(at)), and(eq(auditLog.at, new Date(at)), lt(auditLog.id, id))),
    );
  }
  const rows = await ormOf(ctx)
    .select()
    .from(auditLog)
    .where(and(...conditions))
    .orderBy(desc(auditLog.at), desc(auditLog.id))
    .limit(page.limit + 1)
    .all();
  return toPage(rows, page.limit, (row) => [String(row.at.getTime()), String(row.id)], entryView);
}

/**
 * The condition limiting rows to what the caller may see, after checking that the filter's
 * namespace or repository is theirs to read (throwing 404 or 403 otherwise). Undefined: no limit.
 */
async function visibleTo(ctx: IdentityContext, filter: AuditLogFilter): Promise<SQL | undefined> {
  const { caller } = ctx;
  if (caller.superuser) return undefined;

  if (filter.repository !== undefined) {
    // Admins of the namespace administer its repositories even once deleted, so they can still
    // read a deleted repository's history; repository-level admins lose it with their grant.
    const access = await repositoryAccess(ctx.db, caller, filter.repository);
    if (access.admin) return undefined;
    if (access.exists && access.actions.has("pull")) {
      throw forbidden(`only administrators of repository ${filter.repository} may read its logs`);
    }
    throw notFound(`repository ${filter.repository} not found`);
  }

  const orm = ormOf(ctx);
  // Subqueries rather than lists of names: D1 binds at most 100 values per statement.
  const callerTeams = orm
    .select({ id: teamMembers.teamId })
    .from(teamMembers)
    .where(eq(teamMembers.userId, caller.id));
  const adminGrants = and(
    eq(permissions.role, "admin"),
    or(
      and(eq(permissions.principalKind, "user"), eq(permissions.principalId, caller.id)),
      and(eq(permissions.principalKind, "team"), inArray(permissions.principalId, callerTeams)),
    ),
  );
  const administeredRepositories = orm
    .select({ name: permissions.repository })
    .from(permissions)
    .where(adminGrants);

  if (filter.namespace !== undefined) {
    const standing = await namespaceStanding(ctx, filter.namespace);
    if (standing?.admin) return undefined;
    // Not its admin, but maybe the admin of some of its repositories: their rows only.
    const some = await orm
      .select({ name: permissions.repository })
      .from(permissions)
      .innerJoin(repositories, eq(repositories.name, permissions.repository))
      .where(and(adminGrants, eq(repositories.namespace, filter.namespace)))
      .limit(1)
      .get();
    if (some) return inArray(auditLog.repository, administeredRepositories);
    if (standing?.visible) {
      throw forbidden(`only administrators of ${filter.namespace} may read its logs`);
    }
    throw notFound(`namespace ${filter.namespace} not found`);
  }

  const administeredOrgs = orm
    .select({ org: teams.org })
    .from(teamMembers)
    .innerJoin(teams, eq(teams.id, teamMembers.teamId))
    .where(and(eq(teamMembers.userId, caller.id), eq(teams.role, "admin")));
  return or(
    eq(auditLog.namespace, caller.name),
    inArray(auditLog.namespace, administeredOrgs),
    inArray(auditLog.repository, administeredRepositories),
    and(eq(auditLog.kind, "login.failed"), eq(auditLog.actor, caller.name)),
  );
}

function entryView(row: typeof auditLog.$inferSelect): AuditLogEntry {
  return {
    id: row.eventId,
    at: row.at.toISOString(),
    kind: row.kind as EventKind,
    namespace: row.namespace,
    repository: row.repository,
    actor: { kind: row.actorKind, name: row.actor },
    clientIp: row.clientIp,
    metadata: (row.metadata as Record<string, unknown> | null) ?? null,
  };
}

// ---- pull counters ---------------------------------------------------------------------------

export interface PullCounts {
  repository: string;
  /** Every UTC day of the range, oldest first, zero when nothing was pulled. */
  days: { day: string; count: number }[];
  total: number;
}

const DAY_MS = 86_400_000;

/** Pulls per UTC day over the last `days` days (today included), for whoever may pull it. */
export async function repositoryPulls(
  ctx: IdentityContext,
  repository: string,
  days: number,
  now = Date.now(),
): Promise<PullCounts> {
  const access = await repositoryAccess(ctx.db, ctx.caller, repository);
  if (!access.exists || !(access.admin || access.actions.has("pull"))) {
    throw notFound(`repository ${repository} not found`);
  }
  const range: string[] = [];
  for (let i = days - 1; i >= 0; i--)
    range.push(new Date(now - i * DAY_MS).toISOString().slice(0, 10));
  const rows = await ormOf(ctx)
    .select({ day: pullCounts.day, count: pullCounts.count })
    .from(pullCounts)
    .where(and(eq(pullCounts.repository, repository), gte(pullCounts.day, range[0]!)))
    .all();
  const counts = new Map(rows.map((row) => [row.day, row.count]));
  const series = range.map((day) => ({ day, count: counts.get(day) ?? 0 }));
  return { repository, days: series, total: series.reduce((sum, d) => sum + d.count, 0) };
}
