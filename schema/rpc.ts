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
}

export interface RefDelta {
  /** Unique id so a retried delivery is applied once. */
  id: string;
  digest: Digest;
  delta: 1 | -1;
}

export interface BlobRecord {
  digest: Digest;
  size: number;
  refcount: number;
  copies: { region: string; key: string }[];
}
