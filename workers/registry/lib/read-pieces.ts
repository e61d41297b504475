// Reads a body in large pieces. Request bodies reach a Worker in 4 KiB chunks; a BYOB reader
// with readAtLeast fills ~1 MiB at a time into one reused buffer, so per-chunk work (hashing,
// copying into parts) runs a few hundred times per blob instead of tens of thousands.

export const PIECE_SIZE = 1024 * 1024;

export async function* readPieces(
  stream: ReadableStream<Uint8Array>,
  pieceSize = PIECE_SIZE,
): AsyncGenerator<Uint8Array> {
  let reader: ReadableStreamBYOBReader;
  try {
    reader = stream.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream (e.g. built in JavaScript): plain reads, same contract.
    yield* readDefault(stream);
    return;
  }
  let buffer = new ArrayBuffer(pieceSize);
  try {
    for (;;) {
      const { value, done } = await reader.readAtLeast(pieceSize, new Uint8Array(buffer));
      if (value) {
        buffer = value.buffer as ArrayBuffer;
        // The piece is only valid until the consumer asks for the next one (buffer reuse).
        if (value.byteLength > 0) yield value;
      }
      if (done) return;
    }
  } finally {
    reader.releaseLock();
  }
}

async function* readDefault(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      if (value.byteLength > 0) yield value;
    }
  } finally {
    reader.releaseLock();
  }
}
