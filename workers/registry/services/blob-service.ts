// Blob reads (distribution-spec §"Pulling blobs", §"Deleting blobs"): existence through the
// repository's links, and redirects to where the bytes are served (never through /v2 itself).
import { RegistryError } from "../../../schema/oci/errors.ts";
import type { Digest, RepositoryName } from "../../../schema/oci/reference.ts";
import type { BlobLink } from "../../../schema/rpc.ts";
import { namespaceOf } from "../auth/access.ts";
import type { ObjectDirectory } from "../storage/repository-stubs.ts";
import type { BlobUrls } from "./blob-urls.ts";
import { emitFor, type RequestContext } from "./request-context.ts";

export class BlobService {
  constructor(
    private readonly deps: { objects: ObjectDirectory; urls: BlobUrls; ctx: RequestContext },
  ) {}

  /** A blob is visible through a repository only if linked to it (an access boundary). */
  async stat(name: RepositoryName, digest: Digest): Promise<BlobLink> {
    const link = await this.deps.objects.repository(name).getBlob(digest);
    if (!link) throw new RegistryError("BLOB_UNKNOWN", undefined, { detail: { digest } });
    return link;
  }

  async downloadUrl(
    name: RepositoryName,
    digest: Digest,
    origin: string,
  ): Promise<{ link: BlobLink; url: string }> {
    const link = await this.stat(name, digest);
    return { link, url: await this.deps.urls.urlFor(link, origin) };
  }

  async delete(name: RepositoryName, digest: Digest): Promise<void> {
    const removed = await this.deps.objects.repository(name).unlinkBlob(digest);
    if (!removed) throw new RegistryError("BLOB_UNKNOWN", undefined, { detail: { digest } });
    emitFor(this.deps.ctx, {
      kind: "blob.delete",
      repository: name,
      namespace: namespaceOf(name),
      metadata: { digest },
    });
  }
}
