// Random bearer secrets (app tokens, robot tokens, fleet credentials): shown once, stored only as
// a SHA-256 hash. They carry 256 bits of entropy, so a fast hash is enough; the prefix tells a
// leaked token's kind.
import { toHex } from "../lib/digest.ts";

export const TOKEN_PREFIX = { app: "era_", robot: "err_", fleet: "erf_" } as const;

export function newSecretToken(kind: keyof typeof TOKEN_PREFIX): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return (
    TOKEN_PREFIX[kind] + btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "")
  );
}

export async function hashSecretToken(token: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
  return toHex(new Uint8Array(digest));
}
