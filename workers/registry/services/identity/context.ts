// Who asks and where their changes are announced: the context every identity service takes, the
// event helper that stamps actor and client address, and the checks that turn a caller's standing
// in a namespace or repository into "not found" (cannot see it) or "forbidden" (cannot change it).
import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { namespaces, type TeamRole } from "../../../../schema/db/d1.ts";
import type { EventActor, EventKind } from "../../../../schema/events.ts";
import { orgRoleOf, repositoryAccess } from "../../auth/access.ts";
import type { Principal } from "../../auth/principals.ts";
import type { EventSink } from "../events.ts";
import { forbidden, notFound } from "./errors.ts";

/** The management API serves people only (robots are refused at the door). */
export type Caller = Extract<Principal, { kind: "user" }>;

export interface IdentityContext {
  db: D1Database;
  caller: Caller;
  events: EventSink;
  clientIp?: string;
}

export type Orm = ReturnType<typeof drizzle>;

export function ormOf(ctx: IdentityContext): Orm {
  return drizzle(ctx.db);
}

/** An app token acts for its user; the audit log records which token it was. */
export function actorOf(caller: Caller): EventActor {
  return caller.tokenId
    ? { kind: "token", name: caller.name, id: caller.tokenId }
    : { kind: "user", name: caller.name, id: caller.id };
}

/** Announces a committed change (call it only after the write succeeded). */
export function emit(
  ctx: IdentityContext,
  kind: EventKind,
  fields: { namespace?: string; repository?: string; metadata?: Record<string, unknown> } = {},
): void {
  ctx.events.emit({
    kind,
    actor: actorOf(ctx.caller),
    ...(ctx.clientIp ? { clientIp: ctx.clientIp } : {}),
    ...fields,
  });
}

export interface NamespaceStanding {
  name: string;
  kind: "user" | "org";
  /** Whether the namespace row exists (a user's own namespace may predate it). */
  stored: boolean;
  /** The caller's strongest team role (organizations only). */
  role: TeamRole | undefined;
  /** May see that it exists: its owner, any team member of an organization, superusers. */
  visible: boolean;
  /** Administers it: its own user, organization admins, superusers. */
  admin: boolean;
  /** May create repositories in it: admins and creator-role teams. */
  canCreate: boolean;
}

/** The caller's standing in a namespace; undefined when no such namespace exists. */
export async function namespaceStanding(
  ctx: IdentityContext,
  name: string,
): Promise<NamespaceStanding | undefined> {
  const orm = ormOf(ctx);
  const { caller } = ctx;
  const row = await orm.select().from(namespaces).where(eq(namespaces.name, name)).get();
  if (!row) {
    if (name !== caller.name) return undefined;
    // The caller's own namespace, whose row was never written (an account made before it was).
    return {
      name,
      kind: "user",
      stored: false,
      role: undefined,
      visible: true,
      admin: true,
      canCreate: true,
    };
  }
  if (row.kind === "user") {
    const own = name === caller.name || caller.superuser;
    return {
      name,
      kind: "user",
      stored: true,
      role: undefined,
      visible: own,
      admin: own,
      canCreate: own,
    };
  }
  const role = await orgRoleOf(orm, caller.id, name);
  const admin = caller.superuser || role === "admin";
  return {
    name,
    kind: "org",
    stored: true,
    role,
    visible: caller.superuser || role !== undefined,
    admin,
    canCreate: admin || role === "creator",
  };
}

/** 404 unless the caller may see the namespace, 403 unless they administer it. */
export async function requireNamespaceAdmin(
  ctx: IdentityContext,
  name: string,
  purpose: string,
): Promise<NamespaceStanding> {
  const standing = await namespaceStanding(ctx, name);
  if (!standing?.visible) throw notFound(`namespace ${name} not found`);
  if (!standing.admin) throw forbidden(`only administrators of ${name} may ${purpose}`);
  return standing;
}

/** 404 unless the organization exists and the caller may see it, 403 unless they administer it. */
export async function requireOrgAdmin(
  ctx: IdentityContext,
  org: string,
  purpose: string,
): Promise<NamespaceStanding> {
  const standing = await requireVisibleOrg(ctx, org);
  if (!standing.admin) throw forbidden(`only administrators of organization ${org} may ${purpose}`);
  return standing;
}

export async function requireVisibleOrg(
  ctx: IdentityContext,
  org: string,
): Promise<NamespaceStanding> {
  const standing = await namespaceStanding(ctx, org);
  if (standing?.kind !== "org" || !standing.visible) {
    throw notFound(`organization ${org} not found`);
  }
  return standing;
}

/**
 * 404 unless the repository exists and the caller may at least pull from it (a private name they
 * cannot see is indistinguishable from a missing one), 403 unless they administer it.
 */
export async function requireRepositoryAdmin(
  ctx: IdentityContext,
  repository: string,
  purpose: string,
): Promise<void> {
  const access = await repositoryAccess(ctx.db, ctx.caller, repository);
  if (!access.exists || !(access.admin || access.actions.has("pull"))) {
    throw notFound(`repository ${repository} not found`);
  }
  if (!access.admin) {
    throw forbidden(`only administrators of repository ${repository} may ${purpose}`);
  }
}
