// Blob uploads: end-4a (POST session), end-4b (POST ?digest= monolithic), end-5 (PATCH),
// end-6 (PUT ?digest=), end-11 (POST ?mount=&from=), end-13 (GET status), DELETE (cancel).
import { Hono } from "hono";
import { RegistryError } from "../../../schema/oci/errors.ts";
import type { RepositoryName } from "../../../schema/oci/reference.ts";
import type { AppEnv } from "../env.ts";
import { contentRange, digestParam, repositoryName } from "../http/params.ts";

export const uploads = new Hono<AppEnv>();

uploads.post("/:name{.+}/blobs/uploads/", async (c) => {
  const name = repositoryName(c.req.param("name"));
  await c.var.auth.require(name, "push");
  const mount = c.req.query("mount");
  const from = c.req.query("from");
  if (mount !== undefined && from !== undefined) {
    const digest = digestParam(mount);
    const source = repositoryName(from);
    // Mounting needs pull on the source; without it, fall back to an upload (no existence leak).
    const link = (await c.var.auth.can(source, "pull"))
      ? await c.var.services.uploads.mount(name, source, digest)
      : null;
    if (link) return blobCreated(name, link.digest);
    // Not mountable: fall back to a plain session (spec: "the registry MAY ... start an upload").
  }
  const digestQuery = c.req.query("digest");
  if (digestQuery !== undefined) {
    const digest = digestParam(digestQuery);
    const body = c.req.raw.body ?? new Blob([]).stream();
    const link = await c.var.services.uploads.monolithic(
      name,
      digest,
      body,
      declaredLength(c.req.header("Content-Length")),
    );
    return blobCreated(name, link.digest);
  }
  const { id } = await c.var.services.uploads.start(name);
  return uploadProgress(name, id, 0, 202);
});

uploads.patch("/:name{.+}/blobs/uploads/:id", async (c) => {
  const name = repositoryName(c.req.param("name"));
  await c.var.auth.require(name, "push");
  const id = uploadId(c.req.param("id"));
  const range = contentRange(c.req.header("Content-Range"));
  const { offset } = await c.var.services.uploads.append(name, id, requestBody(c.req.raw), range);
  return uploadProgress(name, id, offset, 202);
});

uploads.put("/:name{.+}/blobs/uploads/:id", async (c) => {
  const name = repositoryName(c.req.param("name"));
  await c.var.auth.require(name, "push");
  const id = uploadId(c.req.param("id"));
  const digest = digestParam(c.req.query("digest") ?? "");
  const range = contentRange(c.req.header("Content-Range"));
  const link = await c.var.services.uploads.finish(name, id, digest, requestBody(c.req.raw), range);
  return blobCreated(name, link.digest);
});

uploads.get("/:name{.+}/blobs/uploads/:id", async (c) => {
  const name = repositoryName(c.req.param("name"));
  await c.var.auth.require(name, "push");
  const id = uploadId(c.req.param("id"));
  const { offset } = await c.var.services.uploads.status(name, id);
  return uploadProgress(name, id, offset, 204);
});

uploads.delete("/:name{.+}/blobs/uploads/:id", async (c) => {
  const name = repositoryName(c.req.param("name"));
  await c.var.auth.require(name, "push");
  const id = uploadId(c.req.param("id"));
  await c.var.services.uploads.cancel(name, id);
  return new Response(null, { status: 204 });
});

/** The Content-Length a request declares, or null (a chunked body declares none). */
function declaredLength(header: string | undefined): number | null {
  return header !== undefined && /^\d{1,15}$/.test(header) ? Number(header) : null;
}

/** The body, or null when the request says it has none (`Content-Length: 0`, as skopeo's PUT). */
function requestBody(request: Request): ReadableStream<Uint8Array> | null {
  return request.headers.get("Content-Length") === "0" ? null : request.body;
}

const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function uploadId(raw: string | undefined): string {
  if (!raw || !UPLOAD_ID.test(raw)) throw new RegistryError("BLOB_UPLOAD_UNKNOWN");
  return raw;
}

function uploadProgress(
  name: RepositoryName,
  id: string,
  offset: number,
  status: 202 | 204,
): Response {
  return new Response(null, {
    status,
    headers: {
      Location: `/v2/${name}/blobs/uploads/${id}`,
      Range: `0-${Math.max(offset - 1, 0)}`,
      "Docker-Upload-UUID": id,
      "Content-Length": "0",
    },
  });
}

function blobCreated(name: RepositoryName, digest: string): Response {
  return new Response(null, {
    status: 201,
    headers: {
      Location: `/v2/${name}/blobs/${digest}`,
      "Docker-Content-Digest": digest,
      "Content-Length": "0",
    },
  });
}
