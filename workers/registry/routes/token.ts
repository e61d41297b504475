// The token service: GET /v2/auth?service=&scope=… with HTTP Basic (password, app token or robot
// token) or no credentials, answering an ES256 JWT whose access is the requested scopes narrowed
// to what the account may do; and the JWKS that verifies those tokens.
import { Hono } from "hono";
import { RegistryError } from "../../../schema/oci/errors.ts";
import { ANONYMOUS, parseBasicHeader } from "../auth/principals.ts";
import type { AppEnv } from "../env.ts";
import { clientIp } from "../http/client-ip.ts";

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
  const scopes =
    c.req
      .queries("scope")
      ?.flatMap((s) => s.split(" "))
      .filter(Boolean) ?? [];
  if (scopes.length > MAX_SCOPES) {
    throw new RegistryError("DENIED", "too many scopes", { status: 400 });
  }
  const issued = await tokens.issue(principal, scopes);
  return c.json({
    token: issued.token,
    access_token: issued.token,
    expires_in: issued.expiresIn,
    issued_at: issued.issuedAt,
  });
});

token.get("/.well-known/jwks.json", async (c) =>
  c.json(await c.var.tokens.jwks(), 200, { "Cache-Control": "public, max-age=300" }),
);
