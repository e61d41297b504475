// Shared helpers for the workerd integration tests: authenticated requests, blob and image pushes.
import { env, SELF } from "cloudflare:test";
import { expect } from "vitest";

export const ORIGIN = "http://registry.test";

export function adminAuthorization(): string {
  return `Basic ${btoa(`${env.REGISTRY_ADMIN_USER}:${env.REGISTRY_ADMIN_PASSWORD}`)}`;
}

/** A request to the registry as the bootstrap admin (pass `auth: false` for anonymous). */
export async function api(
  path: string,
  init: RequestInit & { auth?: boolean } = {},
): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.auth !== false && !headers.has("Authorization")) {
    headers.set("Authorization", adminAuthorization());
  }
  return SELF.fetch(`${ORIGIN}${path}`, { ...init, headers, redirect: "manual" });
}

export async function sha256(bytes: Uint8Array | string): Promise<string> {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return `sha256:${[...hash].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export function randomBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) {
    crypto.getRandomValues(bytes.subarray(at, Math.min(at + 65536, size)));
  }
  return bytes;
}

let counter = 0;
/** A repository name no other test uses (tests never depend on each other's state). */
export function uniqueRepo(prefix = "test"): string {
  counter += 1;
  return `${prefix}/r${Date.now().toString(36)}${counter}${Math.floor(Math.random() * 1e6).toString(36)}`;
}

/** Pushes a blob with POST ?digest= (monolithic) and returns its digest. */
export async function pushBlob(repo: string, bytes: Uint8Array): Promise<string> {
  const digest = await sha256(bytes);
  const res = await api(`/v2/${repo}/blobs/uploads/?digest=${digest}`, {
    method: "POST",
    body: bytes,
    headers: { "Content-Type": "application/octet-stream" },
  });
  if (res.status !== 201) throw new Error(`blob push failed: ${res.status} ${await res.text()}`);
  return digest;
}

export interface PushedImage {
  digest: string;
  manifest: Uint8Array;
  config: string;
  layers: string[];
}

/** Pushes config + layers + an OCI image manifest, tagged when `tag` is given. */
export async function pushImage(
  repo: string,
  options: {
    tag?: string;
    layers?: Uint8Array[];
    subject?: { digest: string; size: number; mediaType: string };
    artifactType?: string;
    annotations?: Record<string, string>;
  } = {},
): Promise<PushedImage> {
  const configBytes = new TextEncoder().encode(
    JSON.stringify({ architecture: "amd64", os: "linux", nonce: Math.random() }),
  );
  const config = await pushBlob(repo, configBytes);
  const layerBytes = options.layers ?? [randomBytes(1024)];
  const layers: string[] = [];
  for (const layer of layerBytes) layers.push(await pushBlob(repo, layer));
  const manifestJson: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: config,
      size: configBytes.byteLength,
    },
    layers: layers.map((digest, i) => ({
      mediaType: "application/vnd.oci.image.layer.v1.tar",
      digest,
      size: layerBytes[i]!.byteLength,
    })),
  };
  if (options.subject) manifestJson.subject = options.subject;
  if (options.artifactType) manifestJson.artifactType = options.artifactType;
  if (options.annotations) manifestJson.annotations = options.annotations;
  const manifest = new TextEncoder().encode(JSON.stringify(manifestJson));
  const digest = await sha256(manifest);
  const res = await api(`/v2/${repo}/manifests/${options.tag ?? digest}`, {
    method: "PUT",
    body: manifest,
    headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" },
  });
  if (res.status !== 201)
    throw new Error(`manifest push failed: ${res.status} ${await res.text()}`);
  return { digest, manifest, config, layers };
}

export async function errorCode(res: Response): Promise<string | undefined> {
  const body = (await res.json()) as { errors?: { code: string }[] };
  return body.errors?.[0]?.code;
}

// ---- shared by the per-resource suites (base, uploads, blobs, manifests, tags, referrers,
// catalog) -------------------------------------------------------------------------------------

export const MediaTypes = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociEmpty: "application/vnd.oci.empty.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
} as const;

/** image-spec's empty descriptor: the two bytes `{}`. */
export const EMPTY_JSON = new TextEncoder().encode("{}");
export const EMPTY_JSON_DIGEST =
  "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

export interface OciErrorBody {
  errors: { code: string; message: string; detail?: unknown }[];
}

/**
 * Asserts a response is the spec's error (distribution-spec §"Error Codes"): the status, a JSON
 * body `{"errors":[{"code","message"}]}` (never HTML), and the code (one of `code` when a list).
 */
export async function expectError(
  res: Response,
  status: number,
  code: string | readonly string[],
): Promise<OciErrorBody> {
  const text = await res.text();
  expect(res.status, `status of ${text}`).toBe(status);
  expect(res.headers.get("Content-Type") ?? "").toMatch(/^application\/json/);
  const body = JSON.parse(text) as OciErrorBody;
  expect(Array.isArray(body.errors)).toBe(true);
  expect(body.errors.length).toBeGreaterThan(0);
  for (const error of body.errors) {
    expect(typeof error.code).toBe("string");
    expect(typeof error.message).toBe("string");
  }
  const codes = typeof code === "string" ? [code] : code;
  expect(codes).toContain(body.errors[0]!.code);
  return body;
}

/** A HEAD error: the status and no body (RFC 9110 §9.3.2). */
export async function expectHeadError(res: Response, status: number): Promise<void> {
  expect(res.status).toBe(status);
  expect(await res.text()).toBe("");
}

export function hexOf(bytes: ArrayBuffer | Uint8Array): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha512(bytes: Uint8Array | string): Promise<string> {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  return `sha512:${hexOf(await crypto.subtle.digest("SHA-512", data))}`;
}

/** The path (and query) of a Location, which may be absolute or relative; `api()` takes paths. */
export function pathOf(location: string | null): string {
  expect(location).toBeTruthy();
  const url = new URL(location!, ORIGIN);
  return url.pathname + url.search;
}

/** Starts an upload session (end-4a) and returns its Location path and id. */
export async function startUpload(repo: string): Promise<{ location: string; id: string }> {
  const res = await api(`/v2/${repo}/blobs/uploads/`, {
    method: "POST",
    headers: { "Content-Length": "0" },
  });
  expect(res.status).toBe(202);
  const location = pathOf(res.headers.get("Location"));
  const id = res.headers.get("Docker-Upload-UUID") ?? location.split("?")[0]!.split("/").at(-1)!;
  return { location, id };
}

/** Appends `?digest=` (or `&digest=`) to an upload Location that may carry its own query. */
export function withDigest(location: string, digest: string): string {
  return `${location}${location.includes("?") ? "&" : "?"}digest=${encodeURIComponent(digest)}`;
}

/** GET a blob (end-2): asserts the 307 and returns the signed URL it redirects to. */
export async function blobRedirect(repo: string, digest: string): Promise<string> {
  const res = await api(`/v2/${repo}/blobs/${digest}`);
  expect(res.status).toBe(307);
  const location = res.headers.get("Location");
  expect(location).toBeTruthy();
  return new URL(location!, ORIGIN).toString();
}

/** Follows a blob redirect the way a client does: no registry credentials, optional Range. */
export async function fetchSigned(url: string, init: RequestInit = {}): Promise<Response> {
  return SELF.fetch(url, { ...init, redirect: "manual" });
}

/** Pulls a blob's bytes through the redirect and its signed URL. */
export async function pullBlob(repo: string, digest: string): Promise<Uint8Array> {
  const res = await fetchSigned(await blobRedirect(repo, digest));
  expect(res.status).toBe(200);
  return new Uint8Array(await res.arrayBuffer());
}

/** PUT a manifest (end-7) with its media type as Content-Type. */
export async function putManifest(
  repo: string,
  reference: string,
  body: Uint8Array | string,
  contentType: string = MediaTypes.ociManifest,
): Promise<Response> {
  return api(`/v2/${repo}/manifests/${reference}`, {
    method: "PUT",
    body: typeof body === "string" ? new TextEncoder().encode(body) : body,
    headers: { "Content-Type": contentType },
  });
}

/** Byte-wise equality that reports where two buffers differ instead of dumping megabytes. */
export function expectSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual.byteLength).toBe(expected.byteLength);
  for (let i = 0; i < expected.byteLength; i++) {
    if (actual[i] !== expected[i]) {
      expect.fail(`bytes differ at offset ${i}: ${actual[i]} != ${expected[i]}`);
    }
  }
}
