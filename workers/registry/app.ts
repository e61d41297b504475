// The hono application: middleware, the OCI routes, the token service, and the single error
// renderer.
import { Hono, type MiddlewareHandler } from "hono";
import { RegistryError } from "../../schema/oci/errors.ts";
import { managementApi } from "./api/index.ts";
import { ensureBootstrapAdmin } from "./auth/bootstrap.ts";
import { ANONYMOUS } from "./auth/principals.ts";
import { challenge, registryAuth, serviceName } from "./auth/registry-auth.ts";
import type { AppEnv } from "./env.ts";
import { clientIp } from "./http/client-ip.ts";
import { errorResponse } from "./http/errors.ts";
import { blobContent } from "./routes/blob-content.ts";
import { blobs } from "./routes/blobs.ts";
import { catalog } from "./routes/catalog.ts";
import { fleet } from "./routes/fleet.ts";
import { manifests } from "./routes/manifests.ts";
import { referrers } from "./routes/referrers.ts";
import { tags } from "./routes/tags.ts";
import { token } from "./routes/token.ts";
import { uploads } from "./routes/uploads.ts";
import { eventSink } from "./services/events.ts";
import { registryServices } from "./services/registry-services.ts";
import { TokenService } from "./services/token-service.ts";

export const app = new Hono<AppEnv>();

app.use("*", async (c, next) => {
  await ensureBootstrapAdmin(c.env.DB, c.env.REGISTRY_ADMIN_USER, c.env.REGISTRY_ADMIN_PASSWORD);
  c.set(
    "events",
    eventSink(c.env.EVENTS, (promise) => c.executionCtx.waitUntil(promise)),
  );
  await next();
});

app.use("/v2/*", async (c, next) => {
  await next();
  c.res.headers.set("Docker-Distribution-API-Version", "registry/2.0");
});

const withTokenService: MiddlewareHandler<AppEnv> = async (c, next) => {
  const { DB: db, TOKEN_SIGNING_KEY: signingKey } = c.env;
  c.set(
    "tokens",
    new TokenService({ db, signingKey, service: serviceName(c.env), builds: c.env.BUILD }),
  );
  await next();
};
app.use("/v2/auth", withTokenService);
app.use("/.well-known/*", withTokenService);
app.route("/", token);

// Every other /v2 route: who is calling, and the services acting for them.
app.use("/v2/*", async (c, next) => {
  const auth = await registryAuth(c.req.raw, c.env, (user) =>
    c.var.events.emit({
      kind: "login.failed",
      actor: { kind: "anonymous", ...(user ? { name: user } : {}) },
      ...clientIp(c.req.raw),
      metadata: { via: "registry" },
    }),
  );
  c.set("auth", auth);
  c.set(
    "services",
    registryServices(c.env, {
      principal: auth.principal,
      ...(auth.actor ? { actor: auth.actor } : {}),
      events: c.var.events,
      ...clientIp(c.req.raw),
    }),
  );
  await next();
});

// end-1: the API version check. Anonymous callers get the challenge that starts the token flow.
app.get("/v2/", (c) => {
  if (
    c.var.auth.principal.kind === "anonymous" &&
    !c.req.header("Authorization")?.startsWith("Bearer")
  ) {
    throw new RegistryError("UNAUTHORIZED", undefined, {
      headers: { "WWW-Authenticate": challenge(new URL(c.req.url).origin, c.env) },
    });
  }
  return c.json({});
});
app.route("/v2", catalog);
app.route("/v2", uploads);
app.route("/v2", manifests);
app.route("/v2", blobs);
app.route("/v2", tags);
app.route("/v2", referrers);
// The management API authenticates its own callers; its services act on the objects directly.
app.use("/api/v1/*", async (c, next) => {
  c.set("services", registryServices(c.env, { principal: ANONYMOUS, events: c.var.events }));
  await next();
});
app.route("/api/v1", managementApi);
app.use(`/_blobs/*`, async (c, next) => {
  c.set("services", registryServices(c.env, { principal: ANONYMOUS, events: c.var.events }));
  await next();
});
app.route("/", blobContent);
// Build-fleet hosts: their WebSocket to the BuildCoordinator, and uploaded build sources.
app.route("/", fleet);

app.notFound((c) =>
  errorResponse(
    new RegistryError("UNSUPPORTED", `no endpoint ${c.req.method} ${new URL(c.req.url).pathname}`, {
      status: 404,
    }),
    c.req.method,
  ),
);

app.onError((error, c) => {
  if (error instanceof RegistryError) return errorResponse(error, c.req.method);
  // Internals never leak into the response; the log has them.
  console.error(`${c.req.method} ${new URL(c.req.url).pathname} failed`, error);
  return errorResponse(new RegistryError("UNKNOWN"), c.req.method);
});
