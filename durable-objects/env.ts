// The bindings a Durable Object needs; the registry Worker's Env extends this.
import type { BlobRefObject } from "./blob-ref-object.ts";
import type { BuildCoordinator } from "./build-coordinator.ts";
import type { BuildObject } from "./build-object.ts";
import type { NamespaceObject } from "./namespace-object.ts";
import type { RepositoryObject } from "./repository-object.ts";

export interface ObjectEnv {
  REPOSITORY: DurableObjectNamespace<RepositoryObject>;
  BLOB_REF: DurableObjectNamespace<BlobRefObject>;
  /** Per-namespace storage usage and quota (one object per user or organization). */
  NAMESPACE: DurableObjectNamespace<NamespaceObject>;
  BLOBS: R2Bucket;
  /** D1: the RepositoryObject adds its batched pull counts to `pull_counts`. */
  DB: D1Database;
  /** Seconds an idle upload session lives before its alarm aborts it. */
  UPLOAD_SESSION_TTL_SECONDS: string;
  /** Seconds of grace before garbage collection takes what nothing keeps (default 3600). */
  GC_GRACE_SECONDS?: string;
  /** The `registry-events` queue: the NamespaceObject announces quota warnings on it. */
  EVENTS: Queue;
  /** The one BuildCoordinator ("global"): pending build jobs, fleet hosts, leases. */
  BUILD_COORDINATOR: DurableObjectNamespace<BuildCoordinator>;
  /** One BuildObject per build (by build id): phases, logs, watchers. */
  BUILD: DurableObjectNamespace<BuildObject>;
  /** The coordinator signs each attempt's build token with the registry's token key. */
  TOKEN_SIGNING_KEY: string;
  REGISTRY_SERVICE?: string;
}
