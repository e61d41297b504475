// Robot accounts `namespace+name`: made, listed, deleted and re-keyed by the namespace's
// administrators. The token is shown once (only its SHA-256 is stored); deleting a robot or
// changing its token drops every credential the registry's Basic path remembers.
import { and, asc, eq, gt, notExists, sql } from "drizzle-orm";
import { defaultPermissions, namespaces, permissions, robots } from "../../../../schema/db/d1.ts";
import { forgetCachedCredentials } from "../../auth/principals.ts";
import { hashSecretToken, newSecretToken } from "../../auth/secret-tokens.ts";
import {
  emit,
  type IdentityContext,
  type NamespaceStanding,
  ormOf,
  requireNamespaceAdmin,
} from "./context.ts";
import { conflict, isUniqueViolation, notFound } from "./errors.ts";
import { type Page, type PageRequest, toPage } from "./pagination.ts";

export interface RobotView {
  /** The full name used to log in: `namespace+shortname`. */
  name: string;
  shortname: string;
  namespace: string;
  description: string | null;
  createdAt: string;
}

export async function createRobot(
  ctx: IdentityContext,
  namespace: string,
  input: { shortname: string; description?: string },
): Promise<RobotView & { token: string }> {
  const standing = await requireNamespaceAdmin(ctx, namespace, "manage its robots");
  await ensureNamespaceRow(ctx, standing);
  const token = newSecretToken("robot");
  const row = {
    id: crypto.randomUUID(),
    namespace,
    shortname: input.shortname,
    description: input.description ?? null,
    tokenHash: await hashSecretToken(token),
    createdAt: new Date(),
  };
  try {
    await ormOf(ctx).insert(robots).values(row).run();
  } catch (error) {
    if (isUniqueViolation(error))
      throw conflict(`robot ${namespace}+${input.shortname} already exists`);
    throw error;
  }
  emit(ctx, "robot.create", { namespace, metadata: { robot: `${namespace}+${input.shortname}` } });
  return { ...robotView(row), token };
}

export async function listRobots(
  ctx: IdentityContext,
  namespace: string,
  page: PageRequest,
): Promise<Page<RobotView>> {
  await requireNamespaceAdmin(ctx, namespace, "see its robots");
  const rows = await ormOf(ctx)
    .select()
    .from(robots)
    .where(
      and(
        eq(robots.namespace, namespace),
        page.after ? gt(robots.shortname, page.after[0]!) : undefined,
      ),
    )
    .orderBy(asc(robots.shortname))
    .limit(page.limit + 1)
    .all();
  return toPage(rows, page.limit, (row) => [row.shortname], robotView);
}

export async function describeRobot(
  ctx: IdentityContext,
  namespace: string,
  shortname: string,
): Promise<RobotView> {
  await requireNamespaceAdmin(ctx, namespace, "see its robots");
  return robotView(await findRobot(ctx, namespace, shortname));
}

/** Deletes a robot and every permission granted to it. */
export async function deleteRobot(
  ctx: IdentityContext,
  namespace: string,
  shortname: string,
): Promise<void> {
  await requireNamespaceAdmin(ctx, namespace, "manage its robots");
  const orm = ormOf(ctx);
  const robot = await findRobot(ctx, namespace, shortname);
  const gone = notExists(orm.select({ one: sql`1` }).from(robots).where(eq(robots.id, robot.id)));
  const [deleted] = await orm.batch([
    orm.delete(robots).where(eq(robots.id, robot.id)).returning({ id: robots.id }),
    orm
      .delete(permissions)
      .where(
        and(eq(permissions.principalKind, "robot"), eq(permissions.principalId, robot.id), gone),
      ),
    orm
      .delete(defaultPermissions)
      .where(
        and(
          eq(defaultPermissions.principalKind, "robot"),
          eq(defaultPermissions.principalId, robot.id),
          gone,
        ),
      ),
  ]);
  if (deleted.length === 0) throw notFound(`robot ${namespace}+${shortname} not found`);
  forgetCachedCredentials();
  emit(ctx, "robot.delete", { namespace, metadata: { robot: `${namespace}+${shortname}` } });
}

/** Replaces a robot's token: the old one stops working at once. */
export async function regenerateRobotToken(
  ctx: IdentityContext,
  namespace: string,
  shortname: string,
): Promise<RobotView & { token: string }> {
  await requireNamespaceAdmin(ctx, namespace, "manage its robots");
  const robot = await findRobot(ctx, namespace, shortname);
  const token = newSecretToken("robot");
  const updated = await ormOf(ctx)
    .update(robots)
    .set({ tokenHash: await hashSecretToken(token) })
    .where(eq(robots.id, robot.id))
    .returning()
    .get();
  if (!updated) throw notFound(`robot ${namespace}+${shortname} not found`);
  forgetCachedCredentials();
  emit(ctx, "robot.token.regenerate", {
    namespace,
    metadata: { robot: `${namespace}+${shortname}` },
  });
  return { ...robotView(updated), token };
}

async function findRobot(
  ctx: IdentityContext,
  namespace: string,
  shortname: string,
): Promise<typeof robots.$inferSelect> {
  const robot = await ormOf(ctx)
    .select()
    .from(robots)
    .where(and(eq(robots.namespace, namespace), eq(robots.shortname, shortname)))
    .get();
  if (!robot) throw notFound(`robot ${namespace}+${shortname} not found`);
  return robot;
}

/** A user's own namespace row may be missing (an account made without one): robots need it. */
async function ensureNamespaceRow(
  ctx: IdentityContext,
  standing: NamespaceStanding,
): Promise<void> {
  if (standing.stored) return;
  await ormOf(ctx)
    .insert(namespaces)
    .values({ name: standing.name, kind: standing.kind, createdAt: new Date() })
    .onConflictDoNothing()
    .run();
}

function robotView(row: typeof robots.$inferSelect): RobotView {
  return {
    name: `${row.namespace}+${row.shortname}`,
    shortname: row.shortname,
    namespace: row.namespace,
    description: row.description,
    createdAt: row.createdAt.toISOString(),
  };
}
