// The token service's decisions (Docker token authentication spec): who the caller is, and which
// of the requested scopes they get, signed into a short-lived ES256 JWT.
import { parseRepositoryName } from "../../../schema/oci/reference.ts";
import { type Action, repositoryAccess } from "../auth/access.ts";
import { authenticate, type Principal } from "../auth/principals.ts";
import { type AccessEntry, issueRegistryToken, signingKeys } from "../auth/registry-tokens.ts";
import { type BuildObjects, exchangeBuildToken } from "./builds-tokens.ts";

export interface IssuedToken {
  token: string;
  expiresIn: number;
  issuedAt: string;
}

export class TokenService {
  /** The `service` (audience) tokens are issued for. */
  readonly service: string;

  constructor(
    private readonly deps: {
      db: D1Database;
      signingKey: string;
      service: string;
      /** Where a build token's liveness is checked (services/builds-tokens.ts). */
      builds: BuildObjects;
    },
  ) {
    this.service = deps.service;
  }

  /** A build token (Bearer) exchanged for pull on base images; null when it is not live. */
  exchangeBuildToken(token: string, scopes: string[]): Promise<IssuedToken | null> {
    return exchangeBuildToken(this.deps, token, scopes);
  }

  /** The principal behind Basic credentials; null when they are wrong. */
  authenticate(basic: { user: string; secret: string }): Promise<Principal | null> {
    return authenticate(this.deps.db, basic.user, basic.secret);
  }

  async issue(principal: Principal, scopes: string[]): Promise<IssuedToken> {
    const access: AccessEntry[] = [];
    for (const scope of scopes) {
      const entry = await this.grant(principal, scope);
      if (entry) access.push(entry);
    }
    return issueRegistryToken(this.deps.signingKey, this.deps.service, {
      sub: principal.kind === "anonymous" ? "anonymous" : principal.name,
      access,
      principal:
        principal.kind === "anonymous"
          ? { kind: "anonymous" }
          : {
              kind: principal.kind,
              id: principal.id,
              name: principal.name,
              ...(principal.kind === "user" && principal.superuser ? { superuser: true } : {}),
            },
    });
  }

  async jwks(): Promise<{ keys: unknown[] }> {
    const keys = await signingKeys(this.deps.signingKey);
    return { keys: [keys.publicJwk] };
  }

  /** One `type:name:actions` scope, narrowed to what the principal may do (null: nothing). */
  private async grant(principal: Principal, scope: string): Promise<AccessEntry | null> {
    const first = scope.indexOf(":");
    const last = scope.lastIndexOf(":");
    if (first < 0 || last === first) return null;
    const type = scope.slice(0, first);
    const name = scope.slice(first + 1, last);
    const requested = new Set(scope.slice(last + 1).split(","));
    if (type === "registry" && name === "catalog") {
      // The catalog filters by the caller's own visibility, so any caller may ask for it.
      return { type: "registry", name: "catalog", actions: ["*"] };
    }
    if (type !== "repository" || !parseRepositoryName(name)) return null;
    const { actions } = await repositoryAccess(this.deps.db, principal, name);
    const all: Action[] = ["pull", "push", "delete"];
    const wanted = requested.has("*") ? all : all.filter((action) => requested.has(action));
    const granted = wanted.filter((action) => actions.has(action));
    return granted.length > 0 ? { type: "repository", name, actions: granted } : null;
  }
}
