// The token service: GET /v2/auth?service=&scope=… with HTTP Basic (password, app token or robot
// token) or no credentials, answering an ES256 JWT whose access is the requested scopes narrowed
// to what the account may do; with a live build token as Bearer, a pull token for what the build's
// requester may pull (services/builds-tokens.ts); and the JWKS that verifies those tokens.
import { Hono } from "hono";
import { RegistryError } from "../../../schema/oci/errors.ts";
import { ANONYMOUS, parseBasicHeader } from "../auth/principals.ts";
import type { AppEnv } from "../env.ts";
import { clientIp } from "../http/client-ip.ts";
import type { IssuedToken } from "../services/token-service.ts";

export const token = new Hono<AppEnv>();

const MAX_SCOPES = 32;

token.get("/v2/auth", async (c) => {
  const tokens = c.var.tokens;
  const requestedService = c.req.query("service");
  if (requestedService !== undefined && requestedService !== tokens.service) {
    throw new RegistryError("DENIED", `this token service issues tokens for "${tokens.service}"`, {
      status: 400,
    });
  }
  const header = c.req.header("Authorization");
  const scopes =
    c.req
      .queries("scope")
      ?.flatMap((s) => s.split(" "))
      .filter(Boolean) ?? [];
  if (scopes.length > MAX_SCOPES) {
    throw new RegistryError("DENIED", "too many scopes", { status: 400 });
  }
  // A build-fleet host exchanging a build's token for pull access to base images.
  const bearer = header ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
  if (bearer) {
    const exchanged = await tokens.exchangeBuildToken(bearer, scopes);
    if (!exchanged) {
      c.var.events.emit({
        kind: "login.failed",
        actor: { kind: "anonymous" },
        ...clientIp(c.req.raw),
        metadata: { via: "token-service", scheme: "bearer" },
      });
      throw new RegistryError("UNAUTHORIZED", "only a live build token may be exchanged", {
        headers: { "WWW-Authenticate": `Basic realm="${tokens.service}"` },
      });
    }
    return c.json(tokenBody(exchanged));
  }
  const basic = parseBasicHeader(header);
  // No credentials: an anonymous token (pull on public repositories only).
  const principal =
    header === undefined ? ANONYMOUS : basic ? await tokens.authenticate(basic) : null;
  if (!principal) {
    c.var.events.emit({
      kind: "login.failed",
      actor: { kind: "anonymous", ...(basic ? { name: basic.user } : {}) },
      ...clientIp(c.req.raw),
      metadata: { via: "token-service" },
    });
    throw new RegistryError("UNAUTHORIZED", "invalid credentials", {
      headers: { "WWW-Authenticate": `Basic realm="${tokens.service}"` },
    });
  }
  return c.json(tokenBody(await tokens.issue(principal, scopes)));
});

function tokenBody(issued: IssuedToken) {
  return {
    token: issued.token,
    access_token: issued.token,
    expires_in: issued.expiresIn,
    issued_at: issued.issuedAt,
  };
}

token.get("/.well-known/jwks.json", async (c) =>
  c.json(await c.var.tokens.jwks(), 200, { "Cache-Control": "public, max-age=300" }),
);
