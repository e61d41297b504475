// What a principal may do to a repository: the one place where permissions, teams, namespaces,
// visibility and repository state combine into a set of actions (pull, push, delete).
import { and, eq, inArray, or } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import {
  type PermissionRole,
  permissions,
  repositories,
  teamMembers,
  teams,
} from "../../../schema/db/d1.ts";
import type { Principal } from "./principals.ts";

export type Action = "pull" | "push" | "delete";
export const ALL_ACTIONS: readonly Action[] = ["pull", "push", "delete"];

const ROLE_ACTIONS: Record<PermissionRole, Action[]> = {
  read: ["pull"],
  write: ["pull", "push"],
  admin: ["pull", "push", "delete"],
};

/** The namespace of a repository is its first path component ("" for single-component names). */
export function namespaceOf(repository: string): string {
  const slash = repository.indexOf("/");
  return slash < 0 ? "" : repository.slice(0, slash);
}

export interface RepositoryAccess {
  actions: Set<Action>;
  /** Whether the repository is in D1 yet (a push to a new name creates it). */
  exists: boolean;
  /** Whether the principal administers it (may change visibility and permissions). */
  admin: boolean;
}

export async function repositoryAccess(
  db: D1Database,
  principal: Principal,
  repository: string,
): Promise<RepositoryAccess> {
  const orm = drizzle(db);
  const repo = await orm.select().from(repositories).where(eq(repositories.name, repository)).get();
  const namespace = namespaceOf(repository);
  const actions = new Set<Action>();
  let admin = false;

  if (principal.kind === "user") {
    if (principal.superuser || namespace === principal.name) admin = true;
    else {
      const orgRole = await orgRoleOf(orm, principal.id, namespace);
      if (orgRole === "admin") admin = true;
      else if (!repo && orgRole === "creator") {
        actions.add("pull").add("push");
      }
    }
  }
  if (admin) for (const action of ALL_ACTIONS) actions.add(action);

  if (!repo) {
    return { actions, exists: false, admin };
  }

  if (!admin && principal.kind !== "anonymous") {
    for (const role of await grantedRoles(orm, principal, repository)) {
      for (const action of ROLE_ACTIONS[role]) actions.add(action);
      if (role === "admin") admin = true;
    }
  }
  if (repo.visibility === "public") actions.add("pull");
  // A read-only repository refuses every write, whoever asks (the state is changed through the API).
  if (repo.state === "read-only") {
    actions.delete("push");
    actions.delete("delete");
  }
  return { actions, exists: true, admin };
}

/** The strongest team role the user has in an organization, if any. */
export async function orgRoleOf(
  orm: ReturnType<typeof drizzle>,
  userId: string,
  org: string,
): Promise<"member" | "creator" | "admin" | undefined> {
  if (org === "") return undefined;
  const rows = await orm
    .select({ role: teams.role })
    .from(teamMembers)
    .innerJoin(teams, eq(teams.id, teamMembers.teamId))
    .where(and(eq(teamMembers.userId, userId), eq(teams.org, org)))
    .all();
  const roles = new Set(rows.map((row) => row.role));
  return roles.has("admin")
    ? "admin"
    : roles.has("creator")
      ? "creator"
      : roles.has("member")
        ? "member"
        : undefined;
}

async function grantedRoles(
  orm: ReturnType<typeof drizzle>,
  principal: Exclude<Principal, { kind: "anonymous" }>,
  repository: string,
): Promise<PermissionRole[]> {
  if (principal.kind === "robot") {
    const rows = await orm
      .select({ role: permissions.role })
      .from(permissions)
      .where(
        and(
          eq(permissions.repository, repository),
          eq(permissions.principalKind, "robot"),
          eq(permissions.principalId, principal.id),
        ),
      )
      .all();
    return rows.map((row) => row.role);
  }
  const teamIds = (
    await orm
      .select({ id: teamMembers.teamId })
      .from(teamMembers)
      .where(eq(teamMembers.userId, principal.id))
      .all()
  ).map((row) => row.id);
  const rows = await orm
    .select({ role: permissions.role })
    .from(permissions)
    .where(
      and(
        eq(permissions.repository, repository),
        or(
          and(eq(permissions.principalKind, "user"), eq(permissions.principalId, principal.id)),
          teamIds.length > 0
            ? and(eq(permissions.principalKind, "team"), inArray(permissions.principalId, teamIds))
            : undefined,
        ),
      ),
    )
    .all();
  return rows.map((row) => row.role);
}
