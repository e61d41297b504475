// Reads blob bytes from R2, whole or a byte range.
import type { ByteRange } from "../http/byte-range.ts";

export async function openBlob(
  bucket: R2Bucket,
  key: string,
  range: ByteRange | null,
): Promise<ReadableStream | null> {
  const object = await bucket.get(
    key,
    range ? { range: { offset: range.start, length: range.end - range.start + 1 } } : {},
  );
  return object?.body ?? null;
}
