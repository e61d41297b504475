// Build tokens: the one credential a build gets. An ES256 registry token (auth/registry-tokens.ts)
// whose access is pull+push on the build's target repository only, with a `build` claim naming
// the build and attempt, living as long as a build may run, and honoured only while that attempt
// is the build's current, running one (its BuildObject says so: only build tokens pay that call).
// The trusted fleet process may exchange it at /v2/auth for a short pull token covering what the
// build's requester may pull (base images for `FROM`); the exchanged token carries the same claim,
// so it dies with the build too.
import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import type { BuildObject } from "../../../durable-objects/build-object.ts";
import { BUILD_TIMEOUT_MS } from "../../../schema/builds.ts";
import { appTokens, robots, users } from "../../../schema/db/d1.ts";
import type { EventActor } from "../../../schema/events.ts";
import { parseRepositoryName } from "../../../schema/oci/reference.ts";
import { repositoryAccess } from "../auth/access.ts";
import { ANONYMOUS, type Principal } from "../auth/principals.ts";
import {
  type AccessEntry,
  type BuildClaim,
  issueRegistryToken,
  TOKEN_TTL_SECONDS,
  verifyRegistryToken,
} from "../auth/registry-tokens.ts";

export interface BuildTokenKeys {
  /** TOKEN_SIGNING_KEY. */
  signingKey: string;
  /** The token audience (REGISTRY_SERVICE, "edge-registry" by default). */
  service: string;
}

export type BuildObjects = DurableObjectNamespace<BuildObject>;

/** The token for one attempt of a build; it expires when a build must have ended anyway. */
export async function issueBuildToken(
  keys: BuildTokenKeys,
  claim: BuildClaim,
  now = Date.now(),
): Promise<{ token: string; expiresAt: number }> {
  const ttlSeconds = Math.floor(BUILD_TIMEOUT_MS / 1000);
  const issued = await issueRegistryToken(
    keys.signingKey,
    keys.service,
    {
      sub: `build:${claim.id}`,
      access: [{ type: "repository", name: claim.repository, actions: ["pull", "push"] }],
      principal: { kind: "anonymous" },
      build: claim,
    },
    now,
    ttlSeconds,
  );
  return { token: issued.token, expiresAt: (Math.floor(now / 1000) + ttlSeconds) * 1000 };
}

/** Whether the attempt a build token belongs to is still the build's current, running one. */
export function buildTokenActive(builds: BuildObjects, claim: BuildClaim): Promise<boolean> {
  if (typeof claim.id !== "string" || !Number.isInteger(claim.attempt))
    return Promise.resolve(false);
  return builds.getByName(claim.id).tokenActive(claim.attempt);
}

/** Who a build events and audit records name when it acts through its token. */
export function buildActor(claim: BuildClaim): EventActor {
  return { kind: "build", id: `${claim.id}#${claim.attempt}`, name: claim.id };
}

/** The claims of a live build token, or null (bad signature, expired, not a build token, ended). */
export async function verifyBuildToken(
  keys: BuildTokenKeys,
  builds: BuildObjects,
  token: string,
): Promise<(BuildClaim & { exp: number }) | null> {
  const claims = await verifyRegistryToken(keys.signingKey, keys.service, token);
  if (!claims?.build || !claims.exp) return null;
  if (!(await buildTokenActive(builds, claims.build))) return null;
  return { ...claims.build, exp: claims.exp };
}

/**
 * GET /v2/auth with `Authorization: Bearer <build token>`: a token for the requested scopes,
 * narrowed to pull on what the build's requester may pull, plus pull/push on the build's own
 * target (which the build token already holds). Never push anywhere else. Null when the build
 * token is not (or no longer) valid.
 */
export async function exchangeBuildToken(
  deps: BuildTokenKeys & { db: D1Database; builds: BuildObjects },
  token: string,
  scopes: readonly string[],
  now = Date.now(),
): Promise<{ token: string; expiresIn: number; issuedAt: string } | null> {
  const claim = await verifyBuildToken(deps, deps.builds, token);
  if (!claim) return null;
  const ttl = Math.min(TOKEN_TTL_SECONDS, claim.exp - Math.floor(now / 1000));
  if (ttl <= 0) return null;
  const { exp: _exp, ...build } = claim;
  let requester: Promise<Principal> | undefined;
  const access: AccessEntry[] = [];
  for (const scope of scopes) {
    const first = scope.indexOf(":");
    const last = scope.lastIndexOf(":");
    if (first < 0 || last === first || scope.slice(0, first) !== "repository") continue;
    const name = scope.slice(first + 1, last);
    if (!parseRepositoryName(name)) continue;
    const requested = new Set(scope.slice(last + 1).split(","));
    const wants = (action: string) => requested.has(action) || requested.has("*");
    if (name === build.repository) {
      const actions = ["pull", "push"].filter(wants);
      if (actions.length > 0) access.push({ type: "repository", name, actions });
      continue;
    }
    if (!wants("pull")) continue;
    requester ??= requesterPrincipal(deps.db, build.requester);
    const { actions } = await repositoryAccess(deps.db, await requester, name);
    if (actions.has("pull")) access.push({ type: "repository", name, actions: ["pull"] });
  }
  return issueRegistryToken(
    deps.signingKey,
    deps.service,
    { sub: `build:${build.id}`, access, principal: { kind: "anonymous" }, build },
    now,
    ttl,
  );
}

/**
 * The principal whose pull rights a build has, as of now: a disabled user, a revoked app token or
 * a deleted robot gives the build nothing beyond what anyone may pull.
 */
export async function requesterPrincipal(db: D1Database, actor: EventActor): Promise<Principal> {
  const orm = drizzle(db);
  if ((actor.kind === "user" || actor.kind === "token") && actor.id) {
    let userId: string | undefined = actor.id;
    if (actor.kind === "token") {
      const token = await orm
        .select({ userId: appTokens.userId, revokedAt: appTokens.revokedAt })
        .from(appTokens)
        .where(eq(appTokens.id, actor.id))
        .get();
      userId = token && token.revokedAt === null ? token.userId : undefined;
    }
    if (!userId) return ANONYMOUS;
    const user = await orm.select().from(users).where(eq(users.id, userId)).get();
    if (!user || user.disabled) return ANONYMOUS;
    return { kind: "user", id: user.id, name: user.username, superuser: user.superuser };
  }
  if (actor.kind === "robot" && actor.id) {
    const robot = await orm.select().from(robots).where(eq(robots.id, actor.id)).get();
    if (!robot) return ANONYMOUS;
    return {
      kind: "robot",
      id: robot.id,
      name: `${robot.namespace}+${robot.shortname}`,
      namespace: robot.namespace,
    };
  }
  return ANONYMOUS;
}
