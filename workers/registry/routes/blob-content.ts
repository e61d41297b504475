// The local stand-in for R2's presigned URLs: GET/HEAD /_blobs/<key>?digest&size&exp&sig streams
// a blob from the R2 binding, with Range (RFC 9110 §14). The signature is the authorization.
import { Hono } from "hono";
import { RegistryError } from "../../../schema/oci/errors.ts";
import type { AppEnv } from "../env.ts";
import { parseByteRange } from "../http/byte-range.ts";
import { LOCAL_BLOB_ROUTE, localBlobSigner } from "../services/blob-urls.ts";
import { openBlob } from "../storage/blob-reader.ts";

export const blobContent = new Hono<AppEnv>();

blobContent.get(`${LOCAL_BLOB_ROUTE}*`, async (c) => {
  const url = new URL(c.req.url);
  const verdict = await localBlobSigner(c.env.URL_SIGNING_SECRET).verify(
    url.pathname,
    url.searchParams,
    Math.floor(Date.now() / 1000),
  );
  if (!verdict.ok) {
    throw new RegistryError("DENIED", `blob link ${verdict.reason}`, { status: 403 });
  }
  const key = decodeURIComponent(url.pathname.slice(LOCAL_BLOB_ROUTE.length));
  const size = Number(verdict.params.size);
  const digest = verdict.params.digest ?? "";
  const range = parseByteRange(c.req.header("Range"), size);
  if (range === "unsatisfiable") {
    return new Response(null, { status: 416, headers: { "Content-Range": `bytes */${size}` } });
  }
  const headers: Record<string, string> = {
    // A compressible-looking or missing type makes local servers gzip 100s of MiB on the fly.
    "Content-Type": "application/octet-stream",
    "Docker-Content-Digest": digest,
    "Accept-Ranges": "bytes",
    "Cache-Control": "private, max-age=31536000, immutable",
    ETag: `"${digest}"`,
  };
  const length = range ? range.end - range.start + 1 : size;
  headers["Content-Length"] = String(length);
  if (range) headers["Content-Range"] = `bytes ${range.start}-${range.end}/${size}`;
  const status = range ? 206 : 200;
  if (c.req.method === "HEAD") return new Response(null, { status, headers });
  const body = await openBlob(c.env.BLOBS, key, range);
  if (!body) throw new RegistryError("BLOB_UNKNOWN");
  return new Response(body, { status, headers });
});
