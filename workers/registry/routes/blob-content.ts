// The local stand-in for R2's presigned URLs: GET/HEAD /_blobs/<key>?digest&size&exp&sig streams
// a blob from R2, with Range (RFC 9110 §14). The signature is the authorization.
import { Hono } from "hono";
import type { AppEnv } from "../env.ts";
import { LOCAL_BLOB_ROUTE } from "../services/blob-urls.ts";

export const blobContent = new Hono<AppEnv>();

blobContent.get(`${LOCAL_BLOB_ROUTE}*`, async (c) => {
  const content = c.var.services.blobContent;
  const blob = await content.resolve(new URL(c.req.url), c.req.header("Range"));
  if (blob.range === "unsatisfiable") {
    return new Response(null, {
      status: 416,
      headers: { "Content-Range": `bytes */${blob.size}` },
    });
  }
  const { range } = blob;
  const headers: Record<string, string> = {
    // A compressible-looking or missing type makes local servers gzip 100s of MiB on the fly.
    "Content-Type": "application/octet-stream",
    "Docker-Content-Digest": blob.digest,
    "Accept-Ranges": "bytes",
    "Cache-Control": "private, max-age=31536000, immutable",
    ETag: `"${blob.digest}"`,
    "Content-Length": String(range ? range.end - range.start + 1 : blob.size),
  };
  if (range) headers["Content-Range"] = `bytes ${range.start}-${range.end}/${blob.size}`;
  const status = range ? 206 : 200;
  if (c.req.method === "HEAD") return new Response(null, { status, headers });
  return new Response(await content.open(blob), { status, headers });
});
