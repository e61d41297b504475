// Builds OCI image layouts on disk for tests and benchmarks (no downloads), and reads them back.
//
// A layout (image-spec `image-layout.md`) is `oci-layout`, `index.json` and `blobs/sha256/<hex>`.
// Each layer is a real uncompressed tar (`application/vnd.oci.image.layer.v1.tar`) holding one
// file of pseudo-random bytes, so its digest is also its diff_id. The bytes come from an
// AES-256-CTR keystream: deterministic per (seed, layer index), incompressible, and generated at
// GB/s, so a layer of several hundred MiB is streamed to disk while hashed, never held in memory.
import { createCipheriv, createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json";
export const OCI_CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json";
export const OCI_LAYER_TAR_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar";

const REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";
const TAR_BLOCK = 512;
const CHUNK = 1 << 20;

export interface LayerSpec {
  /** Size in bytes of the single file inside the layer's tar (the tar itself is a bit larger). */
  size: number;
}

export interface CreateOciLayoutOptions {
  layers: LayerSpec[];
  /** Same seed → same bytes → same digests. Omit for fresh random content. */
  seed?: string | number;
  /** Tag recorded in index.json (`org.opencontainers.image.ref.name`); default "latest". */
  tag?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface OciLayoutImage {
  dir: string;
  tag: string;
  /** skopeo/containers-image reference to this image: `oci:<dir>:<tag>`. */
  ref: string;
  manifest: Descriptor;
  manifestBytes: Buffer;
  config: Descriptor;
  layers: Descriptor[];
  /** Sum of config and layer sizes: the bytes a push uploads. */
  totalBlobBytes: number;
}

/** Writes a fresh single-image OCI layout into `dir` (created if missing). */
export async function createOciLayout(
  dir: string,
  options: CreateOciLayoutOptions,
): Promise<OciLayoutImage> {
  const tag = options.tag ?? "latest";
  const seed = options.seed === undefined ? randomBytes(32).toString("hex") : String(options.seed);
  const blobsDir = join(dir, "blobs", "sha256");
  await mkdir(blobsDir, { recursive: true });

  const layers: Descriptor[] = [];
  for (const [index, spec] of options.layers.entries()) {
    layers.push(await writeTarLayer(blobsDir, seed, index, spec.size));
  }

  // Fixed timestamps keep the config (and so the manifest digest) a pure function of the seed.
  const created = "2024-01-01T00:00:00Z";
  const configJson = {
    created,
    architecture: "amd64",
    os: "linux",
    config: { Cmd: ["/bin/sh"] },
    rootfs: { type: "layers", diff_ids: layers.map((layer) => layer.digest) },
    history: layers.map((_, index) => ({ created, created_by: `test layer ${index}` })),
  };
  const config = await writeJsonBlob(blobsDir, OCI_CONFIG_MEDIA_TYPE, configJson);

  const manifestJson = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config,
    layers,
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifestJson));
  const manifest = await writeBlob(blobsDir, OCI_MANIFEST_MEDIA_TYPE, manifestBytes);

  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const index = {
    schemaVersion: 2,
    mediaType: OCI_INDEX_MEDIA_TYPE,
    manifests: [{ ...manifest, annotations: { [REF_NAME_ANNOTATION]: tag } }],
  };
  await writeFile(join(dir, "index.json"), JSON.stringify(index));

  return {
    dir,
    tag,
    ref: `oci:${dir}:${tag}`,
    manifest,
    manifestBytes,
    config,
    layers,
    totalBlobBytes: config.size + layers.reduce((sum, layer) => sum + layer.size, 0),
  };
}

export interface LayoutManifest {
  /** Tag from `org.opencontainers.image.ref.name`, if any. */
  tag: string | undefined;
  digest: string;
  /** Exact bytes of the manifest blob. */
  bytes: Buffer;
  config: Descriptor;
  layers: Descriptor[];
}

export interface LayoutDigests {
  manifests: LayoutManifest[];
  /** Every file under blobs/sha256, keyed by digest, with its size. Each one was re-hashed. */
  blobs: Map<string, number>;
}

/**
 * Reads a layout back (e.g. one `skopeo copy` wrote) and re-hashes every blob, throwing if a
 * file's bytes do not match its name — so equal digests here mean byte-for-byte equal blobs.
 */
export async function readOciLayoutDigests(dir: string): Promise<LayoutDigests> {
  const layout = JSON.parse(await readFile(join(dir, "oci-layout"), "utf8"));
  if (layout.imageLayoutVersion !== "1.0.0") {
    throw new Error(`unexpected oci-layout ${JSON.stringify(layout)}`);
  }
  const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as {
    manifests: (Descriptor & { annotations?: Record<string, string> })[];
  };

  const blobs = new Map<string, number>();
  for (const name of await readdir(join(dir, "blobs", "sha256"))) {
    const path = join(dir, "blobs", "sha256", name);
    const actual = await hashFile(path);
    if (actual !== `sha256:${name}`) throw new Error(`blob ${name} hashes to ${actual}`);
    blobs.set(actual, (await stat(path)).size);
  }

  const manifests: LayoutManifest[] = [];
  for (const descriptor of index.manifests) {
    const bytes = await readFile(blobPath(dir, descriptor.digest));
    const parsed = JSON.parse(bytes.toString("utf8")) as {
      config: Descriptor;
      layers: Descriptor[];
    };
    manifests.push({
      tag: descriptor.annotations?.[REF_NAME_ANNOTATION],
      digest: descriptor.digest,
      bytes,
      config: parsed.config,
      layers: parsed.layers,
    });
  }
  return { manifests, blobs };
}

/** Path of a blob inside a layout. */
export function blobPath(dir: string, digest: string): string {
  const [algorithm, hex] = digest.split(":");
  if (!algorithm || !hex) throw new Error(`not a digest: ${digest}`);
  return join(dir, "blobs", algorithm, hex);
}

/** Streams a file through sha256; returns `sha256:<hex>`. */
export async function hashFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK })) {
    hash.update(chunk as Buffer);
  }
  return `sha256:${hash.digest("hex")}`;
}

/** Tar size for one regular file of `size` bytes: header, padded data, two zero end blocks. */
export function tarSizeFor(size: number): number {
  return TAR_BLOCK + Math.ceil(size / TAR_BLOCK) * TAR_BLOCK + 2 * TAR_BLOCK;
}

async function writeTarLayer(
  blobsDir: string,
  seed: string,
  index: number,
  size: number,
): Promise<Descriptor> {
  if (!Number.isSafeInteger(size) || size < 0) throw new Error(`bad layer size ${size}`);
  const key = createHash("sha256").update(`layer:${seed}`).digest();
  const iv = createHash("sha256").update(`iv:${index}`).digest().subarray(0, 16);
  const keystream = createCipheriv("aes-256-ctr", key, iv);
  const zeros = Buffer.alloc(CHUNK);

  const tmpPath = join(blobsDir, `.tmp-${process.pid}-${randomBytes(6).toString("hex")}`);
  const hash = createHash("sha256");
  const file = await open(tmpPath, "w");
  let written = 0;
  const write = async (bytes: Buffer) => {
    hash.update(bytes);
    await file.write(bytes);
    written += bytes.length;
  };
  try {
    await write(ustarHeader(`layer-${index}.bin`, size));
    for (let remaining = size; remaining > 0; remaining -= CHUNK) {
      const n = Math.min(CHUNK, remaining);
      await write(keystream.update(n === CHUNK ? zeros : zeros.subarray(0, n)));
    }
    const padding = (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK;
    await write(Buffer.alloc(padding + 2 * TAR_BLOCK));
  } finally {
    await file.close();
  }
  const digest = `sha256:${hash.digest("hex")}`;
  await rename(tmpPath, join(blobsDir, digest.slice("sha256:".length)));
  return { mediaType: OCI_LAYER_TAR_MEDIA_TYPE, digest, size: written };
}

async function writeJsonBlob(
  blobsDir: string,
  mediaType: string,
  value: unknown,
): Promise<Descriptor> {
  return writeBlob(blobsDir, mediaType, Buffer.from(JSON.stringify(value)));
}

async function writeBlob(blobsDir: string, mediaType: string, bytes: Buffer): Promise<Descriptor> {
  const hex = createHash("sha256").update(bytes).digest("hex");
  await writeFile(join(blobsDir, hex), bytes);
  return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
}

/** A POSIX ustar header (512 bytes) for a regular file, mode 0644, owned by root. */
function ustarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(TAR_BLOCK);
  const put = (offset: number, length: number, text: string) => {
    if (Buffer.byteLength(text) > length) throw new Error(`tar field too long: ${text}`);
    header.write(text, offset, length, "ascii");
  };
  const octal = (offset: number, length: number, value: number) => {
    // length-1 octal digits then NUL, per ustar.
    put(offset, length, value.toString(8).padStart(length - 1, "0") + "\0");
  };
  put(0, 100, name);
  octal(100, 8, 0o644);
  octal(108, 8, 0);
  octal(116, 8, 0);
  if (size < 8 ** 11) {
    octal(124, 12, size);
  } else {
    // GNU base-256: high bit of the first byte set, big-endian value in the rest (> 8 GiB files).
    header[124] = 0x80;
    let rest = BigInt(size);
    for (let i = 135; i > 124; i--) {
      header[i] = Number(rest & 0xffn);
      rest >>= 8n;
    }
  }
  octal(136, 12, 1_704_067_200); // 2024-01-01T00:00:00Z, fixed so layers are reproducible.
  header.fill(0x20, 148, 156); // The checksum is computed with its own field as spaces.
  put(156, 1, "0");
  put(257, 6, "ustar\0");
  put(263, 2, "00");
  put(265, 32, "root");
  put(297, 32, "root");
  octal(329, 8, 0);
  octal(337, 8, 0);
  let checksum = 0;
  for (const byte of header) checksum += byte;
  put(148, 8, checksum.toString(8).padStart(6, "0") + "\0 ");
  return header;
}
