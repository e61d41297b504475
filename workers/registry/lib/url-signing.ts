// HMAC-SHA256 signatures for things this Worker puts in a URL to trust later (signed, expiring
// blob links, upload state): `?<params>&exp=<unix seconds>&sig=<base64url>`.
//
// The MAC covers one canonical string, so no two different (path, params, exp) can collide:
//
//   "v1" LF <path> LF <exp> LF <k1>=<v1>&<k2>=<v2>...
//
// where keys and values are percent-encoded with encodeURIComponent (so "=", "&" and LF cannot
// occur inside them) and sorted by encoded key. The path is normalized the way `new URL()`
// normalizes a pathname, so the signer may pass a raw path and the verifier `url.pathname`.

export type VerifyResult =
  | { ok: true; params: Record<string, string> }
  | { ok: false; reason: "missing" | "expired" | "invalid" };

export interface UrlSigner {
  /**
   * Returns the query string (without "?") of `params` plus `exp` and `sig`, covering `path`,
   * every param and the expiry. The link is valid while now < expiresAtSeconds.
   */
  sign(path: string, params: Record<string, string>, expiresAtSeconds: number): Promise<string>;
  /**
   * Checks the signature (constant-time, by WebCrypto) and then the expiry of a URL's path and
   * search params; every param other than `sig` must be covered. Returns the signed params.
   */
  verify(path: string, search: URLSearchParams, nowSeconds: number): Promise<VerifyResult>;
}

/** Shorter secrets are refused: HMAC-SHA256 wants a key of at least its 256-bit output. */
export const MIN_SECRET_LENGTH = 32;

const RESERVED = new Set(["exp", "sig"]);
const encoder = new TextEncoder();

// One imported key per secret per isolate: importKey is async and not free, and the secret
// binding is fixed for an isolate's lifetime. Holds at most a handful of entries (one per
// distinct secret, e.g. during a rotation).
const keys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (key === undefined) {
    key = crypto.subtle.importKey(
      "raw",
      encoder.encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
    keys.set(secret, key);
  }
  return key;
}

export function createUrlSigner(secret: string): UrlSigner {
  if (typeof secret !== "string" || secret.length < MIN_SECRET_LENGTH) {
    throw new Error(`URL signing secret must be at least ${MIN_SECRET_LENGTH} characters`);
  }
  return {
    async sign(path, params, expiresAtSeconds) {
      if (!Number.isSafeInteger(expiresAtSeconds) || expiresAtSeconds < 0) {
        throw new RangeError("expiresAtSeconds must be a non-negative integer");
      }
      for (const name of Object.keys(params)) {
        if (RESERVED.has(name)) throw new Error(`"${name}" is reserved by URL signing`);
      }
      const exp = String(expiresAtSeconds);
      const mac = await crypto.subtle.sign(
        "HMAC",
        await hmacKey(secret),
        encoder.encode(canonical(path, exp, Object.entries(params))),
      );
      const query = new URLSearchParams(params);
      query.set("exp", exp);
      query.set("sig", toBase64Url(new Uint8Array(mac)));
      return query.toString();
    },

    async verify(path, search, nowSeconds) {
      const sigs = search.getAll("sig");
      const exps = search.getAll("exp");
      if (sigs.length === 0 || exps.length === 0) return { ok: false, reason: "missing" };
      // A repeated name would let the signed value and the value a reader picks differ.
      if (sigs.length > 1 || exps.length > 1) return { ok: false, reason: "invalid" };
      const exp = exps[0]!;
      const sig = fromBase64Url(sigs[0]!);
      // Only the canonical decimal form, so exp=0100 or exp=1e9 cannot be re-signed views of it.
      if (sig === null || !/^(0|[1-9][0-9]{0,15})$/.test(exp)) {
        return { ok: false, reason: "invalid" };
      }
      const entries: [string, string][] = [];
      const seen = new Set<string>();
      for (const [name, value] of search) {
        if (RESERVED.has(name)) continue;
        if (seen.has(name)) return { ok: false, reason: "invalid" };
        seen.add(name);
        entries.push([name, value]);
      }
      let data: Uint8Array;
      try {
        data = encoder.encode(canonical(path, exp, entries));
      } catch {
        return { ok: false, reason: "invalid" };
      }
      const valid = await crypto.subtle.verify("HMAC", await hmacKey(secret), sig, data);
      if (!valid) return { ok: false, reason: "invalid" };
      // Expiry only after the MAC: an unsigned exp says nothing, so it gets no distinct answer.
      if (nowSeconds >= Number(exp)) return { ok: false, reason: "expired" };
      // fromEntries defines own properties, so even a "__proto__" param stays a plain value.
      return { ok: true, params: Object.fromEntries(entries) };
    },
  };
}

function canonical(path: string, exp: string, params: [string, string][]): string {
  const pairs = params.map(
    ([name, value]) => [encodeURIComponent(name), encodeURIComponent(value)] as const,
  );
  // Encoded names are unique (distinct names encode distinctly), so this order is total.
  pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const query = pairs.map(([name, value]) => `${name}=${value}`).join("&");
  return `v1\n${normalizePath(path)}\n${exp}\n${query}`;
}

function normalizePath(path: string): string {
  // "?" or "#" would end the path inside a URL, so the signed path could not be the one served.
  if (!path.startsWith("/") || path.startsWith("//") || /[?#]/.test(path)) {
    throw new Error(`cannot sign path ${JSON.stringify(path)}`);
  }
  return new URL(path, "https://signing.invalid").pathname;
}

function toBase64Url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(text: string): Uint8Array<ArrayBuffer> | null {
  // An HMAC-SHA256 tag is 32 bytes: 43 base64url characters, unpadded.
  if (!/^[A-Za-z0-9_-]{43}$/.test(text)) return null;
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  // atob ignores the unused low bits of the last character; insist on the one canonical spelling.
  return toBase64Url(bytes) === text ? bytes : null;
}
