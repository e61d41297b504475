// Two ways to digest an upload as it streams. Native (WebCrypto's DigestStream, ~5x faster, but
// its state cannot be saved) for bytes that arrive in one request; resumable (pure TypeScript,
// state saved with the session) for uploads that arrive in several Content-Range chunks.
import { toHex } from "./digest.ts";
import {
  createHash,
  type HashAlgorithm,
  type ResumableHash,
  restoreHash,
} from "./resumable-hash.ts";

export interface Digester {
  readonly algorithm: HashAlgorithm;
  /** Whether `save()` can carry the state into a later request. */
  readonly resumable: boolean;
  /** Feeds bytes; the piece may be reused by the caller once the returned promise settles. */
  update(piece: Uint8Array): void | Promise<void>;
  save(): Uint8Array | null;
  /** The final digest in hex; the digester is finished afterwards. */
  finish(): Promise<string>;
}

export function resumableDigester(algorithm: HashAlgorithm, state?: Uint8Array | null): Digester {
  const hash: ResumableHash = state ? restoreHash(state) : createHash(algorithm);
  return {
    algorithm: hash.algorithm,
    resumable: true,
    update: (piece) => hash.update(piece),
    save: () => hash.save(),
    finish: async () => hash.digestHex(),
  };
}

export function nativeDigester(algorithm: HashAlgorithm): Digester {
  const stream = new crypto.DigestStream(algorithm === "sha512" ? "SHA-512" : "SHA-256");
  const writer = stream.getWriter();
  return {
    algorithm,
    resumable: false,
    update: (piece) => writer.write(piece),
    save: () => null,
    async finish() {
      await writer.close();
      return toHex(new Uint8Array(await stream.digest));
    },
  };
}
