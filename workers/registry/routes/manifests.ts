// Manifests: end-2 (GET), end-3 (HEAD), end-7 (PUT), end-9 (DELETE) of distribution-spec v1.1.
import { Hono } from "hono";
import { MAX_MANIFEST_BYTES } from "../../../schema/oci/media-types.ts";
import type { AppEnv } from "../env.ts";
import { readBoundedBody } from "../http/body.ts";
import { referenceParam, repositoryName } from "../http/params.ts";

export const manifests = new Hono<AppEnv>();

// hono answers HEAD with the GET handler; the handler skips the body for HEAD.
manifests.get("/:name{.+}/manifests/:reference", async (c) => {
  const name = repositoryName(c.req.param("name"));
  const reference = referenceParam(c.req.param("reference"));
  await c.var.auth.require(name, "pull");
  const head = c.req.method === "HEAD";
  const record = await c.var.services.manifests.get(name, reference, !head);
  const headers = {
    "Content-Type": record.mediaType,
    "Content-Length": String(record.size),
    "Docker-Content-Digest": record.digest,
    ETag: `"${record.digest}"`,
  };
  return new Response(head ? null : record.body, { status: 200, headers });
});

manifests.put("/:name{.+}/manifests/:reference", async (c) => {
  const name = repositoryName(c.req.param("name"));
  const reference = referenceParam(c.req.param("reference"));
  await c.var.auth.require(name, "push");
  const body = await readBoundedBody(c.req.raw, MAX_MANIFEST_BYTES);
  const pushed = await c.var.services.manifests.put(
    name,
    reference,
    body,
    c.req.header("Content-Type") ?? null,
  );
  const headers: Record<string, string> = {
    Location: `/v2/${name}/manifests/${pushed.digest}`,
    "Docker-Content-Digest": pushed.digest,
    "Content-Length": "0",
  };
  // distribution-spec §"Pushing Manifests with Subject": tell the client referrers are indexed.
  if (pushed.subject) headers["OCI-Subject"] = pushed.subject;
  return new Response(null, { status: 201, headers });
});

manifests.delete("/:name{.+}/manifests/:reference", async (c) => {
  const name = repositoryName(c.req.param("name"));
  const reference = referenceParam(c.req.param("reference"));
  await c.var.auth.require(name, "delete");
  await c.var.services.manifests.delete(name, reference);
  return new Response(null, { status: 202, headers: { "Content-Length": "0" } });
});
