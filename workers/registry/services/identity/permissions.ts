// Who may do what to a repository: permissions granted per repository to users, teams and robots,
// and an organization's default permissions copied onto each repository created in it. A grantee
// is named the way people write it (`alice`, `acme/devs`, `acme+ci`); teams and robots must belong
// to the repository's own namespace. Nothing here is cached: the next request sees the change.
import { and, asc, eq, inArray, sql } from "drizzle-orm";
import {
  defaultPermissions,
  type PermissionRole,
  type PrincipalKind,
  permissions,
  robots,
  teams,
  users,
} from "../../../../schema/db/d1.ts";
import { namespaceOf } from "../../auth/access.ts";
import {
  emit,
  type IdentityContext,
  type Orm,
  ormOf,
  requireOrgAdmin,
  requireRepositoryAdmin,
} from "./context.ts";
import { invalid, notFound } from "./errors.ts";
import { robotShortname, splitRobotName, teamName } from "./names.ts";
import { type Page, type PageRequest, toPage } from "./pagination.ts";

export interface PermissionView {
  kind: PrincipalKind;
  /** `alice`, `acme/devs` or `acme+ci`; null if the grantee no longer exists. */
  name: string | null;
  role: PermissionRole;
}

export interface Grantee {
  kind: PrincipalKind;
  id: string;
  name: string;
}

/** Resolves a grantee's name to its id, refusing teams and robots of other namespaces. */
export async function resolveGrantee(
  orm: Orm,
  namespace: string,
  kind: PrincipalKind,
  name: string,
): Promise<Grantee> {
  if (kind === "user") {
    if (splitRobotName(name)) throw invalid(`${name} is a robot: use the kind "robot"`);
    const user = await orm
      .select({ id: users.id })
      .from(users)
      .where(eq(users.username, name))
      .get();
    if (!user) throw notFound(`user ${name} not found`);
    return { kind, id: user.id, name };
  }
  if (namespace === "") {
    throw invalid(`only users can be granted access to a repository outside a namespace`);
  }
  if (kind === "team") {
    const short = teamName(namespace, name);
    const team = await orm
      .select({ id: teams.id })
      .from(teams)
      .where(and(eq(teams.org, namespace), eq(teams.name, short)))
      .get();
    if (!team) throw notFound(`team ${namespace}/${short} not found`);
    return { kind, id: team.id, name: `${namespace}/${short}` };
  }
  const short = robotShortname(namespace, name);
  const robot = await orm
    .select({ id: robots.id })
    .from(robots)
    .where(and(eq(robots.namespace, namespace), eq(robots.shortname, short)))
    .get();
  if (!robot) throw notFound(`robot ${namespace}+${short} not found`);
  return { kind, id: robot.id, name: `${namespace}+${short}` };
}

// ---- repository permissions ------------------------------------------------------------------

export async function listPermissions(
  ctx: IdentityContext,
  repository: string,
  page: PageRequest,
): Promise<Page<PermissionView>> {
  await requireRepositoryAdmin(ctx, repository, "see its permissions");
  const orm = ormOf(ctx);
  const rows = await orm
    .select()
    .from(permissions)
    .where(
      and(
        eq(permissions.repository, repository),
        page.after
          ? sql`(${permissions.principalKind}, ${permissions.principalId}) > (${page.after[0]}, ${page.after[1]})`
          : undefined,
      ),
    )
    .orderBy(asc(permissions.principalKind), asc(permissions.principalId))
    .limit(page.limit + 1)
    .all();
  const names = await granteeNames(orm, rows);
  return toPage(
    rows,
    page.limit,
    (row) => [row.principalKind, row.principalId],
    (row) => permissionView(row, names),
  );
}

/** Grants (or changes) a role; returns the permission and whether anything changed. */
export async function grantPermission(
  ctx: IdentityContext,
  repository: string,
  kind: PrincipalKind,
  name: string,
  role: PermissionRole,
): Promise<{ permission: PermissionView; changed: boolean }> {
  await requireRepositoryAdmin(ctx, repository, "change its permissions");
  const orm = ormOf(ctx);
  const namespace = namespaceOf(repository);
  const grantee = await resolveGrantee(orm, namespace, kind, name);
  const key = and(
    eq(permissions.repository, repository),
    eq(permissions.principalKind, kind),
    eq(permissions.principalId, grantee.id),
  );
  const previous = await orm.select({ role: permissions.role }).from(permissions).where(key).get();
  const permission = { kind, name: grantee.name, role };
  if (previous?.role === role) return { permission, changed: false };
  await orm
    .insert(permissions)
    .values({ repository, principalKind: kind, principalId: grantee.id, role })
    .onConflictDoUpdate({
      target: [permissions.repository, permissions.principalKind, permissions.principalId],
      set: { role },
    })
    .run();
  emit(ctx, "permission.grant", {
    namespace,
    repository,
    metadata: { kind, name: grantee.name, role, previous: previous?.role ?? null },
  });
  return { permission, changed: true };
}

export async function revokePermission(
  ctx: IdentityContext,
  repository: string,
  kind: PrincipalKind,
  name: string,
): Promise<void> {
  await requireRepositoryAdmin(ctx, repository, "change its permissions");
  const orm = ormOf(ctx);
  const namespace = namespaceOf(repository);
  const grantee = await resolveGrantee(orm, namespace, kind, name);
  const deleted = await orm
    .delete(permissions)
    .where(
      and(
        eq(permissions.repository, repository),
        eq(permissions.principalKind, kind),
        eq(permissions.principalId, grantee.id),
      ),
    )
    .returning({ role: permissions.role })
    .all();
  if (deleted.length === 0) {
    throw notFound(`${kind} ${grantee.name} has no permission on ${repository}`);
  }
  emit(ctx, "permission.revoke", {
    namespace,
    repository,
    metadata: { kind, name: grantee.name, role: deleted[0]!.role },
  });
}

// ---- default permissions of an organization --------------------------------------------------

export async function listDefaultPermissions(
  ctx: IdentityContext,
  org: string,
  page: PageRequest,
): Promise<Page<PermissionView>> {
  await requireOrgAdmin(ctx, org, "see its default permissions");
  const orm = ormOf(ctx);
  const rows = await orm
    .select()
    .from(defaultPermissions)
    .where(
      and(
        eq(defaultPermissions.org, org),
        page.after
          ? sql`(${defaultPermissions.principalKind}, ${defaultPermissions.principalId}) > (${page.after[0]}, ${page.after[1]})`
          : undefined,
      ),
    )
    .orderBy(asc(defaultPermissions.principalKind), asc(defaultPermissions.principalId))
    .limit(page.limit + 1)
    .all();
  const names = await granteeNames(orm, rows);
  return toPage(
    rows,
    page.limit,
    (row) => [row.principalKind, row.principalId],
    (row) => permissionView(row, names),
  );
}

export async function setDefaultPermission(
  ctx: IdentityContext,
  org: string,
  kind: PrincipalKind,
  name: string,
  role: PermissionRole,
): Promise<{ permission: PermissionView; changed: boolean }> {
  await requireOrgAdmin(ctx, org, "change its default permissions");
  const orm = ormOf(ctx);
  const grantee = await resolveGrantee(orm, org, kind, name);
  const key = and(
    eq(defaultPermissions.org, org),
    eq(defaultPermissions.principalKind, kind),
    eq(defaultPermissions.principalId, grantee.id),
  );
  const previous = await orm
    .select({ role: defaultPermissions.role })
    .from(defaultPermissions)
    .where(key)
    .get();
  const permission = { kind, name: grantee.name, role };
  if (previous?.role === role) return { permission, changed: false };
  await orm
    .insert(defaultPermissions)
    .values({ org, principalKind: kind, principalId: grantee.id, role })
    .onConflictDoUpdate({
      target: [
        defaultPermissions.org,
        defaultPermissions.principalKind,
        defaultPermissions.principalId,
      ],
      set: { role },
    })
    .run();
  emit(ctx, "default-permission.grant", {
    namespace: org,
    metadata: { kind, name: grantee.name, role, previous: previous?.role ?? null },
  });
  return { permission, changed: true };
}

export async function removeDefaultPermission(
  ctx: IdentityContext,
  org: string,
  kind: PrincipalKind,
  name: string,
): Promise<void> {
  await requireOrgAdmin(ctx, org, "change its default permissions");
  const orm = ormOf(ctx);
  const grantee = await resolveGrantee(orm, org, kind, name);
  const deleted = await orm
    .delete(defaultPermissions)
    .where(
      and(
        eq(defaultPermissions.org, org),
        eq(defaultPermissions.principalKind, kind),
        eq(defaultPermissions.principalId, grantee.id),
      ),
    )
    .returning({ role: defaultPermissions.role })
    .all();
  if (deleted.length === 0) {
    throw notFound(`${kind} ${grantee.name} has no default permission in ${org}`);
  }
  emit(ctx, "default-permission.revoke", {
    namespace: org,
    metadata: { kind, name: grantee.name, role: deleted[0]!.role },
  });
}

// ---- internals -------------------------------------------------------------------------------

type GrantRow = { principalKind: PrincipalKind; principalId: string; role: PermissionRole };

/** Display names of a page of grantees, in three queries at most. */
async function granteeNames(orm: Orm, rows: GrantRow[]): Promise<Map<string, string>> {
  const ids = (kind: PrincipalKind) =>
    rows.filter((row) => row.principalKind === kind).map((row) => row.principalId);
  const [userIds, teamIds, robotIds] = [ids("user"), ids("team"), ids("robot")];
  const names = new Map<string, string>();
  const [userRows, teamRows, robotRows] = await Promise.all([
    userIds.length
      ? orm
          .select({ id: users.id, username: users.username })
          .from(users)
          .where(inArray(users.id, userIds))
          .all()
      : [],
    teamIds.length
      ? orm
          .select({ id: teams.id, org: teams.org, name: teams.name })
          .from(teams)
          .where(inArray(teams.id, teamIds))
          .all()
      : [],
    robotIds.length
      ? orm
          .select({ id: robots.id, namespace: robots.namespace, shortname: robots.shortname })
          .from(robots)
          .where(inArray(robots.id, robotIds))
          .all()
      : [],
  ]);
  for (const row of userRows) names.set(`user:${row.id}`, row.username);
  for (const row of teamRows) names.set(`team:${row.id}`, `${row.org}/${row.name}`);
  for (const row of robotRows) names.set(`robot:${row.id}`, `${row.namespace}+${row.shortname}`);
  return names;
}

function permissionView(row: GrantRow, names: Map<string, string>): PermissionView {
  return {
    kind: row.principalKind,
    name: names.get(`${row.principalKind}:${row.principalId}`) ?? null,
    role: row.role,
  };
}
