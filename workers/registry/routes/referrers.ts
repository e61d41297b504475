// Referrers: end-12a (GET referrers/<digest>) and end-12b (?artifactType= filter).
import { Hono } from "hono";
import { MediaType } from "../../../schema/oci/media-types.ts";
import type { AppEnv } from "../env.ts";
import { digestParam, repositoryName } from "../http/params.ts";

export const referrers = new Hono<AppEnv>();

referrers.get("/:name{.+}/referrers/:digest", async (c) => {
  const name = repositoryName(c.req.param("name"));
  const digest = digestParam(c.req.param("digest"));
  await c.var.auth.require(name, "pull");
  const artifactType = c.req.query("artifactType") ?? null;
  const rows = await c.var.services.objects.repository(name).listReferrers(digest, artifactType);
  const headers: Record<string, string> = { "Content-Type": MediaType.ociIndex };
  if (artifactType !== null) headers["OCI-Filters-Applied"] = "artifactType";
  const index = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: rows };
  return new Response(JSON.stringify(index), { status: 200, headers });
});
