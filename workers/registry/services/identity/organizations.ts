// Organizations and their teams: an organization is a namespace whose administrators are the
// members of its admin-role teams. Creating one makes an "owners" admin team holding the creator;
// no change may leave an organization without an administrator (checked inside the same SQL
// statement as the change, so two concurrent removals cannot both pass the check).
import { and, asc, eq, exists, gt, ne, not, notExists, sql } from "drizzle-orm";
import {
  defaultPermissions,
  namespaces,
  permissions,
  repositories,
  type TeamRole,
  teamMembers,
  teams,
  users,
} from "../../../../schema/db/d1.ts";
import type { EventKind } from "../../../../schema/events.ts";
import { forgetCachedCredentials } from "../../auth/principals.ts";
import {
  emit,
  type IdentityContext,
  type Orm,
  ormOf,
  requireOrgAdmin,
  requireVisibleOrg,
} from "./context.ts";
import { conflict, invalid, isUniqueViolation, notFound } from "./errors.ts";
import { type Page, type PageRequest, toPage } from "./pagination.ts";

export const OWNERS_TEAM = "owners";

const TEAM_UPDATE: EventKind = "team.update";

export interface OrganizationView {
  name: string;
  createdAt: string;
  /** The caller's strongest team role in it, if any. */
  role: TeamRole | null;
  /** Whether the caller administers it (admin team or superuser). */
  admin: boolean;
}

export interface TeamView {
  name: string;
  organization: string;
  role: TeamRole;
  members: number;
  createdAt: string;
}

export async function createOrganization(
  ctx: IdentityContext,
  name: string,
): Promise<OrganizationView> {
  const orm = ormOf(ctx);
  const [namespace, user] = await Promise.all([
    orm.select().from(namespaces).where(eq(namespaces.name, name)).get(),
    orm.select({ id: users.id }).from(users).where(eq(users.username, name)).get(),
  ]);
  if (namespace || user) {
    throw conflict(
      `the name ${name} is taken by ${namespace?.kind === "org" ? "an organization" : "a user"}`,
    );
  }
  const now = new Date();
  const teamId = crypto.randomUUID();
  try {
    await orm.batch([
      orm.insert(namespaces).values({ name, kind: "org", createdAt: now }),
      orm
        .insert(teams)
        .values({ id: teamId, org: name, name: OWNERS_TEAM, role: "admin", createdAt: now }),
      orm.insert(teamMembers).values({ teamId, userId: ctx.caller.id }),
    ]);
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`the name ${name} is taken`);
    throw error;
  }
  emit(ctx, "organization.create", { namespace: name, metadata: { ownersTeam: OWNERS_TEAM } });
  return { name, createdAt: now.toISOString(), role: "admin", admin: true };
}

export async function describeOrganization(
  ctx: IdentityContext,
  org: string,
): Promise<OrganizationView> {
  const standing = await requireVisibleOrg(ctx, org);
  const row = await ormOf(ctx).select().from(namespaces).where(eq(namespaces.name, org)).get();
  if (!row) throw notFound(`organization ${org} not found`);
  return {
    name: org,
    createdAt: row.createdAt.toISOString(),
    role: standing.role ?? null,
    admin: standing.admin,
  };
}

/** Deletes an organization with no repositories; its teams, robots and defaults go with it. */
export async function deleteOrganization(ctx: IdentityContext, org: string): Promise<void> {
  await requireOrgAdmin(ctx, org, "delete it");
  const orm = ormOf(ctx);
  // The emptiness check and the delete are one statement: a repository created meanwhile wins.
  const deleted = await orm
    .delete(namespaces)
    .where(
      and(
        eq(namespaces.name, org),
        eq(namespaces.kind, "org"),
        notExists(
          orm.select({ one: sql`1` }).from(repositories).where(eq(repositories.namespace, org)),
        ),
      ),
    )
    .returning({ name: namespaces.name })
    .all();
  if (deleted.length === 0) {
    const count = await orm
      .select({ n: sql<number>`count(*)` })
      .from(repositories)
      .where(eq(repositories.namespace, org))
      .get();
    if (!count?.n) throw notFound(`organization ${org} not found`);
    throw conflict(
      `organization ${org} still has ${count.n} repositor${count.n === 1 ? "y" : "ies"}: delete ${count.n === 1 ? "it" : "them"} first`,
    );
  }
  // Its robots are gone: the registry's Basic path must not remember their tokens.
  forgetCachedCredentials();
  emit(ctx, "organization.delete", { namespace: org });
}

// ---- teams -----------------------------------------------------------------------------------

export async function createTeam(
  ctx: IdentityContext,
  org: string,
  input: { name: string; role: TeamRole },
): Promise<TeamView> {
  await requireOrgAdmin(ctx, org, "manage teams");
  const now = new Date();
  try {
    await ormOf(ctx)
      .insert(teams)
      .values({ id: crypto.randomUUID(), org, name: input.name, role: input.role, createdAt: now })
      .run();
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`team ${org}/${input.name} already exists`);
    throw error;
  }
  emit(ctx, "team.create", { namespace: org, metadata: { team: input.name, role: input.role } });
  return {
    name: input.name,
    organization: org,
    role: input.role,
    members: 0,
    createdAt: now.toISOString(),
  };
}

export async function listTeams(
  ctx: IdentityContext,
  org: string,
  page: PageRequest,
): Promise<Page<TeamView>> {
  await requireOrgAdmin(ctx, org, "see its teams");
  const orm = ormOf(ctx);
  const rows = await orm
    .select({
      team: teams,
      members: sql<number>`(SELECT count(*) FROM ${teamMembers} WHERE ${teamMembers.teamId} = ${teams.id})`,
    })
    .from(teams)
    .where(and(eq(teams.org, org), page.after ? gt(teams.name, page.after[0]!) : undefined))
    .orderBy(asc(teams.name))
    .limit(page.limit + 1)
    .all();
  return toPage(
    rows,
    page.limit,
    (row) => [row.team.name],
    (row) => teamView(row.team, row.members),
  );
}

export async function describeTeam(
  ctx: IdentityContext,
  org: string,
  name: string,
): Promise<TeamView> {
  await requireOrgAdmin(ctx, org, "see its teams");
  const team = await findTeam(ormOf(ctx), org, name);
  return teamView(team, await memberCount(ormOf(ctx), team.id));
}

/** Changes a team's role; an organization's last admin team cannot stop being one. */
export async function updateTeamRole(
  ctx: IdentityContext,
  org: string,
  name: string,
  role: TeamRole,
): Promise<TeamView> {
  await requireOrgAdmin(ctx, org, "manage teams");
  const orm = ormOf(ctx);
  const team = await findTeam(orm, org, name);
  const members = await memberCount(orm, team.id);
  if (team.role === role) return teamView(team, members);
  const updated = await orm
    .update(teams)
    .set({ role })
    .where(
      and(
        eq(teams.id, team.id),
        eq(teams.role, team.role),
        team.role === "admin" ? otherAdminExists(orm, org, { teamId: team.id }) : undefined,
      ),
    )
    .returning()
    .get();
  if (!updated) {
    if (team.role === "admin") throw lastAdmin(org, `team ${org}/${name} must stay an admin team`);
    throw conflict(`team ${org}/${name} changed meanwhile: retry`);
  }
  emit(ctx, TEAM_UPDATE, { namespace: org, metadata: { team: name, from: team.role, to: role } });
  return teamView(updated, members);
}

/** Deletes a team and every permission granted to it. */
export async function deleteTeam(ctx: IdentityContext, org: string, name: string): Promise<void> {
  await requireOrgAdmin(ctx, org, "manage teams");
  const orm = ormOf(ctx);
  const team = await findTeam(orm, org, name);
  const gone = notExists(orm.select({ one: sql`1` }).from(teams).where(eq(teams.id, team.id)));
  // One transaction; the grants are removed only if the team really went (the guard may refuse).
  const [deleted] = await orm.batch([
    orm
      .delete(teams)
      .where(
        and(
          eq(teams.id, team.id),
          team.role === "admin" ? otherAdminExists(orm, org, { teamId: team.id }) : undefined,
        ),
      )
      .returning({ id: teams.id }),
    orm
      .delete(permissions)
      .where(
        and(eq(permissions.principalKind, "team"), eq(permissions.principalId, team.id), gone),
      ),
    orm
      .delete(defaultPermissions)
      .where(
        and(
          eq(defaultPermissions.principalKind, "team"),
          eq(defaultPermissions.principalId, team.id),
          gone,
        ),
      ),
  ]);
  if (deleted.length === 0) throw lastAdmin(org, `team ${org}/${name} cannot be deleted`);
  emit(ctx, "team.delete", { namespace: org, metadata: { team: name, role: team.role } });
}

// ---- members ---------------------------------------------------------------------------------

export async function listMembers(
  ctx: IdentityContext,
  org: string,
  name: string,
  page: PageRequest,
): Promise<Page<{ username: string }>> {
  await requireOrgAdmin(ctx, org, "see its teams");
  const orm = ormOf(ctx);
  const team = await findTeam(orm, org, name);
  const rows = await orm
    .select({ username: users.username })
    .from(teamMembers)
    .innerJoin(users, eq(users.id, teamMembers.userId))
    .where(
      and(
        eq(teamMembers.teamId, team.id),
        page.after ? gt(users.username, page.after[0]!) : undefined,
      ),
    )
    .orderBy(asc(users.username))
    .limit(page.limit + 1)
    .all();
  return toPage(
    rows,
    page.limit,
    (row) => [row.username],
    (row) => ({ username: row.username }),
  );
}

/** Adds a user to a team; returns whether they were added (false: already a member). */
export async function addMember(
  ctx: IdentityContext,
  org: string,
  name: string,
  username: string,
): Promise<boolean> {
  await requireOrgAdmin(ctx, org, "manage teams");
  if (username.includes("+")) {
    throw invalid("robots cannot join teams: grant them repository permissions instead");
  }
  const orm = ormOf(ctx);
  const team = await findTeam(orm, org, name);
  const user = await orm.select().from(users).where(eq(users.username, username)).get();
  if (!user) throw notFound(`user ${username} not found`);
  const added = await orm
    .insert(teamMembers)
    .values({ teamId: team.id, userId: user.id })
    .onConflictDoNothing()
    .returning({ userId: teamMembers.userId })
    .all();
  if (added.length === 0) return false;
  emit(ctx, "team.member.add", {
    namespace: org,
    metadata: { team: name, username, role: team.role },
  });
  return true;
}

/** Removes a user from a team; the organization's last administrator cannot be removed. */
export async function removeMember(
  ctx: IdentityContext,
  org: string,
  name: string,
  username: string,
): Promise<void> {
  await requireOrgAdmin(ctx, org, "manage teams");
  const orm = ormOf(ctx);
  const team = await findTeam(orm, org, name);
  const user = await orm
    .select({ id: users.id })
    .from(users)
    .where(eq(users.username, username))
    .get();
  if (!user) throw notFound(`user ${username} is not a member of team ${org}/${name}`);
  const removed = await orm
    .delete(teamMembers)
    .where(
      and(
        eq(teamMembers.teamId, team.id),
        eq(teamMembers.userId, user.id),
        team.role === "admin"
          ? otherAdminExists(orm, org, { teamId: team.id, userId: user.id })
          : undefined,
      ),
    )
    .returning({ userId: teamMembers.userId })
    .all();
  if (removed.length === 0) {
    const member = await orm
      .select({ userId: teamMembers.userId })
      .from(teamMembers)
      .where(and(eq(teamMembers.teamId, team.id), eq(teamMembers.userId, user.id)))
      .get();
    if (!member) throw notFound(`user ${username} is not a member of team ${org}/${name}`);
    throw lastAdmin(org, `${username} cannot be removed from ${org}/${name}`);
  }
  emit(ctx, "team.member.remove", { namespace: org, metadata: { team: name, username } });
}

// ---- internals -------------------------------------------------------------------------------

export async function findTeam(
  orm: Orm,
  org: string,
  name: string,
): Promise<typeof teams.$inferSelect> {
  const team = await orm
    .select()
    .from(teams)
    .where(and(eq(teams.org, org), eq(teams.name, name)))
    .get();
  if (!team) throw notFound(`team ${org}/${name} not found`);
  return team;
}

async function memberCount(orm: Orm, teamId: string): Promise<number> {
  const row = await orm
    .select({ n: sql<number>`count(*)` })
    .from(teamMembers)
    .where(eq(teamMembers.teamId, teamId))
    .get();
  return row?.n ?? 0;
}

/**
 * Whether the organization keeps an administrator without `teamId` (or, when `userId` is given,
 * without that one membership): a condition placed inside the changing statement itself.
 */
function otherAdminExists(orm: Orm, org: string, without: { teamId: string; userId?: string }) {
  const excluded = without.userId
    ? not(and(eq(teamMembers.teamId, without.teamId), eq(teamMembers.userId, without.userId))!)
    : ne(teamMembers.teamId, without.teamId);
  return exists(
    orm
      .select({ one: sql`1` })
      .from(teamMembers)
      .innerJoin(teams, eq(teams.id, teamMembers.teamId))
      .where(and(eq(teams.org, org), eq(teams.role, "admin"), excluded)),
  );
}

function lastAdmin(org: string, what: string) {
  return conflict(`${what}: organization ${org} would be left without an administrator`);
}

function teamView(team: typeof teams.$inferSelect, members: number): TeamView {
  return {
    name: team.name,
    organization: team.org,
    role: team.role,
    members,
    createdAt: team.createdAt.toISOString(),
  };
}
