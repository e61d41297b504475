// Per-media-type manifest verification: parses a pushed manifest body once and extracts what the
// registry must check and index (referenced blobs, child manifests, subject, artifactType).
import type { ErrorCode } from "./errors.ts";
import {
  isForeignLayer,
  isIndexMediaType,
  MANIFEST_MEDIA_TYPES,
  MediaType,
} from "./media-types.ts";
import { type Digest, parseDigest } from "./reference.ts";

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface ParsedManifest {
  mediaType: string;
  /** An image manifest's config descriptor (also the first of `blobs`). */
  config?: Descriptor;
  /** Blobs the manifest needs in the repository: config and layers (foreign layers excluded). */
  blobs: Descriptor[];
  /** Manifests an index needs in the repository. */
  children: Descriptor[];
  subject?: Descriptor;
  /** The artifactType the referrers API reports: `artifactType`, else the config's media type. */
  artifactType?: string;
  annotations?: Record<string, string>;
}

export type ManifestParse =
  | { ok: true; manifest: ParsedManifest }
  | { ok: false; code: ErrorCode; message: string };

const invalid = (message: string): ManifestParse => ({
  ok: false,
  code: "MANIFEST_INVALID",
  message,
});

class InvalidManifest extends Error {}

/**
 * Verifies a manifest body against the media type it was pushed with.
 * `contentType` is the request's Content-Type (parameters ignored); when the body carries a
 * `mediaType` the two must agree (image-spec manifest.md: "when used, this field MUST contain…").
 */
export function parseManifest(body: Uint8Array, contentType: string | null): ManifestParse {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(body));
  } catch {
    return invalid("manifest is not valid UTF-8 JSON");
  }
  if (!isObject(json)) return invalid("manifest must be a JSON object");

  const declared = contentType?.split(";")[0]?.trim().toLowerCase() || undefined;
  const inBody = json.mediaType;
  if (inBody !== undefined && typeof inBody !== "string")
    return invalid("mediaType must be a string");
  const headerIsManifestType = declared !== undefined && MANIFEST_MEDIA_TYPES.includes(declared);
  if (headerIsManifestType && inBody !== undefined && inBody !== declared) {
    return invalid(`Content-Type ${declared} does not match the manifest's mediaType ${inBody}`);
  }
  const mediaType = headerIsManifestType ? declared : (inBody ?? guessMediaType(json));
  if (mediaType === undefined || !MANIFEST_MEDIA_TYPES.includes(mediaType)) {
    return invalid(`unsupported manifest media type ${mediaType ?? declared ?? "(none)"}`);
  }
  if (json.schemaVersion !== 2) return invalid("schemaVersion must be 2");

  try {
    return {
      ok: true,
      manifest: isIndexMediaType(mediaType)
        ? parseIndex(json, mediaType)
        : parseImage(json, mediaType),
    };
  } catch (error) {
    if (error instanceof InvalidManifest) return invalid(error.message);
    throw error;
  }
}

function parseImage(json: Record<string, unknown>, mediaType: string): ParsedManifest {
  const config = descriptor(json.config, "config");
  if (!Array.isArray(json.layers)) throw new InvalidManifest("layers must be an array");
  const layers = json.layers.map((layer, i) => descriptor(layer, `layers[${i}]`));
  if (mediaType === MediaType.dockerManifest && layers.length === 0) {
    throw new InvalidManifest("a Docker image manifest needs at least one layer");
  }
  const artifactType = optionalString(json.artifactType, "artifactType");
  if (artifactType !== undefined && mediaType !== MediaType.ociManifest) {
    throw new InvalidManifest("artifactType is only valid in an OCI image manifest");
  }
  const blobs = [config, ...layers.filter((layer) => !isForeignLayer(layer.mediaType))];
  return withCommon(json, {
    mediaType,
    config,
    blobs,
    children: [],
    // image-spec: an absent or empty artifactType falls back to the config media type.
    artifactType: artifactType || config.mediaType,
  });
}

function parseIndex(json: Record<string, unknown>, mediaType: string): ParsedManifest {
  if (!Array.isArray(json.manifests)) throw new InvalidManifest("manifests must be an array");
  const children = json.manifests.map((child, i) => descriptor(child, `manifests[${i}]`));
  const artifactType = optionalString(json.artifactType, "artifactType");
  return withCommon(json, {
    mediaType,
    blobs: [],
    children,
    ...(artifactType ? { artifactType } : {}),
  });
}

function withCommon(json: Record<string, unknown>, manifest: ParsedManifest): ParsedManifest {
  if (json.subject !== undefined) manifest.subject = descriptor(json.subject, "subject");
  const annotations = stringMap(json.annotations, "annotations");
  if (annotations) manifest.annotations = annotations;
  return manifest;
}

function descriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) throw new InvalidManifest(`${where} must be a descriptor object`);
  const { mediaType, digest, size } = value;
  if (typeof mediaType !== "string" || mediaType.length === 0) {
    throw new InvalidManifest(`${where}.mediaType must be a non-empty string`);
  }
  if (typeof digest !== "string") throw new InvalidManifest(`${where}.digest must be a string`);
  const parsed = parseDigest(digest);
  if (!parsed.ok) throw new InvalidManifest(`${where}.digest ${digest} is not a valid digest`);
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    throw new InvalidManifest(`${where}.size must be a non-negative integer`);
  }
  const result: Descriptor = { mediaType, digest: parsed.digest, size };
  const artifactType = optionalString(value.artifactType, `${where}.artifactType`);
  if (artifactType) result.artifactType = artifactType;
  const annotations = stringMap(value.annotations, `${where}.annotations`);
  if (annotations) result.annotations = annotations;
  return result;
}

function guessMediaType(json: Record<string, unknown>): string | undefined {
  if (Array.isArray(json.manifests)) return MediaType.ociIndex;
  if (isObject(json.config)) return MediaType.ociManifest;
  return undefined;
}

function optionalString(value: unknown, where: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string") throw new InvalidManifest(`${where} must be a string`);
  return value;
}

function stringMap(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value) || Object.values(value).some((v) => typeof v !== "string")) {
    throw new InvalidManifest(`${where} must map strings to strings`);
  }
  return value as Record<string, string>;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
