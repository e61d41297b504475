// The bindings a Durable Object needs; the registry Worker's Env extends this.
import type { BlobRefObject } from "./blob-ref-object.ts";
import type { RepositoryObject } from "./repository-object.ts";

export interface ObjectEnv {
  REPOSITORY: DurableObjectNamespace<RepositoryObject>;
  BLOB_REF: DurableObjectNamespace<BlobRefObject>;
  BLOBS: R2Bucket;
  /** D1: the RepositoryObject adds its batched pull counts to `pull_counts`. */
  DB: D1Database;
  /** Seconds an idle upload session lives before its alarm aborts it. */
  UPLOAD_SESSION_TTL_SECONDS: string;
}
