// Identities made straight in D1 for the access suites (users, organizations, teams, robots, app
// tokens, repository rows, permission grants), plus the client side of the Docker token flow:
// fetching tokens from /v2/auth, forging tokens with the test key, and sending /v2 requests with
// exactly the credentials a test names. Nothing here goes through the management API, so these
// suites test the registry's access rules and nothing else.
import { env, SELF } from "cloudflare:test";
import { and, eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { decodeJwt, importJWK, type JWK, type JWTPayload, SignJWT } from "jose";
import { expect } from "vitest";
import {
  appTokens,
  defaultPermissions,
  namespaces,
  type PermissionRole,
  permissions,
  repositories,
  robots,
  type TeamRole,
  teamMembers,
  teams,
  users,
  type Visibility,
} from "../../schema/db/d1.ts";
import { hashPassword } from "../../workers/registry/auth/passwords.ts";
import { hashSecretToken, newSecretToken } from "../../workers/registry/auth/secret-tokens.ts";
import { ORIGIN } from "./helpers.ts";

const orm = () => drizzle(env.DB);

let counter = 0;
/**
 * A lowercase name no other test uses, valid as a username, organization or path component. Fixed
 * width after the prefix, so no name is the beginning of another (tests list the catalog by
 * prefix).
 */
export function uniqueName(prefix = "id"): string {
  counter += 1;
  const random = Math.floor(Math.random() * 36 ** 4);
  return `${prefix}${Date.now().toString(36).padStart(9, "0")}${(counter % 36 ** 4).toString(36).padStart(4, "0")}${random.toString(36).padStart(4, "0")}`;
}

// ---- identities -------------------------------------------------------------------------------

/** Every fixture user's password. */
export const PASSWORD = "correct-horse-battery-staple";

// PBKDF2 at the production iteration count costs real time per hash; the suites make hundreds
// of users, so they share one hash (salt included). Verifying still pays the full cost.
let sharedPasswordHash: Promise<string> | undefined;
function passwordHash(): Promise<string> {
  sharedPasswordHash ??= hashPassword(PASSWORD);
  return sharedPasswordHash;
}

export interface UserFixture {
  kind: "user";
  id: string;
  name: string;
  password: string;
  /** A personal app token (`era_…`) made with the user. */
  appToken: string;
  appTokenId: string;
  superuser: boolean;
}

export interface RobotFixture {
  kind: "robot";
  id: string;
  /** `namespace+shortname`, the Basic user name. */
  name: string;
  namespace: string;
  /** The robot's secret (`err_…`). */
  token: string;
}

export interface TeamFixture {
  kind: "team";
  id: string;
  org: string;
  name: string;
  role: TeamRole;
}

export type Grantee = UserFixture | RobotFixture | TeamFixture;

type Statement = Parameters<ReturnType<typeof orm>["batch"]>[0][number];

/**
 * Identities queued and written in one D1 batch (one round trip, one transaction): a test's whole
 * cast of users, teams, robots, repositories and grants costs about as much as a single query.
 */
export class IdentityBatch {
  private readonly db = orm();
  private readonly statements: Statement[] = [];

  /** A user with their own namespace, the shared password and one app token. */
  async user(
    options: { name?: string; superuser?: boolean; disabled?: boolean } = {},
  ): Promise<UserFixture> {
    const name = options.name ?? uniqueName("u");
    const id = crypto.randomUUID();
    const appToken = newSecretToken("app");
    const appTokenId = crypto.randomUUID();
    const superuser = options.superuser ?? false;
    this.statements.push(
      this.db.insert(namespaces).values({ name, kind: "user" }),
      this.db.insert(users).values({
        id,
        username: name,
        email: `${name}@example.test`,
        passwordHash: await passwordHash(),
        superuser,
        disabled: options.disabled ?? false,
      }),
      this.db.insert(appTokens).values({
        id: appTokenId,
        userId: id,
        name: "fixture",
        tokenHash: await hashSecretToken(appToken),
      }),
    );
    return { kind: "user", id, name, password: PASSWORD, appToken, appTokenId, superuser };
  }

  /** Another app token for a user, possibly already expired or revoked. */
  async appToken(
    user: UserFixture,
    options: { expiresAt?: Date; revokedAt?: Date } = {},
  ): Promise<{ id: string; token: string }> {
    const token = newSecretToken("app");
    const id = crypto.randomUUID();
    this.statements.push(
      this.db.insert(appTokens).values({
        id,
        userId: user.id,
        name: uniqueName("t"),
        tokenHash: await hashSecretToken(token),
        expiresAt: options.expiresAt ?? null,
        revokedAt: options.revokedAt ?? null,
      }),
    );
    return { id, token };
  }

  org(name = uniqueName("o")): string {
    this.statements.push(this.db.insert(namespaces).values({ name, kind: "org" }));
    return name;
  }

  team(
    org: string,
    role: TeamRole,
    members: UserFixture[] = [],
    name = uniqueName("team"),
  ): TeamFixture {
    const id = crypto.randomUUID();
    this.statements.push(this.db.insert(teams).values({ id, org, name, role }));
    for (const member of members) {
      this.statements.push(this.db.insert(teamMembers).values({ teamId: id, userId: member.id }));
    }
    return { kind: "team", id, org, name, role };
  }

  async robot(namespace: string, shortname = uniqueName("bot")): Promise<RobotFixture> {
    const token = newSecretToken("robot");
    const id = crypto.randomUUID();
    this.statements.push(
      this.db
        .insert(robots)
        .values({ id, namespace, shortname, tokenHash: await hashSecretToken(token) }),
    );
    return { kind: "robot", id, name: `${namespace}+${shortname}`, namespace, token };
  }

  /** A repository row (what the first push creates); content is pushed separately. */
  repository(
    name: string,
    options: { visibility?: Visibility; state?: "normal" | "read-only" } = {},
  ): string {
    const visibility = options.visibility ?? "private";
    const state = options.state ?? "normal";
    this.statements.push(
      this.db
        .insert(repositories)
        .values({
          name,
          namespace: name.includes("/") ? name.slice(0, name.indexOf("/")) : "",
          visibility,
          state,
          createdAt: new Date(),
        })
        .onConflictDoUpdate({ target: repositories.name, set: { visibility, state } }),
    );
    return name;
  }

  grant(repository: string, grantee: Grantee, role: PermissionRole): void {
    this.statements.push(
      this.db
        .insert(permissions)
        .values({ repository, principalKind: grantee.kind, principalId: grantee.id, role })
        .onConflictDoUpdate({
          target: [permissions.repository, permissions.principalKind, permissions.principalId],
          set: { role },
        }),
    );
  }

  /** A permission every repository created in `org` from now on starts with. */
  grantByDefault(org: string, grantee: Grantee, role: PermissionRole): void {
    this.statements.push(
      this.db
        .insert(defaultPermissions)
        .values({ org, principalKind: grantee.kind, principalId: grantee.id, role }),
    );
  }

  async commit(): Promise<void> {
    const [first, ...rest] = this.statements.splice(0);
    if (first) await this.db.batch([first, ...rest]);
  }
}

/** Runs `build` against a fresh batch and commits it: `await create((b) => b.user())`. */
export async function create<T>(build: (batch: IdentityBatch) => T | Promise<T>): Promise<T> {
  const batch = new IdentityBatch();
  const result = await build(batch);
  await batch.commit();
  return result;
}

export const createUser = (options?: Parameters<IdentityBatch["user"]>[0]) =>
  create((b) => b.user(options));
export const createAppToken = (
  user: UserFixture,
  options?: { expiresAt?: Date; revokedAt?: Date },
) => create((b) => b.appToken(user, options));
export const createOrg = (name?: string) => create((b) => b.org(name));
export const createTeam = (org: string, role: TeamRole, members?: UserFixture[], name?: string) =>
  create((b) => b.team(org, role, members, name));
export const createRobot = (namespace: string, shortname?: string) =>
  create((b) => b.robot(namespace, shortname));
export const createRepository = (
  name: string,
  options?: { visibility?: Visibility; state?: "normal" | "read-only" },
) => create((b) => b.repository(name, options));
export const grant = (repository: string, grantee: Grantee, role: PermissionRole) =>
  create((b) => b.grant(repository, grantee, role));
export const grantByDefault = (org: string, grantee: Grantee, role: PermissionRole) =>
  create((b) => b.grantByDefault(org, grantee, role));

export async function removeFromTeam(team: TeamFixture, user: UserFixture): Promise<void> {
  await orm()
    .delete(teamMembers)
    .where(and(eq(teamMembers.teamId, team.id), eq(teamMembers.userId, user.id)))
    .run();
}

export async function setRepository(
  name: string,
  changes: { visibility?: Visibility; state?: "normal" | "read-only" },
): Promise<void> {
  await orm().update(repositories).set(changes).where(eq(repositories.name, name)).run();
}

export async function repositoryRow(name: string) {
  return orm().select().from(repositories).where(eq(repositories.name, name)).get();
}

export async function permissionsOf(repository: string) {
  return orm().select().from(permissions).where(eq(permissions.repository, repository)).all();
}

export async function revoke(repository: string, grantee: Grantee): Promise<void> {
  await orm()
    .delete(permissions)
    .where(
      and(
        eq(permissions.repository, repository),
        eq(permissions.principalKind, grantee.kind),
        eq(permissions.principalId, grantee.id),
      ),
    )
    .run();
}

// ---- credentials and requests -----------------------------------------------------------------

/** The service (token audience) the Worker under test uses. */
export const SERVICE = env.REGISTRY_SERVICE || "edge-registry";
export const REALM = `${ORIGIN}/v2/auth`;
/** The issuer the registry puts in (and demands of) its tokens. */
export const ISSUER = "edge-registry-token-service";

export interface Credential {
  user: string;
  secret: string;
}

export function basicHeader(credential: Credential): string {
  const bytes = new TextEncoder().encode(`${credential.user}:${credential.secret}`);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return `Basic ${btoa(binary)}`;
}

/** A principal's Basic credential: users by password (default) or app token, robots by token. */
export function credentialOf(
  principal: UserFixture | RobotFixture,
  via: "password" | "app-token" = "password",
): Credential {
  if (principal.kind === "robot") return { user: principal.name, secret: principal.token };
  return {
    user: principal.name,
    secret: via === "password" ? principal.password : principal.appToken,
  };
}

/**
 * A request to the registry with exactly the given Authorization (null: none at all). Unlike
 * `api()` from helpers.ts, nothing defaults to the bootstrap admin.
 */
export async function send(
  path: string,
  authorization: string | null,
  init: RequestInit = {},
): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.delete("Authorization");
  if (authorization !== null) headers.set("Authorization", authorization);
  return SELF.fetch(`${ORIGIN}${path}`, { ...init, headers, redirect: "manual" });
}

/** GET /v2/auth for `scopes` (one `scope=` parameter each), with Basic credentials or none. */
export async function requestToken(
  credential: Credential | null,
  scopes: readonly string[],
  service: string | null = SERVICE,
): Promise<Response> {
  const query = new URLSearchParams();
  if (service !== null) query.set("service", service);
  for (const scope of scopes) query.append("scope", scope);
  return send(`/v2/auth?${query}`, credential ? basicHeader(credential) : null);
}

export interface TokenResponse {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
}

/** A token from /v2/auth (asserting it was issued). */
export async function fetchToken(
  credential: Credential | null,
  scopes: readonly string[],
): Promise<string> {
  const res = await requestToken(credential, scopes);
  const text = await res.text();
  expect(res.status, `GET /v2/auth: ${text}`).toBe(200);
  return (JSON.parse(text) as TokenResponse).token;
}

export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

/** The `access` claim of a token, without verifying it. */
export function accessOf(token: string): AccessEntry[] {
  return (decodeJwt(token) as { access: AccessEntry[] }).access;
}

export function bearer(token: string): string {
  return `Bearer ${token}`;
}

/** The test signing key (env.TOKEN_SIGNING_KEY): the same private key the Worker signs with. */
export async function registryKey(): Promise<{ key: CryptoKey; kid: string }> {
  const jwks = (await (await send("/.well-known/jwks.json", null)).json()) as { keys: JWK[] };
  const { key_ops: _ops, ext: _ext, ...jwk } = JSON.parse(env.TOKEN_SIGNING_KEY) as JWK;
  const key = (await importJWK({ ...jwk, alg: "ES256" }, "ES256")) as CryptoKey;
  return { key, kid: jwks.keys[0]!.kid! };
}

/** A fresh P-256 key the registry has never seen. */
export async function foreignKey(): Promise<CryptoKey> {
  const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  return pair.privateKey;
}

/**
 * Signs a registry token by hand: by default exactly what /v2/auth would issue (ES256, the
 * registry's key and kid, its issuer and audience, valid for five minutes); `claims` overrides.
 */
export async function forgeToken(
  claims: JWTPayload & { access?: AccessEntry[]; principal?: unknown },
  options: { key?: CryptoKey; kid?: string } = {},
): Promise<string> {
  const own = await registryKey();
  const now = Math.floor(Date.now() / 1000);
  const payload: JWTPayload = {
    iss: ISSUER,
    aud: SERVICE,
    sub: "forged",
    iat: now,
    nbf: now - 5,
    exp: now + 300,
    jti: crypto.randomUUID(),
    access: [],
    ...claims,
  };
  return new SignJWT(payload)
    .setProtectedHeader({ alg: "ES256", kid: options.kid ?? own.kid, typ: "JWT" })
    .sign(options.key ?? own.key);
}

function base64url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Keeps a token's header and signature but swaps in another payload (an escalation attempt). */
export function withPayload(token: string, payload: Record<string, unknown>): string {
  const [header, , signature] = token.split(".");
  return `${header}.${base64url(JSON.stringify(payload))}.${signature}`;
}

/** An unsigned token (`alg: none`). */
export function unsignedToken(payload: Record<string, unknown>): string {
  return `${base64url(JSON.stringify({ alg: "none", typ: "JWT" }))}.${base64url(JSON.stringify(payload))}.`;
}

/** A token MAC'd with HS256 (the algorithm-confusion attack when `secret` is public material). */
export async function hs256Token(
  payload: Record<string, unknown>,
  secret: Uint8Array,
  kid?: string,
): Promise<string> {
  return new SignJWT(payload)
    .setProtectedHeader({ alg: "HS256", typ: "JWT", ...(kid ? { kid } : {}) })
    .sign(secret);
}

// ---- asserting refusals -----------------------------------------------------------------------

/** The parameters of a `WWW-Authenticate: Bearer k="v",…` challenge. */
export function bearerChallenge(res: Response): Record<string, string> {
  const header = res.headers.get("WWW-Authenticate") ?? "";
  expect(header, "WWW-Authenticate").toMatch(/^Bearer\s+/);
  const params: Record<string, string> = {};
  for (const match of header.replace(/^Bearer\s+/, "").matchAll(/(\w+)="([^"]*)"/g)) {
    params[match[1]!] = match[2]!;
  }
  return params;
}

/** 401 with a Bearer challenge carrying `error="invalid_token"`. */
export async function expectInvalidToken(res: Response): Promise<void> {
  const text = await res.text();
  expect(res.status, text).toBe(401);
  const challenge = bearerChallenge(res);
  expect(challenge.realm).toBe(REALM);
  expect(challenge.service).toBe(SERVICE);
  expect(challenge.error).toBe("invalid_token");
}

/**
 * 401 with a Bearer challenge `error="insufficient_scope"` naming the scope to ask for: exactly
 * `scope` when given as a string, else a scope on `repository` that includes `action`.
 */
export async function expectInsufficientScope(
  res: Response,
  repository: string,
  action: "pull" | "push" | "delete",
  scope?: string,
): Promise<void> {
  const text = await res.text();
  expect(res.status, text).toBe(401);
  const challenge = bearerChallenge(res);
  expect(challenge.realm).toBe(REALM);
  expect(challenge.service).toBe(SERVICE);
  expect(challenge.error).toBe("insufficient_scope");
  if (scope !== undefined) expect(challenge.scope).toBe(scope);
  else {
    expect(challenge.scope).toMatch(new RegExp(`^repository:${repository}:[a-z,*]+$`));
    expect(challenge.scope!.split(":").at(-1)!.split(",")).toContain(action);
  }
}
