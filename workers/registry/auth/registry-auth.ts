// Authorization for /v2: the Docker token flow (Bearer JWTs from /v2/auth, checked against their
// `access` claim with no storage lookup) and HTTP Basic sent directly (resolved against D1).
// Refusals follow the token spec: 401 with a Bearer challenge naming the scope the client should
// ask for, so docker, skopeo and containerd fetch a token and retry.
import type { EventActor } from "../../../schema/events.ts";
import { RegistryError } from "../../../schema/oci/errors.ts";
import type { Env } from "../env.ts";
import { buildActor, buildTokenActive } from "../services/builds-tokens.ts";
import { type Action, repositoryAccess } from "./access.ts";
import { ANONYMOUS, authenticate, type Principal, parseBasicHeader } from "./principals.ts";
import { allows, type RegistryClaims, verifyRegistryToken } from "./registry-tokens.ts";

export interface RegistryAuth {
  principal: Principal;
  /** Who events name when not the principal: a build acting through its build token. */
  actor?: EventActor;
  /** Throws unless the caller may list the catalog (a token needs `registry:catalog:*`). */
  requireCatalog(): void;
  /** Throws 401 (with the challenge) or 403 unless the caller may do `action` on `repository`. */
  require(repository: string, action: Action): Promise<void>;
  /** Whether the caller may do `action` on `repository` (for checks that must not throw). */
  can(repository: string, action: Action): Promise<boolean>;
}

export function serviceName(env: Env): string {
  return env.REGISTRY_SERVICE || "edge-registry";
}

export function challenge(origin: string, env: Env, scope?: string, error?: string): string {
  let header = `Bearer realm="${origin}/v2/auth",service="${serviceName(env)}"`;
  if (scope) header += `,scope="${scope}"`;
  if (error) header += `,error="${error}"`;
  return header;
}

/** Builds the caller's authorization from the request headers; throws 401 for bad credentials. */
export async function registryAuth(
  request: Request,
  env: Env,
  onFailedLogin: (user: string) => void = () => {},
): Promise<RegistryAuth> {
  const origin = new URL(request.url).origin;
  const header = request.headers.get("Authorization") ?? undefined;
  const unauthorized = (repository?: string, action?: Action, error?: string) =>
    new RegistryError("UNAUTHORIZED", undefined, {
      headers: {
        "WWW-Authenticate": challenge(
          origin,
          env,
          repository && action
            ? `repository:${repository}:${action === "pull" ? "pull" : `pull,${action}`}`
            : undefined,
          error,
        ),
      },
    });

  if (header && /^Bearer\s+/i.test(header)) {
    const claims = await verifyRegistryToken(
      env.TOKEN_SIGNING_KEY,
      serviceName(env),
      header.replace(/^Bearer\s+/i, ""),
    );
    if (!claims) throw unauthorized(undefined, undefined, "invalid_token");
    // A build token is revoked when its attempt ends: only build tokens pay this lookup.
    if (claims.build && !(await buildTokenActive(env.BUILD, claims.build))) {
      throw unauthorized(undefined, undefined, "invalid_token");
    }
    const principal = principalOfClaims(claims);
    const can = async (repository: string, action: Action) => allows(claims, repository, action);
    return {
      principal,
      ...(claims.build ? { actor: buildActor(claims.build) } : {}),
      can,
      requireCatalog() {
        const granted = claims.access.some(
          (entry) => entry.type === "registry" && entry.name === "catalog",
        );
        if (!granted) {
          throw new RegistryError("UNAUTHORIZED", undefined, {
            headers: {
              "WWW-Authenticate": challenge(
                origin,
                env,
                "registry:catalog:*",
                "insufficient_scope",
              ),
            },
          });
        }
      },
      async require(repository, action) {
        if (!allows(claims, repository, action))
          throw unauthorized(repository, action, "insufficient_scope");
      },
    };
  }

  const basic = parseBasicHeader(header);
  if (header && !basic) throw unauthorized();
  const principal = basic ? await authenticate(env.DB, basic.user, basic.secret) : ANONYMOUS;
  if (!principal) {
    onFailedLogin(basic?.user ?? "");
    throw unauthorized();
  }
  const cache = new Map<string, Promise<Set<Action>>>();
  const can = async (repository: string, action: Action) => {
    let actions = cache.get(repository);
    if (!actions) {
      actions = repositoryAccess(env.DB, principal, repository).then((access) => access.actions);
      cache.set(repository, actions);
    }
    return (await actions).has(action);
  };
  return {
    principal,
    can,
    requireCatalog() {},
    async require(repository, action) {
      if (await can(repository, action)) return;
      // Anonymous callers are asked for credentials; known ones are refused.
      if (principal.kind === "anonymous") throw unauthorized(repository, action);
      throw new RegistryError("DENIED", `${action} on ${repository} is not allowed`);
    },
  };
}

/** /v2/ itself: anyone with a valid token or valid credentials; anonymous gets the challenge. */
export function requireAuthenticated(
  auth: RegistryAuth,
  request: Request,
  env: Env,
  hadToken: boolean,
): void {
  if (auth.principal.kind !== "anonymous" || hadToken) return;
  throw new RegistryError("UNAUTHORIZED", undefined, {
    headers: { "WWW-Authenticate": challenge(new URL(request.url).origin, env) },
  });
}

function principalOfClaims(claims: RegistryClaims): Principal {
  const p = claims.principal;
  if (p?.kind === "user" && p.id && p.name)
    return { kind: "user", id: p.id, name: p.name, superuser: p.superuser === true };
  if (p?.kind === "robot" && p.id && p.name) {
    return {
      kind: "robot",
      id: p.id,
      name: p.name,
      namespace: p.name.slice(0, p.name.indexOf("+")),
    };
  }
  return ANONYMOUS;
}
