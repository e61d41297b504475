// Who calls the management API: `Authorization: Bearer era_…` (an app token) or HTTP Basic with a
// username and a password or app token. People only: robots are refused (they pull and push, they
// do not administer), anonymous callers are asked to authenticate, and every failed login is
// announced as a `login.failed` event.
import { createMiddleware } from "hono/factory";
import {
  authenticate,
  authenticateAppToken,
  type Principal,
  parseBasicHeader,
} from "../auth/principals.ts";
import { clientIp } from "../http/client-ip.ts";
import { touchAppToken } from "../services/identity/app-tokens.ts";
import { forbidden, IdentityError } from "../services/identity/errors.ts";
import type { ApiEnv } from "./context.ts";

const CHALLENGE = { "WWW-Authenticate": 'Bearer realm="management-api"' };

const unauthorized = (message: string) => new IdentityError("UNAUTHORIZED", message, CHALLENGE);

export const requireCaller = createMiddleware<ApiEnv>(async (c, next) => {
  const header = c.req.header("Authorization");
  if (!header) {
    throw unauthorized(
      "authentication required: send an app token (Authorization: Bearer era_…) or HTTP Basic credentials",
    );
  }
  let principal: Principal | null;
  let attempted: string | undefined;
  let scheme: "bearer" | "basic";
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (bearer) {
    scheme = "bearer";
    principal = await authenticateAppToken(c.env.DB, bearer[1]!);
  } else {
    const basic = parseBasicHeader(header);
    if (!basic) throw unauthorized("the Authorization header must be Bearer <app token> or Basic");
    scheme = "basic";
    attempted = basic.user;
    // Empty Basic credentials mean "anonymous" to the registry; here they are no login at all.
    principal = basic.user === "" ? null : await authenticate(c.env.DB, basic.user, basic.secret);
  }
  if (!principal) {
    c.var.events.emit({
      kind: "login.failed",
      actor: { kind: "anonymous", ...(attempted ? { name: attempted } : {}) },
      ...clientIp(c.req.raw),
      metadata: { via: "management-api", scheme },
    });
    throw unauthorized(
      scheme === "bearer"
        ? "invalid, expired or revoked app token (the management API takes app tokens, era_…)"
        : "invalid username or password",
    );
  }
  if (principal.kind === "robot") {
    throw forbidden("robot accounts cannot use the management API: use a person's app token");
  }
  if (principal.kind === "anonymous") throw unauthorized("authentication required");
  c.set("caller", principal);
  if (principal.tokenId) keepInBackground(c, touchAppToken(c.env.DB, principal.tokenId));
  await next();
});

/** Bookkeeping that must not delay or fail the request. */
function keepInBackground(
  c: { executionCtx: { waitUntil(promise: Promise<unknown>): void } },
  work: Promise<unknown>,
): void {
  const logged = work.catch((error: unknown) =>
    console.warn("app token last-use not saved", error),
  );
  try {
    c.executionCtx.waitUntil(logged);
  } catch {
    // No execution context (a test calling app.request without one): the promise runs anyway.
  }
}
