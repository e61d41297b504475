// Unit tests for signed, expiring URL params: round trips and every way a link can be tampered with.
import { describe, expect, it } from "vitest";
import { createUrlSigner } from "./url-signing.ts";

const SECRET = "test-url-signing-secret-0123456789abcdef";
const OTHER_SECRET = "another-url-signing-secret-9876543210fedcba";
const PATH = "/_blobs/sha256/ab/abcdef0123";
const DIGEST = "sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
const NOW = 1_700_000_000;
const EXP = NOW + 300;

async function signedUrl(
  params: Record<string, string> = { digest: DIGEST, size: "1234" },
  path = PATH,
  exp = EXP,
  secret = SECRET,
): Promise<URL> {
  const query = await createUrlSigner(secret).sign(path, params, exp);
  return new URL(`https://registry.example${path}?${query}`);
}

function verifyUrl(url: URL, now = NOW, secret = SECRET) {
  return createUrlSigner(secret).verify(url.pathname, url.searchParams, now);
}

describe("createUrlSigner", () => {
  it("refuses empty and short secrets", () => {
    expect(() => createUrlSigner("")).toThrow(/at least 32/);
    expect(() => createUrlSigner("x".repeat(31))).toThrow(/at least 32/);
    expect(() => createUrlSigner(undefined as unknown as string)).toThrow(/at least 32/);
    expect(() => createUrlSigner("x".repeat(32))).not.toThrow();
  });
});

describe("sign", () => {
  it("returns the params, exp and a base64url sig as a query string", async () => {
    const query = await createUrlSigner(SECRET).sign(PATH, { digest: DIGEST }, EXP);
    const search = new URLSearchParams(query);
    expect(search.get("digest")).toBe(DIGEST);
    expect(search.get("exp")).toBe(String(EXP));
    expect(search.get("sig")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(query.startsWith("?")).toBe(false);
  });

  it("is deterministic and independent of param order", async () => {
    const signer = createUrlSigner(SECRET);
    const a = new URLSearchParams(await signer.sign(PATH, { digest: DIGEST, size: "1" }, EXP));
    const b = new URLSearchParams(await signer.sign(PATH, { size: "1", digest: DIGEST }, EXP));
    expect(a.get("sig")).toBe(b.get("sig"));
  });

  it("refuses params named exp or sig", async () => {
    const signer = createUrlSigner(SECRET);
    await expect(signer.sign(PATH, { exp: "1" }, EXP)).rejects.toThrow(/reserved/);
    await expect(signer.sign(PATH, { sig: "1" }, EXP)).rejects.toThrow(/reserved/);
  });

  it("refuses a bad expiry or a path that is not a URL path", async () => {
    const signer = createUrlSigner(SECRET);
    await expect(signer.sign(PATH, {}, 1.5)).rejects.toThrow(RangeError);
    await expect(signer.sign(PATH, {}, -1)).rejects.toThrow(RangeError);
    await expect(signer.sign(PATH, {}, Number.NaN)).rejects.toThrow(RangeError);
    await expect(signer.sign("relative/path", {}, EXP)).rejects.toThrow(/cannot sign/);
    await expect(signer.sign("//host/path", {}, EXP)).rejects.toThrow(/cannot sign/);
    await expect(signer.sign("/a?b=c", {}, EXP)).rejects.toThrow(/cannot sign/);
    await expect(signer.sign("/a#b", {}, EXP)).rejects.toThrow(/cannot sign/);
  });
});

describe("verify", () => {
  it("round-trips and returns exactly the signed params", async () => {
    const result = await verifyUrl(await signedUrl());
    expect(result).toEqual({ ok: true, params: { digest: DIGEST, size: "1234" } });
  });

  it("round-trips params that need encoding, and no params at all", async () => {
    const params = { "a b": "x&y=z", "ü/+": "%2F +\n", empty: "" };
    expect(await verifyUrl(await signedUrl(params))).toEqual({ ok: true, params });
    expect(await verifyUrl(await signedUrl({}))).toEqual({ ok: true, params: {} });
  });

  it("accepts a raw path signed and the URL's normalized pathname verified", async () => {
    const raw = "/_blobs/with space/ü";
    const url = await signedUrl({ digest: DIGEST }, raw);
    expect(url.pathname).toBe("/_blobs/with%20space/%C3%BC");
    expect((await verifyUrl(url)).ok).toBe(true);
  });

  it("reports missing when sig or exp is absent", async () => {
    for (const name of ["sig", "exp"]) {
      const url = await signedUrl();
      url.searchParams.delete(name);
      expect(await verifyUrl(url)).toEqual({ ok: false, reason: "missing" });
    }
    const bare = new URL(`https://registry.example${PATH}`);
    expect(await verifyUrl(bare)).toEqual({ ok: false, reason: "missing" });
  });

  it("rejects a tampered path", async () => {
    const url = await signedUrl();
    const result = await createUrlSigner(SECRET).verify(
      "/_blobs/sha256/ab/abcdef0124",
      url.searchParams,
      NOW,
    );
    expect(result).toEqual({ ok: false, reason: "invalid" });
  });

  it("rejects a tampered param value", async () => {
    const url = await signedUrl();
    url.searchParams.set("size", "1235");
    expect(await verifyUrl(url)).toEqual({ ok: false, reason: "invalid" });
  });

  it("rejects an added param, a removed param and a repeated param", async () => {
    const added = await signedUrl();
    added.searchParams.append("extra", "1");
    expect(await verifyUrl(added)).toEqual({ ok: false, reason: "invalid" });

    const removed = await signedUrl();
    removed.searchParams.delete("size");
    expect(await verifyUrl(removed)).toEqual({ ok: false, reason: "invalid" });

    const repeated = await signedUrl();
    repeated.searchParams.append("digest", "sha256:evil");
    expect(await verifyUrl(repeated)).toEqual({ ok: false, reason: "invalid" });

    const proto = await signedUrl();
    proto.searchParams.append("__proto__", "x");
    expect(await verifyUrl(proto)).toEqual({ ok: false, reason: "invalid" });
  });

  it("rejects a repeated sig or exp", async () => {
    for (const name of ["sig", "exp"]) {
      const url = await signedUrl();
      url.searchParams.append(name, url.searchParams.get(name)!);
      expect(await verifyUrl(url)).toEqual({ ok: false, reason: "invalid" });
    }
  });

  it("rejects a tampered exp, even an extended one", async () => {
    const later = await signedUrl();
    later.searchParams.set("exp", String(EXP + 3600));
    expect(await verifyUrl(later)).toEqual({ ok: false, reason: "invalid" });

    // Same number, other spelling: not the signed string.
    const spelled = await signedUrl();
    spelled.searchParams.set("exp", `0${EXP}`);
    expect(await verifyUrl(spelled)).toEqual({ ok: false, reason: "invalid" });

    const junk = await signedUrl();
    junk.searchParams.set("exp", "soon");
    expect(await verifyUrl(junk)).toEqual({ ok: false, reason: "invalid" });
  });

  it("rejects a tampered, truncated or non-canonical sig", async () => {
    const url = await signedUrl();
    const sig = url.searchParams.get("sig")!;

    const flipped = new URL(url);
    flipped.searchParams.set("sig", (sig[0] === "A" ? "B" : "A") + sig.slice(1));
    expect(await verifyUrl(flipped)).toEqual({ ok: false, reason: "invalid" });

    const truncated = new URL(url);
    truncated.searchParams.set("sig", sig.slice(0, 42));
    expect(await verifyUrl(truncated)).toEqual({ ok: false, reason: "invalid" });

    const padded = new URL(url);
    padded.searchParams.set("sig", `${sig}=`);
    expect(await verifyUrl(padded)).toEqual({ ok: false, reason: "invalid" });

    // The last of 43 characters carries 4 bits and 2 unused ones; atob ignores the unused
    // bits, so flipping them would decode to the same MAC. Only the canonical spelling passes.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const last = alphabet.indexOf(sig.at(-1)!);
    const sibling = new URL(url);
    sibling.searchParams.set("sig", sig.slice(0, 42) + alphabet[last ^ 1]);
    expect(await verifyUrl(sibling)).toEqual({ ok: false, reason: "invalid" });

    const standardBase64 = new URL(url);
    standardBase64.searchParams.set("sig", sig.replace(/-/g, "+").replace(/_/g, "/"));
    if (standardBase64.searchParams.get("sig") !== sig) {
      expect(await verifyUrl(standardBase64)).toEqual({ ok: false, reason: "invalid" });
    }
  });

  it("reports expired once now reaches exp, only for a genuine link", async () => {
    const url = await signedUrl();
    expect((await verifyUrl(url, EXP - 1)).ok).toBe(true);
    expect(await verifyUrl(url, EXP)).toEqual({ ok: false, reason: "expired" });
    expect(await verifyUrl(url, EXP + 1_000_000)).toEqual({ ok: false, reason: "expired" });

    // A forged link gets "invalid" whatever its exp says.
    const forged = await signedUrl();
    forged.searchParams.set("size", "1");
    expect(await verifyUrl(forged, EXP + 1)).toEqual({ ok: false, reason: "invalid" });
  });

  it("rejects a link signed with another secret", async () => {
    const url = await signedUrl(undefined, PATH, EXP, OTHER_SECRET);
    expect(await verifyUrl(url)).toEqual({ ok: false, reason: "invalid" });
    expect((await verifyUrl(url, NOW, OTHER_SECRET)).ok).toBe(true);
  });

  it("binds params to names: moving a value to another param fails", async () => {
    const url = await signedUrl({ a: "1", b: "2" });
    url.searchParams.set("a", "2");
    url.searchParams.set("b", "1");
    expect(await verifyUrl(url)).toEqual({ ok: false, reason: "invalid" });
  });

  it("keeps the canonical string unambiguous across param boundaries", async () => {
    // Naively joined, {a: "1&b=2"} and {a: "1", b: "2"} would read the same.
    const url = await signedUrl({ a: "1&b=2" });
    const sig = url.searchParams.get("sig")!;
    const split = new URL(`https://registry.example${PATH}`);
    split.searchParams.set("a", "1");
    split.searchParams.set("b", "2");
    split.searchParams.set("exp", String(EXP));
    split.searchParams.set("sig", sig);
    expect(await verifyUrl(split)).toEqual({ ok: false, reason: "invalid" });
  });

  it("accepts a URL whose params arrive in another order", async () => {
    const url = await signedUrl({ digest: DIGEST, size: "1234" });
    const reordered = new URLSearchParams();
    for (const [name, value] of [...url.searchParams].reverse()) reordered.append(name, value);
    const result = await createUrlSigner(SECRET).verify(url.pathname, reordered, NOW);
    expect(result).toEqual({ ok: true, params: { digest: DIGEST, size: "1234" } });
  });
});
