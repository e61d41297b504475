// Who is calling: HTTP Basic credentials (password, app token or robot token) resolved against
// D1 into a Principal. Verified credentials are cached briefly per isolate, because PBKDF2 is
// deliberately slow and clients that send Basic on every request would pay it every time.
import { and, eq, isNull } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { appTokens, robots, users } from "../../../schema/db/d1.ts";
import { verifyPassword } from "./passwords.ts";
import { hashSecretToken, TOKEN_PREFIX } from "./secret-tokens.ts";

export type Principal =
  | { kind: "anonymous" }
  | {
      kind: "user";
      id: string;
      name: string;
      superuser: boolean;
      /** Set when the caller used an app token rather than the password. */
      tokenId?: string;
    }
  | { kind: "robot"; id: string; name: string; namespace: string };

export const ANONYMOUS: Principal = { kind: "anonymous" };

const CACHE_TTL_MS = 30_000;
const CACHE_MAX = 1000;
const verified = new Map<string, { principal: Principal; until: number }>();

export function parseBasicHeader(
  header: string | undefined,
): { user: string; secret: string } | undefined {
  const match = header ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header) : null;
  if (!match) return undefined;
  let decoded: string;
  try {
    decoded = new TextDecoder().decode(Uint8Array.from(atob(match[1]!), (ch) => ch.charCodeAt(0)));
  } catch {
    return undefined;
  }
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), secret: decoded.slice(colon + 1) };
}

/** Resolves credentials to a principal, or null when they are wrong (never throws for input). */
export async function authenticate(
  db: D1Database,
  user: string,
  secret: string,
): Promise<Principal | null> {
  if (user === "" && secret === "") return ANONYMOUS;
  const cacheKey = await hashSecretToken(`${user}\u0000${secret}`);
  const hit = verified.get(cacheKey);
  if (hit && hit.until > Date.now()) return hit.principal;
  const principal = await lookup(drizzle(db), user, secret);
  if (principal) {
    if (verified.size >= CACHE_MAX) verified.delete(verified.keys().next().value!);
    verified.set(cacheKey, { principal, until: Date.now() + CACHE_TTL_MS });
  }
  return principal;
}

/** Forget cached credentials (after a password change, token revocation, robot deletion). */
export function forgetCachedCredentials(): void {
  verified.clear();
}

async function lookup(
  orm: ReturnType<typeof drizzle>,
  user: string,
  secret: string,
): Promise<Principal | null> {
  const plus = user.indexOf("+");
  if (plus > 0) {
    const namespace = user.slice(0, plus);
    const shortname = user.slice(plus + 1);
    const robot = await orm
      .select()
      .from(robots)
      .where(and(eq(robots.namespace, namespace), eq(robots.shortname, shortname)))
      .get();
    if (!robot || !(await sameHash(await hashSecretToken(secret), robot.tokenHash))) return null;
    return { kind: "robot", id: robot.id, name: user, namespace };
  }
  const account = await orm.select().from(users).where(eq(users.username, user)).get();
  if (!account || account.disabled) return null;
  const base = {
    kind: "user" as const,
    id: account.id,
    name: account.username,
    superuser: account.superuser,
  };
  if (secret.startsWith(TOKEN_PREFIX.app)) {
    const token = await orm
      .select()
      .from(appTokens)
      .where(
        and(eq(appTokens.tokenHash, await hashSecretToken(secret)), isNull(appTokens.revokedAt)),
      )
      .get();
    if (!token || token.userId !== account.id) return null;
    if (token.expiresAt && token.expiresAt.getTime() <= Date.now()) return null;
    return { ...base, tokenId: token.id };
  }
  if (!account.passwordHash || !(await verifyPassword(secret, account.passwordHash))) return null;
  return base;
}

async function sameHash(a: string, b: string): Promise<boolean> {
  const encoder = new TextEncoder();
  const [x, y] = [encoder.encode(a), encoder.encode(b)];
  return x.byteLength === y.byteLength && crypto.subtle.timingSafeEqual(x, y);
}

/** Looks up an app token presented as a bearer secret (management API). */
export async function authenticateAppToken(
  db: D1Database,
  secret: string,
): Promise<Principal | null> {
  if (!secret.startsWith(TOKEN_PREFIX.app)) return null;
  const orm = drizzle(db);
  const row = await orm
    .select({ token: appTokens, user: users })
    .from(appTokens)
    .innerJoin(users, eq(users.id, appTokens.userId))
    .where(and(eq(appTokens.tokenHash, await hashSecretToken(secret)), isNull(appTokens.revokedAt)))
    .get();
  if (!row || row.user.disabled) return null;
  if (row.token.expiresAt && row.token.expiresAt.getTime() <= Date.now()) return null;
  return {
    kind: "user",
    id: row.user.id,
    name: row.user.username,
    superuser: row.user.superuser,
    tokenId: row.token.id,
  };
}
