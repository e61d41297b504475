// Blob uploads (distribution-spec §"Pushing blobs"): sessions, chunks, monolithic pushes,
// cross-repository mounts. Decides; R2 bytes go through blob-writer, state through the objects.
import { blobObjectKey, PRIMARY_REGION } from "../../../schema/blob-keys.ts";
import { ensureOk, RegistryError } from "../../../schema/oci/errors.ts";
import {
  type Digest,
  digestAlgorithm,
  digestHex,
  type RepositoryName,
} from "../../../schema/oci/reference.ts";
import type { BlobLink } from "../../../schema/rpc.ts";
import {
  appendBody,
  discardUpload,
  resumeProgress,
  storeBlob,
  toUploadWrite,
  UploadInterrupted,
  type WriteProgress,
} from "../storage/blob-writer.ts";
import type { CatalogStore } from "../storage/catalog-store.ts";
import type { ObjectDirectory } from "../storage/repository-stubs.ts";
import { recordInCatalog } from "./catalog-service.ts";
import type { RequestContext } from "./request-context.ts";

export interface ContentRange {
  start: number;
  end: number;
}

export interface UploadDeps {
  objects: ObjectDirectory;
  bucket: R2Bucket;
  catalog: CatalogStore;
  ctx: RequestContext;
}

export class UploadService {
  constructor(private readonly deps: UploadDeps) {}

  async start(name: RepositoryName): Promise<{ id: string }> {
    return this.deps.objects.repository(name).createUpload(blobObjectKey(crypto.randomUUID()));
  }

  async status(name: RepositoryName, id: string): Promise<{ offset: number }> {
    const result = ensureOk(await this.deps.objects.repository(name).getUpload(id));
    return { offset: result.offset };
  }

  /** PATCH: appends a body (streamed, or one Content-Range chunk) to the session. */
  async append(
    name: RepositoryName,
    id: string,
    body: ReadableStream<Uint8Array> | null,
    range: ContentRange | null,
  ): Promise<{ offset: number }> {
    const repo = this.deps.objects.repository(name);
    const begun = ensureOk(await repo.beginUploadWrite(id, range ? range.start : null));
    const { session, leaseId } = begun;
    let progress = resumeProgress(this.deps.bucket, session, "sha256");
    try {
      if (body) progress = await appendBody(this.deps.bucket, progress, body);
      checkRangeEnd(range, session.offset, progress.offset);
    } catch (error) {
      await repo.releaseUploadWrite(id, leaseId, multipartIdOf(error, progress));
      throw error;
    }
    const result = ensureOk(await repo.commitUploadWrite(id, leaseId, toUploadWrite(progress)));
    return { offset: result.offset };
  }

  /** PUT ?digest=: appends an optional last chunk, verifies the digest, stores the blob once. */
  async finish(
    name: RepositoryName,
    id: string,
    digest: Digest,
    body: ReadableStream<Uint8Array> | null,
    range: ContentRange | null,
  ): Promise<BlobLink> {
    const repo = this.deps.objects.repository(name);
    const algorithm = digestAlgorithm(digest);
    const begun = ensureOk(await repo.beginUploadWrite(id, range ? range.start : null));
    const { session, leaseId } = begun;
    let progress = resumeProgress(this.deps.bucket, session, algorithm);
    try {
      if (body) progress = await appendBody(this.deps.bucket, progress, body);
      checkRangeEnd(range, session.offset, progress.offset);
    } catch (error) {
      await repo.releaseUploadWrite(id, leaseId, multipartIdOf(error, progress));
      throw error;
    }
    // Sessions hash with sha256 unless their first bytes come with the digest; a sha512 digest
    // on a session already hashed with sha256 is checked by re-reading the stored object.
    const canVerifyNow = progress.hash.algorithm === algorithm;
    if (canVerifyNow && progress.hash.digestHex() !== digestHex(digest)) {
      await discardUpload(this.deps.bucket, progress);
      await repo.cancelUpload(id);
      throw new RegistryError("DIGEST_INVALID", undefined, { detail: { digest } });
    }
    const link = await this.storeOnce(digest, progress, !canVerifyNow);
    if (!link) {
      await repo.cancelUpload(id);
      throw new RegistryError("DIGEST_INVALID", undefined, { detail: { digest } });
    }
    const done = ensureOk(await repo.completeUpload(id, leaseId, link));
    await recordInCatalog(this.deps.catalog, repo, name, done.catalogued, this.deps.ctx);
    return link;
  }

  /** POST ?digest= with a body: a session of one request. */
  async monolithic(
    name: RepositoryName,
    digest: Digest,
    body: ReadableStream<Uint8Array>,
  ): Promise<BlobLink> {
    const { id } = await this.start(name);
    try {
      return await this.finish(name, id, digest, body, null);
    } catch (error) {
      await this.deps.objects
        .repository(name)
        .cancelUpload(id)
        .catch(() => undefined);
      throw error;
    }
  }

  async cancel(name: RepositoryName, id: string): Promise<void> {
    ensureOk(await this.deps.objects.repository(name).cancelUpload(id));
  }

  /**
   * POST ?mount=&from=: links a blob the caller can already read in `from` without moving bytes.
   * Returns null when it is not mountable, and the caller falls back to a session.
   */
  async mount(
    name: RepositoryName,
    from: RepositoryName,
    digest: Digest,
  ): Promise<BlobLink | null> {
    const source = await this.deps.objects.repository(from).getBlob(digest);
    if (!source) return null;
    const record = await this.deps.objects.blobRef(digest).get(digest);
    if (!record?.copies.some((copy) => copy.key === source.key)) return null;
    const repo = this.deps.objects.repository(name);
    const { catalogued } = await repo.linkBlob(source);
    await recordInCatalog(this.deps.catalog, repo, name, catalogued, this.deps.ctx);
    return source;
  }

  /**
   * Stores the verified bytes unless the region already holds this blob, in which case the new
   * parts are dropped and the existing copy is linked: R2 keeps one copy per digest.
   * With `verifyAfterStore`, the stored object is re-hashed natively and dropped on mismatch.
   */
  private async storeOnce(
    digest: Digest,
    progress: WriteProgress,
    verifyAfterStore: boolean,
  ): Promise<BlobLink | null> {
    const refs = this.deps.objects.blobRef(digest);
    const size = progress.offset;
    const existing = await refs.get(digest);
    const copy = existing?.copies.find((c) => c.region === PRIMARY_REGION);
    if (copy && existing && existing.size === size && !verifyAfterStore) {
      await discardUpload(this.deps.bucket, progress);
      return { digest, size, key: copy.key };
    }
    await storeBlob(this.deps.bucket, progress);
    if (verifyAfterStore && !(await this.storedDigestMatches(progress.key, digest))) {
      await this.deps.bucket.delete(progress.key);
      return null;
    }
    const registered = await refs.registerCopy(digest, size, PRIMARY_REGION, progress.key);
    if (!registered.created) await this.deps.bucket.delete(progress.key);
    return { digest, size, key: registered.key };
  }

  private async storedDigestMatches(key: string, digest: Digest): Promise<boolean> {
    const object = await this.deps.bucket.get(key);
    if (!object) return false;
    const algorithm = digestAlgorithm(digest) === "sha512" ? "SHA-512" : "SHA-256";
    const hasher = new crypto.DigestStream(algorithm);
    await object.body.pipeTo(hasher);
    const hex = [...new Uint8Array(await hasher.digest)]
      .map((b) => b.toString(16).padStart(2, "0"))
      .join("");
    return hex === digestHex(digest);
  }
}

/** A chunk must end where its Content-Range said; if not, nothing of it is kept. */
function checkRangeEnd(range: ContentRange | null, committed: number, offset: number): void {
  if (range && range.end + 1 !== offset) {
    throw new RegistryError("BLOB_UPLOAD_INVALID", "Content-Range does not match the body length", {
      status: 416,
      headers: { Range: `0-${Math.max(committed - 1, 0)}` },
    });
  }
}

function multipartIdOf(error: unknown, progress: WriteProgress): string | null {
  if (error instanceof UploadInterrupted) return error.multipart?.uploadId ?? null;
  return progress.multipart?.uploadId ?? null;
}
