// Personal app tokens: created for the caller and shown once (only their SHA-256 is stored),
// listed without secrets, revoked by stamping `revokedAt` (kept for the audit trail).
import { and, desc, eq, isNull, lt, or, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { appTokens } from "../../../../schema/db/d1.ts";
import { forgetCachedCredentials } from "../../auth/principals.ts";
import { hashSecretToken, newSecretToken } from "../../auth/secret-tokens.ts";
import { emit, type IdentityContext, ormOf } from "./context.ts";
import { conflict, notFound } from "./errors.ts";
import { type Page, type PageRequest, toPage } from "./pagination.ts";

/** More live tokens than this per user is a leak waiting to happen: revoke some first. */
export const MAX_ACTIVE_TOKENS = 100;
const DAY_MS = 86_400_000;

export interface AppTokenView {
  id: string;
  name: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export async function createAppToken(
  ctx: IdentityContext,
  input: { name: string; expiresInDays?: number },
): Promise<AppTokenView & { token: string }> {
  const orm = ormOf(ctx);
  const now = Date.now();
  const active = await orm
    .select({ count: sql<number>`count(*)` })
    .from(appTokens)
    .where(
      and(
        eq(appTokens.userId, ctx.caller.id),
        isNull(appTokens.revokedAt),
        sql`(${appTokens.expiresAt} IS NULL OR ${appTokens.expiresAt} > ${now})`,
      ),
    )
    .get();
  if ((active?.count ?? 0) >= MAX_ACTIVE_TOKENS) {
    throw conflict(`you already have ${MAX_ACTIVE_TOKENS} active tokens: revoke some first`);
  }
  const token = newSecretToken("app");
  const row = {
    id: crypto.randomUUID(),
    userId: ctx.caller.id,
    name: input.name,
    tokenHash: await hashSecretToken(token),
    createdAt: new Date(now),
    expiresAt:
      input.expiresInDays === undefined ? null : new Date(now + input.expiresInDays * DAY_MS),
  };
  await orm.insert(appTokens).values(row).run();
  emit(ctx, "token.create", {
    namespace: ctx.caller.name,
    metadata: { tokenId: row.id, name: row.name, expiresAt: row.expiresAt?.toISOString() ?? null },
  });
  return { ...tokenView({ ...row, lastUsedAt: null, revokedAt: null }), token };
}

/** The caller's tokens, newest first, without secrets. */
export async function listAppTokens(
  ctx: IdentityContext,
  page: PageRequest,
): Promise<Page<AppTokenView>> {
  const orm = ormOf(ctx);
  const after = page.after
    ? sql`(${appTokens.createdAt}, ${appTokens.id}) < (${Number(page.after[0])}, ${page.after[1]})`
    : undefined;
  const rows = await orm
    .select()
    .from(appTokens)
    .where(and(eq(appTokens.userId, ctx.caller.id), after))
    .orderBy(desc(appTokens.createdAt), desc(appTokens.id))
    .limit(page.limit + 1)
    .all();
  return toPage(rows, page.limit, (row) => [String(row.createdAt.getTime()), row.id], tokenView);
}

/** Revokes one of the caller's tokens; revoking a revoked token changes nothing. */
export async function revokeAppToken(ctx: IdentityContext, id: string): Promise<void> {
  const orm = ormOf(ctx);
  const token = await orm
    .select({ id: appTokens.id, name: appTokens.name, revokedAt: appTokens.revokedAt })
    .from(appTokens)
    .where(and(eq(appTokens.id, id), eq(appTokens.userId, ctx.caller.id)))
    .get();
  // Another user's token id is as unknown as a made-up one.
  if (!token) throw notFound(`token ${id} not found`);
  if (token.revokedAt) return;
  const revoked = await orm
    .update(appTokens)
    .set({ revokedAt: new Date() })
    .where(and(eq(appTokens.id, id), isNull(appTokens.revokedAt)))
    .returning({ id: appTokens.id })
    .all();
  if (revoked.length === 0) return;
  // The registry's Basic path remembers verified credentials for a few seconds: forget them now.
  forgetCachedCredentials();
  emit(ctx, "token.revoke", {
    namespace: ctx.caller.name,
    metadata: { tokenId: id, name: token.name },
  });
}

/** Best-effort bookkeeping after a request: at most one write per token per minute. */
export async function touchAppToken(db: D1Database, id: string, now = Date.now()): Promise<void> {
  await drizzle(db)
    .update(appTokens)
    .set({ lastUsedAt: new Date(now) })
    .where(
      and(
        eq(appTokens.id, id),
        or(isNull(appTokens.lastUsedAt), lt(appTokens.lastUsedAt, new Date(now - 60_000))),
      ),
    )
    .run();
}

function tokenView(row: typeof appTokens.$inferSelect): AppTokenView {
  return {
    id: row.id,
    name: row.name,
    createdAt: row.createdAt.toISOString(),
    expiresAt: row.expiresAt?.toISOString() ?? null,
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
    revokedAt: row.revokedAt?.toISOString() ?? null,
  };
}
