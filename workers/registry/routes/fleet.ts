// The fleet API, for build-fleet hosts (not people):
//   GET /fleet/v1/connect              Upgrade: websocket, Authorization: Bearer <fleet credential>
//                                      → the host's WebSocket to the BuildCoordinator (protocol:
//                                      schema/builds.ts FleetHostMessage / FleetCoordinatorMessage)
//   GET /fleet/v1/builds/:id/source    Authorization: Bearer <that build's token>
//                                      → the uploaded Dockerfile or context archive of the build
// Errors are JSON `{ "error": { "code", "message" } }`, like the management API's.
import { Hono } from "hono";
import type { AppEnv } from "../env.ts";
import { clientIp } from "../http/client-ip.ts";
import { buildObjects } from "../services/builds.ts";
import { FleetService } from "../services/builds-fleet.ts";

interface FleetEnv {
  Bindings: AppEnv["Bindings"];
  Variables: AppEnv["Variables"] & { fleet: FleetService };
}

export const fleet = new Hono<FleetEnv>();

fleet.use("/fleet/*", async (c, next) => {
  c.set(
    "fleet",
    new FleetService({
      db: c.env.DB,
      bootstrapCredential: c.env.FLEET_CREDENTIAL || undefined,
      objects: buildObjects(c.env),
      buildNamespace: c.env.BUILD,
      keys: {
        signingKey: c.env.TOKEN_SIGNING_KEY,
        service: c.env.REGISTRY_SERVICE || "edge-registry",
      },
      bucket: c.env.BLOBS,
      background: (work) => c.executionCtx.waitUntil(work),
    }),
  );
  await next();
});

const CHALLENGE = { "WWW-Authenticate": 'Bearer realm="fleet"' };

function fail(status: 400 | 401 | 404 | 426, code: string, message: string, headers = {}) {
  return new Response(JSON.stringify({ error: { code, message } }), {
    status,
    headers: { ...headers, "Content-Type": "application/json" },
  });
}

function bearerOf(header: string | undefined): string | undefined {
  return header ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
}

fleet.get("/fleet/v1/connect", async (c) => {
  const secret = bearerOf(c.req.header("Authorization"));
  if (!secret) {
    return fail(
      401,
      "UNAUTHORIZED",
      "send the fleet credential as Authorization: Bearer erf_…",
      CHALLENGE,
    );
  }
  const credential = await c.var.fleet.authenticate(secret);
  if (!credential) {
    c.var.events.emit({
      kind: "login.failed",
      actor: { kind: "anonymous" },
      ...clientIp(c.req.raw),
      metadata: { via: "fleet" },
    });
    return fail(401, "UNAUTHORIZED", "invalid or revoked fleet credential", CHALLENGE);
  }
  if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") {
    return fail(426, "UPGRADE_REQUIRED", "connect with a WebSocket (Upgrade: websocket)");
  }
  return c.var.fleet.connect(credential.id);
});

fleet.get("/fleet/v1/builds/:id/source", async (c) => {
  const token = bearerOf(c.req.header("Authorization"));
  if (!token) {
    return fail(401, "UNAUTHORIZED", "send the build token as Authorization: Bearer …", CHALLENGE);
  }
  const result = await c.var.fleet.source(token, c.req.param("id"));
  if (!result.ok) {
    return fail(
      result.status,
      result.status === 401 ? "UNAUTHORIZED" : "NOT_FOUND",
      result.message,
      result.status === 401 ? CHALLENGE : {},
    );
  }
  return new Response(result.body, {
    headers: {
      "Content-Type":
        result.format === "dockerfile"
          ? "text/plain; charset=utf-8"
          : result.format === "tar"
            ? "application/x-tar"
            : "application/gzip",
      "Content-Length": String(result.size),
      "X-Build-Source-Format": result.format,
      "Cache-Control": "no-store",
    },
  });
});
