// The token service (Docker token authentication spec): GET /v2/auth?service=&scope=… with HTTP
// Basic (password, app token or robot token) or no credentials, answering an ES256 JWT whose
// access is the requested scopes intersected with what the account may do. Also the JWKS.
import { Hono } from "hono";
import { RegistryError } from "../../../schema/oci/errors.ts";
import { parseRepositoryName } from "../../../schema/oci/reference.ts";
import { type Action, repositoryAccess } from "../auth/access.ts";
import { ANONYMOUS, authenticate, type Principal, parseBasicHeader } from "../auth/principals.ts";
import { serviceName } from "../auth/registry-auth.ts";
import { type AccessEntry, issueRegistryToken, signingKeys } from "../auth/registry-tokens.ts";
import type { AppEnv } from "../env.ts";

export const token = new Hono<AppEnv>();

const MAX_SCOPES = 32;

token.get("/v2/auth", async (c) => {
  const service = serviceName(c.env);
  const requestedService = c.req.query("service");
  if (requestedService !== undefined && requestedService !== service) {
    throw new RegistryError("DENIED", `this token service issues tokens for "${service}"`, {
      status: 400,
    });
  }
  const header = c.req.header("Authorization");
  const basic = parseBasicHeader(header);
  let principal: Principal = ANONYMOUS;
  if (header) {
    const found = basic ? await authenticate(c.env.DB, basic.user, basic.secret) : null;
    if (!found) {
      c.var.events.emit({
        kind: "login.failed",
        actor: { kind: "anonymous", ...(basic ? { name: basic.user } : {}) },
        ...clientIp(c.req.raw),
        metadata: { via: "token-service" },
      });
      throw new RegistryError("UNAUTHORIZED", "invalid credentials", {
        headers: { "WWW-Authenticate": `Basic realm="${service}"` },
      });
    }
    principal = found;
  }
  const scopes =
    c.req
      .queries("scope")
      ?.flatMap((s) => s.split(" "))
      .filter(Boolean) ?? [];
  if (scopes.length > MAX_SCOPES)
    throw new RegistryError("DENIED", "too many scopes", { status: 400 });
  const access: AccessEntry[] = [];
  for (const scope of scopes) {
    const entry = await grant(c.env.DB, principal, scope);
    if (entry) access.push(entry);
  }
  const issued = await issueRegistryToken(c.env.TOKEN_SIGNING_KEY, service, {
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
  return c.json({
    token: issued.token,
    access_token: issued.token,
    expires_in: issued.expiresIn,
    issued_at: issued.issuedAt,
  });
});

token.get("/.well-known/jwks.json", async (c) => {
  const keys = await signingKeys(c.env.TOKEN_SIGNING_KEY);
  return c.json({ keys: [keys.publicJwk] }, 200, { "Cache-Control": "public, max-age=300" });
});

/** One `type:name:actions` scope, narrowed to what the principal may do (null: nothing). */
async function grant(
  db: D1Database,
  principal: Principal,
  scope: string,
): Promise<AccessEntry | null> {
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
  const { actions } = await repositoryAccess(db, principal, name);
  const wanted: Action[] = requested.has("*")
    ? ["pull", "push", "delete"]
    : (["pull", "push", "delete"] as const).filter((a) => requested.has(a));
  const granted = wanted.filter((action) => actions.has(action));
  return granted.length > 0 ? { type: "repository", name, actions: granted } : null;
}

export function clientIp(request: Request): { clientIp?: string } {
  const ip =
    request.headers.get("CF-Connecting-IP") ??
    request.headers.get("X-Forwarded-For")?.split(",")[0]?.trim();
  return ip ? { clientIp: ip } : {};
}
