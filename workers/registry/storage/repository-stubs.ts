// Durable Object stubs by name: the only place that turns a repository name, digest or
// namespace into an object address.
import type { BlobRefObject } from "../../../durable-objects/blob-ref-object.ts";
import { blobRefShardName } from "../../../durable-objects/blob-ref-object.ts";
import {
  type NamespaceObject,
  namespaceObjectName,
  namespaceOfRepository,
} from "../../../durable-objects/namespace-object.ts";
import type { RepositoryObject } from "../../../durable-objects/repository-object.ts";
import type { RepositoryName } from "../../../schema/oci/reference.ts";

export interface ObjectDirectory {
  repository(name: RepositoryName): DurableObjectStub<RepositoryObject>;
  blobRef(digest: string): DurableObjectStub<BlobRefObject>;
  /** The quota object of a namespace ("" for repositories outside any namespace). */
  namespace(namespace: string): DurableObjectStub<NamespaceObject>;
  /** The quota object of the namespace a repository belongs to. */
  namespaceOf(name: RepositoryName): DurableObjectStub<NamespaceObject>;
}

export function objectDirectory(env: {
  REPOSITORY: DurableObjectNamespace<RepositoryObject>;
  BLOB_REF: DurableObjectNamespace<BlobRefObject>;
  NAMESPACE: DurableObjectNamespace<NamespaceObject>;
}): ObjectDirectory {
  return {
    repository: (name) => env.REPOSITORY.getByName(name),
    blobRef: (digest) => env.BLOB_REF.getByName(blobRefShardName(digest)),
    namespace: (namespace) => env.NAMESPACE.getByName(namespaceObjectName(namespace)),
    namespaceOf: (name) =>
      env.NAMESPACE.getByName(namespaceObjectName(namespaceOfRepository(name))),
  };
}
