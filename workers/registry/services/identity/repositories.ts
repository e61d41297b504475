// Repositories as the management API sees them: created where the caller may create (through
// `ensureRepository`, which applies the organization's default permissions), listed as far as the
// caller may see, their visibility and state changed and the whole repository deleted by its
// administrators. A repository the caller cannot see is reported as not found.
import { and, asc, eq, gt, inArray, or, type SQL } from "drizzle-orm";
import {
  permissions,
  type RepositoryState,
  repositories,
  teamMembers,
  teams,
  type Visibility,
} from "../../../../schema/db/d1.ts";
import type { RepositoryName } from "../../../../schema/oci/reference.ts";
import { type Action, ALL_ACTIONS, namespaceOf, repositoryAccess } from "../../auth/access.ts";
import type { ObjectDirectory } from "../../storage/repository-stubs.ts";
import { ensureRepository } from "../repository-registry.ts";
import {
  emit,
  type IdentityContext,
  namespaceStanding,
  ormOf,
  requireRepositoryAdmin,
} from "./context.ts";
import { conflict, forbidden, notFound } from "./errors.ts";
import { type Page, type PageRequest, toPage } from "./pagination.ts";

export interface RepositoryView {
  name: string;
  namespace: string;
  visibility: Visibility;
  state: RepositoryState;
  createdAt: string;
}

export interface RepositoryDetail extends RepositoryView {
  /** What the caller may do with it. */
  access: { actions: Action[]; admin: boolean };
}

export async function createRepository(
  ctx: IdentityContext,
  name: RepositoryName,
  visibility: Visibility,
): Promise<RepositoryDetail> {
  const namespace = namespaceOf(name);
  if (namespace === "") {
    if (!ctx.caller.superuser) {
      throw forbidden(
        `only superusers may create repositories outside a namespace: name it ${ctx.caller.name}/${name}`,
      );
    }
  } else {
    const standing = await namespaceStanding(ctx, namespace);
    if (!standing?.visible) throw notFound(`namespace ${namespace} not found`);
    if (!standing.canCreate) {
      throw forbidden(
        `you may not create repositories in ${namespace} (ask an administrator for a creator team)`,
      );
    }
  }
  if (!(await ensureRepository(ctx.db, name, ctx.caller, visibility))) {
    throw conflict(`repository ${name} already exists`);
  }
  emit(ctx, "repository.create", {
    namespace,
    repository: name,
    metadata: { visibility, via: "api" },
  });
  return describeRepository(ctx, name);
}

/** Repositories the caller may pull from (or administers), by name, optionally of one namespace. */
export async function listRepositories(
  ctx: IdentityContext,
  filter: { namespace?: string },
  page: PageRequest,
): Promise<Page<RepositoryView>> {
  const orm = ormOf(ctx);
  const { caller } = ctx;
  let visible: SQL | undefined;
  if (!caller.superuser) {
    const myTeams = orm
      .select({ id: teamMembers.teamId })
      .from(teamMembers)
      .where(eq(teamMembers.userId, caller.id));
    const granted = orm
      .select({ name: permissions.repository })
      .from(permissions)
      .where(
        or(
          and(eq(permissions.principalKind, "user"), eq(permissions.principalId, caller.id)),
          and(eq(permissions.principalKind, "team"), inArray(permissions.principalId, myTeams)),
        ),
      );
    const adminOf = orm
      .select({ org: teams.org })
      .from(teams)
      .innerJoin(teamMembers, eq(teamMembers.teamId, teams.id))
      .where(and(eq(teamMembers.userId, caller.id), eq(teams.role, "admin")));
    visible = or(
      eq(repositories.visibility, "public"),
      eq(repositories.namespace, caller.name),
      inArray(repositories.namespace, adminOf),
      inArray(repositories.name, granted),
    );
  }
  const rows = await orm
    .select()
    .from(repositories)
    .where(
      and(
        visible,
        filter.namespace !== undefined ? eq(repositories.namespace, filter.namespace) : undefined,
        page.after ? gt(repositories.name, page.after[0]!) : undefined,
      ),
    )
    .orderBy(asc(repositories.name))
    .limit(page.limit + 1)
    .all();
  return toPage(rows, page.limit, (row) => [row.name], repositoryView);
}

export async function describeRepository(
  ctx: IdentityContext,
  name: string,
): Promise<RepositoryDetail> {
  const [access, row] = await Promise.all([
    repositoryAccess(ctx.db, ctx.caller, name),
    ormOf(ctx).select().from(repositories).where(eq(repositories.name, name)).get(),
  ]);
  if (!row || !(access.admin || access.actions.has("pull"))) {
    throw notFound(`repository ${name} not found`);
  }
  return {
    ...repositoryView(row),
    access: { actions: ALL_ACTIONS.filter((a) => access.actions.has(a)), admin: access.admin },
  };
}

/** Changes visibility and/or state; each actual change is its own event. */
export async function updateRepository(
  ctx: IdentityContext,
  name: string,
  changes: { visibility?: Visibility; state?: RepositoryState },
): Promise<RepositoryDetail> {
  await requireRepositoryAdmin(ctx, name, "change its settings");
  const orm = ormOf(ctx);
  const before = await orm.select().from(repositories).where(eq(repositories.name, name)).get();
  if (!before) throw notFound(`repository ${name} not found`);
  const set: { visibility?: Visibility; state?: RepositoryState } = {};
  if (changes.visibility !== undefined && changes.visibility !== before.visibility) {
    set.visibility = changes.visibility;
  }
  if (changes.state !== undefined && changes.state !== before.state) set.state = changes.state;
  if (set.visibility || set.state) {
    await orm.update(repositories).set(set).where(eq(repositories.name, name)).run();
    const where = { namespace: before.namespace, repository: name };
    if (set.visibility) {
      emit(ctx, "repository.visibility", {
        ...where,
        metadata: { from: before.visibility, to: set.visibility },
      });
    }
    if (set.state) {
      emit(ctx, "repository.state", { ...where, metadata: { from: before.state, to: set.state } });
    }
  }
  return describeRepository(ctx, name);
}

/**
 * Deletes a repository: freezes it (read-only, so no new push lands in what is being emptied),
 * deletes its manifests and tags in the RepositoryObject, then the D1 row (its permissions go
 * with it). If the object step fails the repository stays, read-only, and the DELETE can be
 * retried.
 */
export async function deleteRepository(
  ctx: IdentityContext,
  objects: ObjectDirectory,
  name: RepositoryName,
): Promise<{ manifests: number; tags: number }> {
  await requireRepositoryAdmin(ctx, name, "delete it");
  const orm = ormOf(ctx);
  const frozen = await orm
    .update(repositories)
    .set({ state: "read-only" })
    .where(and(eq(repositories.name, name), eq(repositories.state, "normal")))
    .returning({ name: repositories.name })
    .all();
  let purged: { manifests: number; tags: number };
  try {
    purged = await purgeRepositoryContent(objects, name);
  } catch (error) {
    // The repository stays, frozen: say so, since the freeze is a change of its own.
    if (frozen.length > 0) {
      emit(ctx, "repository.state", {
        namespace: namespaceOf(name),
        repository: name,
        metadata: { from: "normal", to: "read-only", reason: "delete failed; retry the DELETE" },
      });
    }
    throw error;
  }
  await orm.delete(repositories).where(eq(repositories.name, name)).run();
  emit(ctx, "repository.delete", {
    namespace: namespaceOf(name),
    repository: name,
    metadata: purged,
  });
  return purged;
}

/**
 * Empties a RepositoryObject in one call: manifests (dropping their blobs' reference counts),
 * tags with their history, blob links, upload sessions, and the markers, so a later push to the
 * same name starts a new repository.
 */
export async function purgeRepositoryContent(
  objects: ObjectDirectory,
  name: RepositoryName,
): Promise<{ manifests: number; tags: number }> {
  const { manifests, tags } = await objects.repository(name).deleteAll();
  return { manifests, tags };
}

function repositoryView(row: typeof repositories.$inferSelect): RepositoryView {
  return {
    name: row.name,
    namespace: row.namespace,
    visibility: row.visibility,
    state: row.state,
    createdAt: row.createdAt.toISOString(),
  };
}
