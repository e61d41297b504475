// Fleet credentials: what a build-fleet host presents to connect (`erf_…`). Superusers create them
// (the secret is shown once; only its SHA-256 is stored), list them and revoke them; revoking also
// disconnects the hosts that connected with it. A bootstrap credential from the FLEET_CREDENTIAL
// secret works besides them, so a local fleet host runs out of the box.
import { and, desc, eq, isNull, sql } from "drizzle-orm";
import { fleetCredentials } from "../../../schema/db/d1.ts";
import { hashSecretToken, newSecretToken } from "../auth/secret-tokens.ts";
import { emit, type IdentityContext, ormOf } from "./identity/context.ts";
import { forbidden, notFound } from "./identity/errors.ts";
import { type Page, type PageRequest, toPage } from "./identity/pagination.ts";

/** The id connections made with the FLEET_CREDENTIAL secret are known by. */
export const BOOTSTRAP_CREDENTIAL_ID = "bootstrap";

export interface FleetCredentialView {
  id: string;
  name: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

type Row = typeof fleetCredentials.$inferSelect;

function viewOf(row: Row): FleetCredentialView {
  return {
    id: row.id,
    name: row.name,
    createdAt: row.createdAt.toISOString(),
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
    revokedAt: row.revokedAt?.toISOString() ?? null,
  };
}

function requireSuperuser(ctx: IdentityContext, purpose: string): void {
  if (!ctx.caller.superuser) throw forbidden(`only superusers may ${purpose}`);
}

export async function createFleetCredential(
  ctx: IdentityContext,
  name: string,
): Promise<FleetCredentialView & { credential: string }> {
  requireSuperuser(ctx, "create fleet credentials");
  const credential = newSecretToken("fleet");
  const row = {
    id: crypto.randomUUID(),
    name,
    tokenHash: await hashSecretToken(credential),
    createdBy: ctx.caller.id,
    createdAt: new Date(),
  };
  await ormOf(ctx).insert(fleetCredentials).values(row).run();
  emit(ctx, "fleet-credential.create", { metadata: { credentialId: row.id, name } });
  return { ...viewOf({ ...row, lastUsedAt: null, revokedAt: null }), credential };
}

/** Every credential, newest first, without secrets. */
export async function listFleetCredentials(
  ctx: IdentityContext,
  page: PageRequest,
): Promise<Page<FleetCredentialView>> {
  requireSuperuser(ctx, "list fleet credentials");
  const after = page.after
    ? sql`(${fleetCredentials.createdAt}, ${fleetCredentials.id}) < (${Number(page.after[0])}, ${page.after[1]})`
    : undefined;
  const rows = await ormOf(ctx)
    .select()
    .from(fleetCredentials)
    .where(after)
    .orderBy(desc(fleetCredentials.createdAt), desc(fleetCredentials.id))
    .limit(page.limit + 1)
    .all();
  return toPage(rows, page.limit, (row) => [String(row.createdAt.getTime()), row.id], viewOf);
}

/** Revokes a credential and disconnects its hosts; revoking twice is a no-op. */
export async function revokeFleetCredential(
  ctx: IdentityContext,
  id: string,
  disconnect: (credentialId: string) => Promise<number>,
): Promise<FleetCredentialView> {
  requireSuperuser(ctx, "revoke fleet credentials");
  const orm = ormOf(ctx);
  const row = await orm.select().from(fleetCredentials).where(eq(fleetCredentials.id, id)).get();
  if (!row) throw notFound(`fleet credential ${id} not found`);
  if (row.revokedAt) return viewOf(row);
  const revokedAt = new Date();
  await orm
    .update(fleetCredentials)
    .set({ revokedAt })
    .where(and(eq(fleetCredentials.id, id), isNull(fleetCredentials.revokedAt)))
    .run();
  const disconnected = await disconnect(id);
  emit(ctx, "fleet-credential.revoke", {
    metadata: { credentialId: id, name: row.name, disconnected },
  });
  return viewOf({ ...row, revokedAt });
}

/**
 * The credential behind a fleet host's bearer secret, or null. `lastUsed` receives the
 * bookkeeping write, so the caller decides whether to wait for it.
 */
export async function authenticateFleetHost(
  db: D1Database,
  secret: string,
  bootstrap: string | undefined,
  lastUsed: (write: Promise<unknown>) => void,
): Promise<{ id: string; name: string } | null> {
  if (bootstrap && (await sameSecret(secret, bootstrap))) {
    return { id: BOOTSTRAP_CREDENTIAL_ID, name: "FLEET_CREDENTIAL" };
  }
  const orm = ormOf({ db } as IdentityContext);
  const row = await orm
    .select({ id: fleetCredentials.id, name: fleetCredentials.name })
    .from(fleetCredentials)
    .where(
      and(
        eq(fleetCredentials.tokenHash, await hashSecretToken(secret)),
        isNull(fleetCredentials.revokedAt),
      ),
    )
    .get();
  if (!row) return null;
  lastUsed(
    orm
      .update(fleetCredentials)
      .set({ lastUsedAt: new Date() })
      .where(eq(fleetCredentials.id, row.id))
      .run(),
  );
  return row;
}

/** Timing-safe: compares hashes, so neither length nor content leaks through timing. */
async function sameSecret(a: string, b: string): Promise<boolean> {
  const encoder = new TextEncoder();
  const [x, y] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(a)),
    crypto.subtle.digest("SHA-256", encoder.encode(b)),
  ]);
  return crypto.subtle.timingSafeEqual(x, y);
}
