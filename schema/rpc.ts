// Result types of the Durable Objects' RPC methods, shared by the objects and the Worker.
import type { Descriptor } from "./oci/manifest.ts";
import type { Digest } from "./oci/reference.ts";

export interface UploadPart {
  partNumber: number;
  etag: string;
}

/** What a writer needs to append to an upload session. */
export interface UploadSnapshot {
  id: string;
  /** Bytes received so far (committed). */
  offset: number;
  /** Saved state of the resumable hash over the first `offset` bytes. */
  hashState: Uint8Array | null;
  key: string;
  multipartUploadId: string | null;
  parts: UploadPart[];
  /** Bytes after the last full part, not yet in R2 (fewer than BLOB_PART_SIZE). */
  tail: Uint8Array;
  /**
   * Set when a streamed PATCH already stored the whole object at `key` (digested natively):
   * its sha256 in hex. A PUT without body then only verifies; more bytes need a rewrite.
   */
  storedSha256: string | null;
}

export interface UploadWrite {
  key: string;
  offset: number;
  hashState: Uint8Array | null;
  multipartUploadId: string | null;
  parts: UploadPart[];
  tail: Uint8Array;
  storedSha256: string | null;
}

export interface BlobLink {
  digest: Digest;
  size: number;
  key: string;
}

export interface ManifestRecord {
  digest: Digest;
  mediaType: string;
  size: number;
  /** Present unless the caller asked for the head only. */
  body?: Uint8Array;
}

export interface PutManifestInput {
  digest: Digest;
  mediaType: string;
  body: Uint8Array;
  blobs: Descriptor[];
  children: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
  tag?: string;
  /** From the image's `quay.expires-after` label: the new tag lifetime ends this long after. */
  tagExpiresInMs?: number;
}

export interface RefDelta {
  /** Unique id so a retried delivery is applied once. */
  id: string;
  digest: Digest;
  delta: 1 | -1;
  /** What is counted: a manifest's reference ("ref", the default) or a repository's link. */
  kind?: "ref" | "link";
  /**
   * Set on a compensation: the id of a link claim whose link was never committed. The shard
   * takes its +1 back if it applied it, and otherwise refuses it forever.
   */
  undoes?: string;
}

export interface BlobRecord {
  digest: Digest;
  size: number;
  /** Manifests (one per repository manifest) that list the blob. */
  refcount: number;
  /** Repositories the blob is linked to (readable through). */
  links: number;
  /** When nothing counts it any more: the time from which it may be swept; else null. */
  collectableAt: number | null;
  copies: { region: string; key: string }[];
}

/** A change in how many repositories of a namespace reference a blob (NamespaceObject). */
export interface QuotaDelta {
  /** Unique so a retried delivery is applied once. */
  id: string;
  digest: Digest;
  /** The blob's size; carried by every delta so the namespace never has to look it up. */
  size: number;
  delta: 1 | -1;
}

/** A namespace's storage usage and limits, as the management API shows them. */
export interface QuotaView {
  usageBytes: number;
  /** Null when the namespace has no hard limit. */
  limitBytes: number | null;
  warningPercent: number;
  /** Distinct blobs counted in `usageBytes`. */
  blobs: number;
}

/** Whether the namespace admits new bytes; when not, the numbers for the refusal message. */
export type QuotaAdmission =
  | { admitted: true }
  | { admitted: false; usageBytes: number; limitBytes: number; newBytes: number };

// ---- garbage collection's counters (gcStats(); kept in memory since the object started) -----

/** A RepositoryObject's collection work since it started. */
/**
 * Why a repository still stores a manifest: each rule garbage collection weighs (see
 * docs/garbage-collection.md), so "why is this not collected?" has an answer.
 */
export interface ManifestRetention {
  digest: Digest;
  /** False when no rule keeps it: the collector removes it at its next look. */
  kept: boolean;
  /** Current tags pointing at it (at most 100). */
  tags: string[];
  /** Indexes or lists of the repository that list it (at most 100). */
  parents: string[];
  /** The subject it refers to, when the repository stores that subject. */
  subject: string | null;
  /** A tag left it inside the retention window: kept until then (ms since the epoch). */
  historyUntil: number | null;
  /** Pushed less than the grace ago: kept until then (ms since the epoch). */
  pushGraceUntil: number | null;
  /**
   * When nothing but time keeps it: the moment it becomes collectable (ms since the epoch);
   * null while a tag, a parent or its subject keeps it, or when it is not kept at all.
   */
  collectableAt: number | null;
}

export interface RepositoryGcStats {
  /** Alarm runs that examined candidates. */
  runs: number;
  /** Candidates examined (each a few indexed lookups). */
  examined: number;
  manifestsCollected: number;
  linksRemoved: number;
  rowsRead: number;
  rowsWritten: number;
  /** Candidates waiting (due now or later). */
  pending: number;
}

/** A BlobRefObject's sweep work since it started. */
export interface ShardGcStats {
  sweeps: number;
  blobsSwept: number;
  bytesSwept: number;
  r2DeleteCalls: number;
  r2KeysDeleted: number;
  rowsRead: number;
  rowsWritten: number;
  /** Blobs nothing counts, waiting for their grace to end. */
  pending: number;
}
