// The D1 record of repositories: created by the first push (or the API) with the namespace's
// default permissions, and the index `_catalog` pages through filtered by what the caller sees.
import { and, asc, eq, gt, inArray, or, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import {
  defaultPermissions,
  permissions,
  repositories,
  teamMembers,
  teams,
  type Visibility,
} from "../../../schema/db/d1.ts";
import { namespaceOf } from "../auth/access.ts";
import type { Principal } from "../auth/principals.ts";

/**
 * Creates the repository row if it is new: applies the organization's default permissions and,
 * when the creator is a creator-role team member (not otherwise its admin), grants them admin.
 * Returns whether it was created.
 */
export async function ensureRepository(
  db: D1Database,
  name: string,
  creator: Principal,
  visibility: Visibility = "private",
): Promise<boolean> {
  const orm = drizzle(db);
  const namespace = namespaceOf(name);
  const inserted = await orm
    .insert(repositories)
    .values({ name, namespace, visibility, state: "normal", createdAt: new Date() })
    .onConflictDoNothing()
    .returning({ name: repositories.name });
  if (inserted.length === 0) return false;
  const defaults = await orm
    .select()
    .from(defaultPermissions)
    .where(eq(defaultPermissions.org, namespace))
    .all();
  const grants = defaults.map((d) => ({
    repository: name,
    principalKind: d.principalKind,
    principalId: d.principalId,
    role: d.role,
  }));
  if (creator.kind === "user" && !creator.superuser && namespace !== creator.name) {
    grants.push({
      repository: name,
      principalKind: "user",
      principalId: creator.id,
      role: "admin",
    });
  }
  if (grants.length > 0) await orm.insert(permissions).values(grants).onConflictDoNothing().run();
  return true;
}

/** A page of repository names the principal may pull from, in name order. */
export async function visibleRepositories(
  db: D1Database,
  principal: Principal,
  limit: number,
  last: string | null,
): Promise<{ names: string[]; more: boolean }> {
  const orm = drizzle(db);
  const after = last === null ? undefined : gt(repositories.name, last);
  let visible: ReturnType<typeof or> | undefined;
  if (principal.kind === "user" && principal.superuser) {
    visible = undefined;
  } else if (principal.kind === "anonymous") {
    visible = eq(repositories.visibility, "public");
  } else {
    const grantees =
      principal.kind === "robot"
        ? and(eq(permissions.principalKind, "robot"), eq(permissions.principalId, principal.id))
        : or(
            and(eq(permissions.principalKind, "user"), eq(permissions.principalId, principal.id)),
            and(
              eq(permissions.principalKind, "team"),
              inArray(
                permissions.principalId,
                orm
                  .select({ id: teamMembers.teamId })
                  .from(teamMembers)
                  .where(eq(teamMembers.userId, principal.id)),
              ),
            ),
          );
    const granted = orm.select({ name: permissions.repository }).from(permissions).where(grantees);
    const conditions = [eq(repositories.visibility, "public"), inArray(repositories.name, granted)];
    if (principal.kind === "user") {
      conditions.push(eq(repositories.namespace, principal.name));
      conditions.push(
        inArray(
          repositories.namespace,
          orm
            .select({ org: teams.org })
            .from(teams)
            .innerJoin(teamMembers, eq(teamMembers.teamId, teams.id))
            .where(and(eq(teamMembers.userId, principal.id), eq(teams.role, "admin"))),
        ),
      );
    }
    visible = or(...conditions);
  }
  const rows = await orm
    .select({ name: repositories.name })
    .from(repositories)
    .where(and(after, visible ?? sql`1 = 1`))
    .orderBy(asc(repositories.name))
    .limit(limit + 1)
    .all();
  return { names: rows.slice(0, limit).map((row) => row.name), more: rows.length > limit };
}
