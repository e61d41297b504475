// Proof that a webhook comes from whoever holds the trigger's secret, per provider. Every compare
// is timing-safe: HMACs are checked with `crypto.subtle.verify` (constant time inside WebCrypto),
// GitLab's plain token by comparing SHA-256 digests with `timingSafeEqual`.
//   github   X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>
//   gitlab   X-Gitlab-Token: <secret>
//   generic  X-Registry-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//            (Stripe's scheme: the signed timestamp bounds replays to MAX_SIGNATURE_AGE_SECONDS;
//            several v1= entries are allowed, e.g. while a sender rotates secrets)
import { toHex } from "../registry/lib/digest.ts";

/** A generic hook signed longer ago (or further ahead) than this is stale. */
export const MAX_SIGNATURE_AGE_SECONDS = 300;

export type RefusalReason = "missing-signature" | "forged" | "stale";

export type Verification = { ok: true } | { ok: false; reason: RefusalReason; detail: string };

const OK: Verification = { ok: true };
const encoder = new TextEncoder();

export async function verifyGithub(
  secret: string,
  body: Uint8Array,
  header: string | null,
): Promise<Verification> {
  if (header === null) return missing("X-Hub-Signature-256");
  const match = /^sha256=([0-9a-fA-F]{64})$/.exec(header.trim());
  if (!match) return forged("X-Hub-Signature-256 is not sha256=<64 hex digits>");
  return (await hmacMatches(secret, body, hexBytes(match[1]!)))
    ? OK
    : forged("X-Hub-Signature-256 does not match the body");
}

export async function verifyGitlab(secret: string, header: string | null): Promise<Verification> {
  if (header === null) return missing("X-Gitlab-Token");
  // Digests first: timingSafeEqual needs equal lengths, and the token's length must not leak.
  const [given, expected] = await Promise.all([sha256(header), sha256(secret)]);
  return crypto.subtle.timingSafeEqual(given, expected)
    ? OK
    : forged("X-Gitlab-Token is not the trigger's secret");
}

export async function verifyGeneric(
  secret: string,
  body: Uint8Array,
  header: string | null,
  nowSeconds: number,
): Promise<Verification> {
  if (header === null) return missing("X-Registry-Signature");
  let timestamp: string | undefined;
  const signatures: Uint8Array[] = [];
  for (const part of header.split(",")) {
    const [key, value = ""] = part.trim().split("=", 2);
    if (key === "t" && /^\d{1,12}$/.test(value)) timestamp = value;
    else if (key === "v1" && /^[0-9a-fA-F]{64}$/.test(value)) signatures.push(hexBytes(value));
  }
  if (timestamp === undefined || signatures.length === 0) {
    return forged("X-Registry-Signature is not t=<unix seconds>,v1=<64 hex digits>");
  }
  const signed = concat(encoder.encode(`${timestamp}.`), body);
  let valid = false;
  for (const signature of signatures) {
    if (await hmacMatches(secret, signed, signature)) valid = true;
  }
  if (!valid) return forged("X-Registry-Signature does not match the timestamp and body");
  // Checked only for an authentic signature: a stale one is a replay, not a forgery.
  const age = nowSeconds - Number(timestamp);
  if (Math.abs(age) > MAX_SIGNATURE_AGE_SECONDS) {
    return {
      ok: false,
      reason: "stale",
      detail: `signed ${age} s ago; at most ${MAX_SIGNATURE_AGE_SECONDS} s either way are accepted`,
    };
  }
  return OK;
}

/** The X-Registry-Signature a sender puts on a generic hook (what the README's example does). */
export async function signGeneric(
  secret: string,
  body: Uint8Array | string,
  timestampSeconds: number,
): Promise<string> {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const signed = concat(encoder.encode(`${timestampSeconds}.`), bytes);
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret), signed);
  return `t=${timestampSeconds},v1=${toHex(new Uint8Array(mac))}`;
}

/** GitHub's X-Hub-Signature-256 for a body. */
export async function signGithub(secret: string, body: Uint8Array | string): Promise<string> {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret), bytes);
  return `sha256=${toHex(new Uint8Array(mac))}`;
}

// ---- internals -------------------------------------------------------------------------------

function missing(header: string): Verification {
  return { ok: false, reason: "missing-signature", detail: `no ${header} header` };
}

function forged(detail: string): Verification {
  return { ok: false, reason: "forged", detail };
}

function hmacKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

async function hmacMatches(
  secret: string,
  data: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  return crypto.subtle.verify("HMAC", await hmacKey(secret), signature, data);
}

async function sha256(text: string): Promise<ArrayBuffer> {
  return crypto.subtle.digest("SHA-256", encoder.encode(text));
}

function hexBytes(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i++) {
    bytes[i] = Number.parseInt(text.slice(i * 2, i * 2 + 2), 16);
  }
  return bytes;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a, 0);
  out.set(b, a.byteLength);
  return out;
}
