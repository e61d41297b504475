// Webhook secrets of build triggers: made here (256 random bits, shown once), stored sealed with
// AES-256-GCM under the WEBHOOK_SECRET_KEY binding. Unlike app or robot tokens they cannot be kept
// as a hash: the hooks Worker needs the secret itself as the HMAC key (GitHub, generic) or to
// compare with the token GitLab sends. The trigger id is the additional authenticated data, so a
// sealed secret copied onto another trigger's row does not open. The hooks Worker imports this too.

/** `erh_` (edge-registry hook) + 43 base64url characters: 256 bits. */
export const WEBHOOK_SECRET_PREFIX = "erh_";
const SEALED_VERSION = "v1";

export function newWebhookSecret(): string {
  return WEBHOOK_SECRET_PREFIX + base64url(crypto.getRandomValues(new Uint8Array(32)));
}

/** Seals `secret` for the trigger `triggerId`: `v1.<iv>.<ciphertext+tag>`, base64url. */
export async function sealWebhookSecret(
  keyHex: string | undefined,
  triggerId: string,
  secret: string,
): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: encoder.encode(triggerId) },
    await sealingKey(keyHex),
    encoder.encode(secret),
  );
  return `${SEALED_VERSION}.${base64url(iv)}.${base64url(new Uint8Array(sealed))}`;
}

/** Opens a sealed secret; throws when it was sealed for another trigger, key or was altered. */
export async function openWebhookSecret(
  keyHex: string | undefined,
  triggerId: string,
  sealed: string,
): Promise<string> {
  const [version, iv, data] = sealed.split(".");
  if (version !== SEALED_VERSION || !iv || !data) {
    throw new Error(`sealed webhook secret of trigger ${triggerId} has an unknown format`);
  }
  const plain = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: fromBase64url(iv), additionalData: encoder.encode(triggerId) },
    await sealingKey(keyHex),
    fromBase64url(data),
  );
  return new TextDecoder().decode(plain);
}

const encoder = new TextEncoder();
// Importing a key costs a little each time; an isolate reuses it for every request.
const keys = new Map<string, Promise<CryptoKey>>();

function sealingKey(keyHex: string | undefined): Promise<CryptoKey> {
  if (!keyHex || !/^[0-9a-fA-F]{64}$/.test(keyHex)) {
    // A deployment without the secret binding: a bug of configuration, not of the request.
    throw new Error("WEBHOOK_SECRET_KEY must be set to 64 hex characters (32 bytes)");
  }
  let key = keys.get(keyHex);
  if (!key) {
    const bytes = new Uint8Array(32);
    for (let i = 0; i < 32; i++) bytes[i] = Number.parseInt(keyHex.slice(i * 2, i * 2 + 2), 16);
    key = crypto.subtle.importKey("raw", bytes, "AES-GCM", false, ["encrypt", "decrypt"]);
    keys.set(keyHex, key);
  }
  return key;
}

function base64url(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function fromBase64url(text: string): Uint8Array {
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
