// Streams upload bytes into R2 exactly once: full BLOB_PART_SIZE parts go to a multipart upload
// as they fill (one part in flight while the next fills), the digest is computed on the fly,
// and the remainder (< one part) goes back to the session until more bytes or the final PUT.
import { BLOB_PART_SIZE } from "../../../schema/blob-keys.ts";
import type { UploadPart, UploadSnapshot, UploadWrite } from "../../../schema/rpc.ts";
import type { Digester } from "../lib/digester.ts";
import { readPieces } from "../lib/read-pieces.ts";

const BLOB_HTTP_METADATA = { contentType: "application/octet-stream" };

export interface WriteProgress {
  key: string;
  offset: number;
  digester: Digester;
  multipart: R2MultipartUpload | null;
  parts: UploadPart[];
  tail: Uint8Array;
}

export function resumeProgress(
  bucket: R2Bucket,
  session: UploadSnapshot,
  digester: Digester,
): WriteProgress {
  return {
    key: session.key,
    offset: session.offset,
    digester,
    multipart: session.multipartUploadId
      ? bucket.resumeMultipartUpload(session.key, session.multipartUploadId)
      : null,
    parts: [...session.parts],
    tail: session.tail,
  };
}

/** Appends a request body. On failure, parts already sent are overwritten by the next write. */
export async function appendBody(
  bucket: R2Bucket,
  progress: WriteProgress,
  body: ReadableStream<Uint8Array>,
): Promise<WriteProgress> {
  let part = new Uint8Array(BLOB_PART_SIZE);
  part.set(progress.tail);
  let fill = progress.tail.byteLength;
  let spare: Uint8Array<ArrayBuffer> | null = null;
  let inflight: Promise<Uint8Array<ArrayBuffer>> | null = null;
  const parts = [...progress.parts];
  let nextPartNumber = parts.length + 1;
  let multipart = progress.multipart;
  let offset = progress.offset;

  try {
    for await (const piece of readPieces(body)) {
      await progress.digester.update(piece);
      offset += piece.byteLength;
      for (let at = 0; at < piece.byteLength; ) {
        const n = Math.min(piece.byteLength - at, BLOB_PART_SIZE - fill);
        part.set(piece.subarray(at, at + n), fill);
        fill += n;
        at += n;
        if (fill < BLOB_PART_SIZE) continue;
        // A full part: wait for the previous one, then send this one while the next fills.
        if (inflight) spare = await inflight;
        multipart ??= await bucket.createMultipartUpload(progress.key, {
          httpMetadata: BLOB_HTTP_METADATA,
        });
        const full = part;
        inflight = multipart.uploadPart(nextPartNumber++, full).then((uploaded) => {
          parts.push({ partNumber: uploaded.partNumber, etag: uploaded.etag });
          return full;
        });
        part = spare ?? new Uint8Array(BLOB_PART_SIZE);
        spare = null;
        fill = 0;
      }
    }
    if (inflight) await inflight;
  } catch (error) {
    await inflight?.catch(() => undefined);
    throw new UploadInterrupted(multipart, error);
  }
  return {
    ...progress,
    offset,
    multipart,
    parts,
    tail: part.slice(0, fill),
  };
}

/** A body that failed mid-way; carries the multipart upload so the session can abort it later. */
export class UploadInterrupted extends Error {
  constructor(
    readonly multipart: R2MultipartUpload | null,
    cause: unknown,
  ) {
    super("upload body interrupted", { cause });
  }
}

/** The session state after a chunk: resumable hash state, parts so far, the tail. */
export function toUploadWrite(progress: WriteProgress): UploadWrite {
  return {
    key: progress.key,
    offset: progress.offset,
    hashState: progress.digester.save(),
    multipartUploadId: progress.multipart?.uploadId ?? null,
    parts: progress.parts,
    tail: progress.tail,
    storedSha256: null,
  };
}

/** The session state after a streamed upload already stored whole, digest known. */
export function storedUploadWrite(progress: WriteProgress, sha256: string): UploadWrite {
  return {
    key: progress.key,
    offset: progress.offset,
    hashState: null,
    multipartUploadId: null,
    parts: [],
    tail: new Uint8Array(0),
    storedSha256: sha256,
  };
}

/** Makes the blob object: completes the multipart upload, or one put for a small blob. */
export async function storeBlob(bucket: R2Bucket, progress: WriteProgress): Promise<void> {
  if (!progress.multipart) {
    await bucket.put(progress.key, progress.tail, { httpMetadata: BLOB_HTTP_METADATA });
    return;
  }
  const parts = [...progress.parts];
  if (progress.tail.byteLength > 0) {
    const last = await progress.multipart.uploadPart(parts.length + 1, progress.tail);
    parts.push({ partNumber: last.partNumber, etag: last.etag });
  }
  await progress.multipart.complete(parts);
}

export async function discardUpload(progress: WriteProgress): Promise<void> {
  await progress.multipart?.abort().catch(() => undefined);
}
