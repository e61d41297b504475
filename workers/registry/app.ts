// The hono application: middleware, the OCI routes, and the single error renderer.
import { Hono } from "hono";
import { RegistryError } from "../../schema/oci/errors.ts";
import type { AppEnv } from "./env.ts";
import { errorResponse } from "./http/errors.ts";
import { requireAdmin } from "./middleware/basic-auth.ts";
import { blobContent } from "./routes/blob-content.ts";
import { blobs } from "./routes/blobs.ts";
import { catalog } from "./routes/catalog.ts";
import { manifests } from "./routes/manifests.ts";
import { referrers } from "./routes/referrers.ts";
import { tags } from "./routes/tags.ts";
import { uploads } from "./routes/uploads.ts";
import { registryServices } from "./services/registry-services.ts";

export const app = new Hono<AppEnv>();

app.use("/v2/*", async (c, next) => {
  await next();
  c.res.headers.set("Docker-Distribution-API-Version", "registry/2.0");
});
app.use("/v2/*", requireAdmin);
app.use("*", async (c, next) => {
  c.set("services", registryServices(c.env));
  await next();
});

// end-1: the API version check.
app.get("/v2/", (c) => c.json({}));
app.route("/v2", catalog);
app.route("/v2", uploads);
app.route("/v2", manifests);
app.route("/v2", blobs);
app.route("/v2", tags);
app.route("/v2", referrers);
app.route("/", blobContent);

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
