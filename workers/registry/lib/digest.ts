// Digests of whole in-memory bodies (manifests) with WebCrypto.
import type { Digest, DigestAlgorithm } from "../../../schema/oci/reference.ts";

export async function digestOf(bytes: Uint8Array, algorithm: DigestAlgorithm): Promise<Digest> {
  const hash = await crypto.subtle.digest(algorithm === "sha512" ? "SHA-512" : "SHA-256", bytes);
  return `${algorithm}:${toHex(new Uint8Array(hash))}` as Digest;
}

export function toHex(bytes: Uint8Array): string {
  let hex = "";
  for (const byte of bytes) hex += byte.toString(16).padStart(2, "0");
  return hex;
}
