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
import type { BlobLink, UploadSnapshot, UploadWrite } from "../../../schema/rpc.ts";
import { type Digester, nativeDigester, resumableDigester } from "../lib/digester.ts";
import { readPieces } from "../lib/read-pieces.ts";
import {
  appendBody,
  discardUpload,
  resumeProgress,
  storeBlob,
  storedUploadWrite,
  toUploadWrite,
  UploadInterrupted,
  type WriteProgress,
} from "../storage/blob-writer.ts";
import type { CatalogStore } from "../storage/catalog-store.ts";
import type { ObjectDirectory } from "../storage/repository-stubs.ts";
import { recordInCatalog } from "./catalog-service.ts";
import type { QuotaService } from "./quota-service.ts";
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
  quota: QuotaService;
}

export class UploadService {
  constructor(private readonly deps: UploadDeps) {}

  /** POST: a new session, unless the namespace has no room left (refused before it exists). */
  async start(name: RepositoryName): Promise<{ id: string }> {
    await this.deps.quota.admitUpload(name, null);
    return this.openSession(name);
  }

  private openSession(name: RepositoryName): Promise<{ id: string }> {
    return this.deps.objects.repository(name).createUpload(blobObjectKey(crypto.randomUUID()));
  }

  async status(name: RepositoryName, id: string): Promise<{ offset: number }> {
    const result = ensureOk(await this.deps.objects.repository(name).getUpload(id));
    return { offset: result.offset };
  }

  /**
   * PATCH: appends a body to the session. A streamed PATCH (no Content-Range) into an empty
   * session is how docker, skopeo and containerd send a whole blob: it is digested natively and
   * stored whole at once, so the closing PUT only verifies. A Content-Range chunk uses the
   * resumable digest, whose state waits in the session for the next chunk.
   */
  async append(
    name: RepositoryName,
    id: string,
    body: ReadableStream<Uint8Array> | null,
    range: ContentRange | null,
  ): Promise<{ offset: number }> {
    const repo = this.deps.objects.repository(name);
    const { session, leaseId } = ensureOk(
      await repo.beginUploadWrite(id, range ? range.start : null),
    );
    const streamed = range === null && body !== null && isEmptySession(session);
    let progress: WriteProgress | null = null;
    let write: UploadWrite;
    try {
      progress = await this.progressFor(
        session,
        streamed ? nativeDigester("sha256") : null,
        body !== null,
      );
      if (body) progress = await appendBody(this.deps.bucket, progress, body);
      checkRangeEnd(range, session.offset, progress.offset);
      if (streamed) {
        const sha256 = await progress.digester.finish();
        await storeBlob(this.deps.bucket, progress);
        write = storedUploadWrite(progress, sha256);
      } else {
        write = toUploadWrite(progress);
      }
    } catch (error) {
      await repo.releaseUploadWrite(id, leaseId, multipartIdOf(error, progress));
      throw error;
    }
    const result = ensureOk(await repo.commitUploadWrite(id, leaseId, write));
    if (progress.key !== session.key) await this.deps.bucket.delete(session.key);
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
    const { session, leaseId } = ensureOk(
      await repo.beginUploadWrite(id, range ? range.start : null),
    );
    // Bytes that all arrive in this request are digested natively, in the digest's algorithm.
    const oneShot = body !== null && isEmptySession(session);
    let progress: WriteProgress | null = null;
    let actual: string | null = null;
    try {
      if (session.storedSha256 !== null && body === null) {
        // A streamed PATCH stored the object whole; only the digest remains to be checked.
        progress = await this.progressFor(session, null, false);
        actual = algorithm === "sha256" ? session.storedSha256 : null;
      } else {
        progress = await this.progressFor(
          session,
          oneShot ? nativeDigester(algorithm) : null,
          true,
        );
        if (body) progress = await appendBody(this.deps.bucket, progress, body);
        checkRangeEnd(range, session.offset, progress.offset);
        if (progress.digester.algorithm === algorithm) actual = await progress.digester.finish();
      }
    } catch (error) {
      await repo.releaseUploadWrite(id, leaseId, multipartIdOf(error, progress));
      throw error;
    }
    const stored = session.storedSha256 !== null && progress.key === session.key;
    if (actual !== null && actual !== digestHex(digest)) {
      await (stored ? this.deps.bucket.delete(progress.key) : discardUpload(progress));
      await repo.cancelUpload(id);
      throw new RegistryError("DIGEST_INVALID", undefined, { detail: { digest } });
    }
    // A session digested in sha256 but closed with a sha512 digest is checked after storing.
    const link = await this.storeOnce(digest, progress, stored, actual === null);
    if (!link) {
      await repo.cancelUpload(id);
      throw new RegistryError("DIGEST_INVALID", undefined, { detail: { digest } });
    }
    if (progress.key !== session.key)
      await this.deps.bucket.delete(session.key).catch(() => undefined);
    const done = ensureOk(await repo.completeUpload(id, leaseId, link));
    await recordInCatalog(this.deps.catalog, repo, name, done.catalogued, this.deps.ctx);
    return link;
  }

  /**
   * Where a write continues from. A session whose streamed PATCH already stored the object whole
   * cannot take more bytes in place (R2 objects are immutable and a completed upload's parts
   * cannot be reused): its bytes are re-read into a new multipart upload with a resumable digest.
   * Clients seldom do this (docker, skopeo and containerd never do); it costs one rewrite.
   */
  private async progressFor(
    session: UploadSnapshot,
    digester: Digester | null,
    willAppend: boolean,
  ): Promise<WriteProgress> {
    if (session.storedSha256 === null) {
      return resumeProgress(
        this.deps.bucket,
        session,
        digester ?? resumableDigester("sha256", session.hashState),
      );
    }
    const fresh = (key: string, offset: number): WriteProgress => ({
      key,
      offset,
      digester: resumableDigester("sha256"),
      multipart: null,
      parts: [],
      tail: new Uint8Array(0),
    });
    if (!willAppend) return fresh(session.key, session.offset);
    const object = await this.deps.bucket.get(session.key);
    if (!object)
      throw new RegistryError("BLOB_UPLOAD_INVALID", "the upload's stored bytes are gone");
    return appendBody(this.deps.bucket, fresh(blobObjectKey(crypto.randomUUID()), 0), object.body);
  }

  /** POST ?digest= with a body: a session of one request (`size`: its Content-Length, if any). */
  async monolithic(
    name: RepositoryName,
    digest: Digest,
    body: ReadableStream<Uint8Array>,
    size: number | null = null,
  ): Promise<BlobLink> {
    await this.deps.quota.admitUpload(name, { digest, size });
    const { id } = await this.openSession(name);
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
    await this.deps.quota.admitUpload(name, { digest, size: source.size });
    const repo = this.deps.objects.repository(name);
    // The object counts the link at the blob's shard first: a blob being garbage collected
    // (or whose copy is not the source's) is refused, and the client uploads it instead.
    const linked = await repo.linkBlob(source);
    if (!linked.ok) return null;
    await recordInCatalog(this.deps.catalog, repo, name, linked.catalogued, this.deps.ctx);
    return source;
  }

  /**
   * Stores the verified bytes unless the region already holds this blob, in which case the new
   * bytes are dropped and the existing copy is linked: R2 keeps one copy per digest.
   * `alreadyStored`: a streamed PATCH wrote the object whole. With `verifyAfterStore`, the stored
   * object is re-hashed natively and dropped on mismatch.
   */
  private async storeOnce(
    digest: Digest,
    progress: WriteProgress,
    alreadyStored: boolean,
    verifyAfterStore: boolean,
  ): Promise<BlobLink | null> {
    const refs = this.deps.objects.blobRef(digest);
    const size = progress.offset;
    const drop = () =>
      alreadyStored ? this.deps.bucket.delete(progress.key) : discardUpload(progress);
    // Revived: the stored copy's grace starts again, so the link claim that follows finds it.
    const existing = await refs.revive(digest);
    const copy = existing?.copies.find((c) => c.region === PRIMARY_REGION);
    if (copy && existing && existing.size === size && !verifyAfterStore) {
      await drop();
      return { digest, size, key: copy.key };
    }
    if (!alreadyStored) await storeBlob(this.deps.bucket, progress);
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
    const digester = nativeDigester(digestAlgorithm(digest));
    for await (const piece of readPieces(object.body)) await digester.update(piece);
    return (await digester.finish()) === digestHex(digest);
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

function multipartIdOf(error: unknown, progress: WriteProgress | null): string | null {
  if (error instanceof UploadInterrupted) return error.multipart?.uploadId ?? null;
  return progress?.multipart?.uploadId ?? null;
}

/** Nothing received yet, nothing stored: the next bytes are the blob's first. */
function isEmptySession(session: UploadSnapshot): boolean {
  return session.offset === 0 && session.hashState === null && session.storedSha256 === null;
}
