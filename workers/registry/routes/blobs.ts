// Blobs: end-2 (GET, answered with a redirect), end-3 (HEAD), end-10 (DELETE).
import { Hono } from "hono";
import type { AppEnv } from "../env.ts";
import { digestParam, repositoryName } from "../http/params.ts";

export const blobs = new Hono<AppEnv>();

blobs.get("/:name{.+}/blobs/:digest", async (c) => {
  const name = repositoryName(c.req.param("name"));
  const digest = digestParam(c.req.param("digest"));
  await c.var.auth.require(name, "pull");
  if (c.req.method === "HEAD") {
    const link = await c.var.services.blobs.stat(name, digest);
    return new Response(null, {
      status: 200,
      headers: {
        "Content-Type": "application/octet-stream",
        "Content-Length": String(link.size),
        "Docker-Content-Digest": link.digest,
        "Accept-Ranges": "bytes",
      },
    });
  }
  // Bytes never stream through /v2: the client follows a signed, expiring URL.
  const { link, url } = await c.var.services.blobs.downloadUrl(
    name,
    digest,
    new URL(c.req.url).origin,
  );
  return new Response(null, {
    status: 307,
    headers: { Location: url, "Docker-Content-Digest": link.digest, "Content-Length": "0" },
  });
});

blobs.delete("/:name{.+}/blobs/:digest", async (c) => {
  const name = repositoryName(c.req.param("name"));
  const digest = digestParam(c.req.param("digest"));
  await c.var.auth.require(name, "delete");
  await c.var.services.blobs.delete(name, digest);
  return new Response(null, { status: 202, headers: { "Content-Length": "0" } });
});
