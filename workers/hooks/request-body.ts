// Reads a request body up to a limit: a declared Content-Length over it is refused before reading
// anything, and a body without one (chunked) is cut off as soon as it passes the limit.

export async function readLimitedBody(
  request: Request,
  limit: number,
): Promise<Uint8Array | "too-large"> {
  const declared = request.headers.get("Content-Length");
  if (declared !== null && Number(declared) > limit) return "too-large";
  if (!request.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let length = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.byteLength;
    if (length > limit) {
      await reader.cancel("body too large");
      return "too-large";
    }
    chunks.push(value);
  }
  const body = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.byteLength;
  }
  return body;
}
