// Durable Object stubs by name: the only place that turns a repository name or digest into an
// object address.
import type { BlobRefObject } from "../../../durable-objects/blob-ref-object.ts";
import { blobRefShardName } from "../../../durable-objects/blob-ref-object.ts";
import type { RepositoryObject } from "../../../durable-objects/repository-object.ts";
import type { RepositoryName } from "../../../schema/oci/reference.ts";

export interface ObjectDirectory {
  repository(name: RepositoryName): DurableObjectStub<RepositoryObject>;
  blobRef(digest: string): DurableObjectStub<BlobRefObject>;
}

export function objectDirectory(env: {
  REPOSITORY: DurableObjectNamespace<RepositoryObject>;
  BLOB_REF: DurableObjectNamespace<BlobRefObject>;
}): ObjectDirectory {
  return {
    repository: (name) => env.REPOSITORY.getByName(name),
    blobRef: (digest) => env.BLOB_REF.getByName(blobRefShardName(digest)),
  };
}
