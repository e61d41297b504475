// The `quay.expires-after` label of a pushed image (`config.Labels` of its config blob), read at
// push time so the tag can expire by itself. Kept cheap and bounded: image manifests only, image
// config media types only, configs up to 256 KiB, one R2 read. A label that is missing, malformed
// or unreadable means no expiry: it never fails a push.
import type { Descriptor, ParsedManifest } from "../../../schema/oci/manifest.ts";
import type { RepositoryName } from "../../../schema/oci/reference.ts";
import { parseDuration } from "../lib/duration.ts";
import type { ObjectDirectory } from "../storage/repository-stubs.ts";

export const EXPIRES_AFTER_LABEL = "quay.expires-after";
export const MAX_LABELLED_CONFIG_BYTES = 256 * 1024;
/** A label asking for more than this is ignored (a typo like `3000w` should not pin a tag). */
const MAX_EXPIRES_AFTER_MS = 3650 * 24 * 60 * 60 * 1000;

const IMAGE_CONFIG_TYPES: ReadonlySet<string> = new Set([
  "application/vnd.oci.image.config.v1+json",
  "application/vnd.docker.container.image.v1+json",
]);

export interface ExpiresAfter {
  /** The label as written (`2d`). */
  label: string;
  ms: number;
}

export async function expiresAfterLabel(
  deps: { objects: Pick<ObjectDirectory, "repository">; bucket: R2Bucket },
  name: RepositoryName,
  manifest: ParsedManifest,
): Promise<ExpiresAfter | undefined> {
  const config = manifest.config;
  if (!config || !labelled(config)) return undefined;
  try {
    const link = await deps.objects.repository(name).getBlob(config.digest);
    if (!link || link.size > MAX_LABELLED_CONFIG_BYTES) return undefined;
    const object = await deps.bucket.get(link.key);
    if (!object) return undefined;
    const label = labelOf(JSON.parse(await object.text()));
    const ms = label === undefined ? undefined : parseDuration(label);
    if (ms === undefined || ms <= 0 || ms > MAX_EXPIRES_AFTER_MS) return undefined;
    return { label: label!, ms };
  } catch (error) {
    // Not JSON, or R2 unavailable: the push goes on without an expiry.
    console.warn(`${EXPIRES_AFTER_LABEL} of ${name}@${config.digest} not read`, error);
    return undefined;
  }
}

function labelled(config: Descriptor): boolean {
  return IMAGE_CONFIG_TYPES.has(config.mediaType) && config.size <= MAX_LABELLED_CONFIG_BYTES;
}

function labelOf(json: unknown): string | undefined {
  const labels = (json as { config?: { Labels?: unknown } } | null)?.config?.Labels;
  if (typeof labels !== "object" || labels === null) return undefined;
  const value = (labels as Record<string, unknown>)[EXPIRES_AFTER_LABEL];
  return typeof value === "string" ? value : undefined;
}
