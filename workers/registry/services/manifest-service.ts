// Manifests (distribution-spec §"Pulling manifests", §"Pushing manifests", §"Deleting"): verifies
// a pushed body against its media type and digest, then lets the RepositoryObject decide.
import { ensureOk, RegistryError } from "../../../schema/oci/errors.ts";
import { parseManifest } from "../../../schema/oci/manifest.ts";
import { MAX_MANIFEST_BYTES } from "../../../schema/oci/media-types.ts";
import type { Digest, Reference, RepositoryName } from "../../../schema/oci/reference.ts";
import type { ManifestRecord } from "../../../schema/rpc.ts";
import { namespaceOf } from "../auth/access.ts";
import { digestOf } from "../lib/digest.ts";
import type { CatalogStore } from "../storage/catalog-store.ts";
import type { ObjectDirectory } from "../storage/repository-stubs.ts";
import { recordInCatalog } from "./catalog-service.ts";
import { expiresAfterLabel } from "./expiry-label.ts";
import type { QuotaService } from "./quota-service.ts";
import { emitFor, type RequestContext } from "./request-context.ts";

export interface PushedManifest {
  digest: Digest;
  subject?: Digest;
}

export class ManifestService {
  constructor(
    private readonly deps: {
      objects: ObjectDirectory;
      catalog: CatalogStore;
      ctx: RequestContext;
      quota: QuotaService;
      /** Image configs are read from here for their `quay.expires-after` label. */
      bucket: R2Bucket;
    },
  ) {}

  async get(
    name: RepositoryName,
    reference: Reference,
    withBody: boolean,
  ): Promise<ManifestRecord> {
    const repo = this.deps.objects.repository(name);
    const ref = reference.kind === "tag" ? { tag: reference.tag } : { digest: reference.digest };
    // A GET is a pull and is counted by the object; HEAD is how clients check for updates.
    const record = withBody
      ? await repo.pullManifest(name, ref)
      : await repo.getManifest(ref, false);
    if (!record) {
      throw new RegistryError("MANIFEST_UNKNOWN", undefined, {
        detail: { reference: show(reference) },
      });
    }
    return record;
  }

  async put(
    name: RepositoryName,
    reference: Reference,
    body: Uint8Array,
    contentType: string | null,
  ): Promise<PushedManifest> {
    if (body.byteLength > MAX_MANIFEST_BYTES) {
      throw new RegistryError("MANIFEST_INVALID", `manifest exceeds ${MAX_MANIFEST_BYTES} bytes`, {
        status: 413,
      });
    }
    const algorithm =
      reference.kind === "digest" && reference.digest.startsWith("sha512:") ? "sha512" : "sha256";
    const digest = await digestOf(body, algorithm);
    if (reference.kind === "digest" && reference.digest !== digest) {
      throw new RegistryError("DIGEST_INVALID", "manifest digest does not match the reference", {
        detail: { expected: reference.digest, actual: digest },
      });
    }
    const parsed = parseManifest(body, contentType);
    if (!parsed.ok) throw new RegistryError(parsed.code, parsed.message);
    const { manifest } = parsed;
    // Started first so its R2 read overlaps the admission check; it never rejects.
    const expiresAfter =
      reference.kind === "tag" ? expiresAfterLabel(this.deps, name, manifest) : undefined;
    await this.deps.quota.admitManifest(name, manifest.blobs);
    const tagExpiry = await expiresAfter;
    const repo = this.deps.objects.repository(name);
    const result = ensureOk(
      await repo.putManifest({
        digest,
        mediaType: manifest.mediaType,
        body,
        blobs: manifest.blobs,
        children: manifest.children,
        ...(manifest.subject ? { subject: manifest.subject } : {}),
        ...(manifest.artifactType ? { artifactType: manifest.artifactType } : {}),
        ...(manifest.annotations ? { annotations: manifest.annotations } : {}),
        ...(reference.kind === "tag" ? { tag: reference.tag } : {}),
        ...(tagExpiry ? { tagExpiresInMs: tagExpiry.ms } : {}),
      }),
    );
    await recordInCatalog(this.deps.catalog, repo, name, result.catalogued, this.deps.ctx);
    const where = { repository: name, namespace: namespaceOf(name) };
    if (result.created)
      emitFor(this.deps.ctx, {
        kind: "manifest.push",
        ...where,
        metadata: { digest, mediaType: manifest.mediaType },
      });
    if (result.tagMoved)
      emitFor(this.deps.ctx, {
        kind: "tag.push",
        ...where,
        metadata: {
          digest,
          tag: show(reference),
          ...(tagExpiry ? { expiresAfter: tagExpiry.label } : {}),
        },
      });
    return { digest, ...(manifest.subject ? { subject: manifest.subject.digest } : {}) };
  }

  async delete(name: RepositoryName, reference: Reference): Promise<void> {
    const repo = this.deps.objects.repository(name);
    ensureOk(
      reference.kind === "tag"
        ? await repo.deleteTag(reference.tag)
        : await repo.deleteManifest(reference.digest),
    );
    emitFor(this.deps.ctx, {
      kind: reference.kind === "tag" ? "tag.delete" : "manifest.delete",
      repository: name,
      namespace: namespaceOf(name),
      metadata: { reference: show(reference) },
    });
  }
}

function show(reference: Reference): string {
  return reference.kind === "tag" ? reference.tag : reference.digest;
}
