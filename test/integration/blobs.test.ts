// Blobs: end-2 (GET → 307 to a signed URL), end-3 (HEAD), end-10 (DELETE), and the local signed
// route that serves the bytes with Range (RFC 9110 §14).
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createUrlSigner } from "../../workers/registry/lib/url-signing.ts";
import {
  api,
  blobRedirect,
  expectError,
  expectHeadError,
  expectSameBytes,
  fetchSigned,
  pullBlob,
  pushBlob,
  randomBytes,
  sha256,
  uniqueRepo,
} from "./helpers.ts";

async function pushed(size = 1000): Promise<{ repo: string; digest: string; bytes: Uint8Array }> {
  const repo = uniqueRepo("blob");
  const bytes = randomBytes(size);
  return { repo, bytes, digest: await pushBlob(repo, bytes) };
}

describe("HEAD /v2/<name>/blobs/<digest> (end-3)", () => {
  it("answers 200 with Content-Length, Docker-Content-Digest and no body", async () => {
    const { repo, digest, bytes } = await pushed(1234);
    const res = await api(`/v2/${repo}/blobs/${digest}`, { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Length")).toBe(String(bytes.byteLength));
    expect(res.headers.get("Docker-Content-Digest")).toBe(digest);
    expect(await res.text()).toBe("");
  });

  it("answers 404 without a body for an unknown blob", async () => {
    const { repo } = await pushed();
    await expectHeadError(
      await api(`/v2/${repo}/blobs/${await sha256("missing")}`, { method: "HEAD" }),
      404,
    );
  });
});

describe("GET /v2/<name>/blobs/<digest> (end-2)", () => {
  it("redirects (307) to a signed, expiring URL instead of streaming through /v2", async () => {
    const { repo, digest } = await pushed();
    const res = await api(`/v2/${repo}/blobs/${digest}`);
    expect(res.status).toBe(307);
    expect(res.headers.get("Docker-Content-Digest")).toBe(digest);
    expect(await res.text()).toBe("");
    const url = new URL(res.headers.get("Location")!);
    expect(url.pathname.startsWith("/v2/")).toBe(false);
    expect(url.searchParams.get("sig")).toBeTruthy();
    const exp = Number(url.searchParams.get("exp"));
    const now = Date.now() / 1000;
    expect(exp).toBeGreaterThan(now);
    expect(exp).toBeLessThanOrEqual(now + Number(env.BLOB_URL_TTL_SECONDS) + 5);
  });

  it("the signed URL returns the bytes as application/octet-stream, without credentials", async () => {
    const { repo, digest, bytes } = await pushed(5000);
    const res = await fetchSigned(await blobRedirect(repo, digest));
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toBe("application/octet-stream");
    expect(res.headers.get("Content-Length")).toBe(String(bytes.byteLength));
    expect(res.headers.get("Docker-Content-Digest")).toBe(digest);
    expectSameBytes(new Uint8Array(await res.arrayBuffer()), bytes);
  });

  it("the signed URL answers HEAD with the length and no body", async () => {
    const { repo, digest, bytes } = await pushed(777);
    const res = await fetchSigned(await blobRedirect(repo, digest), { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Length")).toBe(String(bytes.byteLength));
    expect(await res.text()).toBe("");
  });

  it("answers 404 BLOB_UNKNOWN for an unknown digest", async () => {
    const { repo } = await pushed();
    await expectError(
      await api(`/v2/${repo}/blobs/${await sha256("missing")}`),
      404,
      "BLOB_UNKNOWN",
    );
  });

  it("answers 404 for a repository that was never written", async () => {
    const res = await api(`/v2/${uniqueRepo("never")}/blobs/${await sha256("x")}`);
    await expectError(res, 404, ["BLOB_UNKNOWN", "NAME_UNKNOWN"]);
  });
});

describe("the access boundary: a blob is readable only through repositories it is linked to", () => {
  it("404 BLOB_UNKNOWN on GET and HEAD although another repository has the blob", async () => {
    const { repo, digest } = await pushed();
    const other = uniqueRepo("blob");
    await pushBlob(other, randomBytes(10));
    await expectError(await api(`/v2/${other}/blobs/${digest}`), 404, "BLOB_UNKNOWN");
    await expectHeadError(await api(`/v2/${other}/blobs/${digest}`, { method: "HEAD" }), 404);
    await expectError(
      await api(`/v2/${other}/blobs/${digest}`, { method: "DELETE" }),
      404,
      "BLOB_UNKNOWN",
    );
    // ... and the owner still has it.
    expect((await api(`/v2/${repo}/blobs/${digest}`, { method: "HEAD" })).status).toBe(200);
  });
});

describe("Range requests on the signed URL", () => {
  const size = 10_000;

  async function ranged(range: string) {
    const { repo, digest, bytes } = await pushed(size);
    const res = await fetchSigned(await blobRedirect(repo, digest), { headers: { Range: range } });
    return { res, bytes };
  }

  it.each([
    ["bytes=0-99", 0, 99],
    ["bytes=100-", 100, size - 1],
    ["bytes=9999-9999", 9999, 9999],
    ["bytes=-50", size - 50, size - 1],
    ["bytes=-20000", 0, size - 1],
    ["bytes=5000-20000", 5000, size - 1],
  ])("%s → 206 with Content-Range", async (range, start, end) => {
    const { res, bytes } = await ranged(range);
    expect(res.status).toBe(206);
    expect(res.headers.get("Content-Range")).toBe(`bytes ${start}-${end}/${size}`);
    expect(res.headers.get("Content-Length")).toBe(String(end - start + 1));
    expectSameBytes(new Uint8Array(await res.arrayBuffer()), bytes.slice(start, end + 1));
  });

  it.each(["bytes=10000-", "bytes=20000-20001", "bytes=-0"])(
    "%s → 416 with Content-Range bytes */size",
    async (range) => {
      const { res } = await ranged(range);
      expect(res.status).toBe(416);
      expect(res.headers.get("Content-Range")).toBe(`bytes */${size}`);
    },
  );

  it.each(["bytes=-5", "bytes=0-", "bytes=0-0"])(
    "%s on an empty blob: 200 with the empty body or 416, never a 206 or a 5xx",
    async (range) => {
      const repo = uniqueRepo("blob");
      const digest = await pushBlob(repo, new Uint8Array(0));
      const res = await fetchSigned(await blobRedirect(repo, digest), {
        headers: { Range: range },
      });
      expect([200, 416]).toContain(res.status);
      if (res.status === 416) expect(res.headers.get("Content-Range")).toBe("bytes */0");
      else expect((await res.arrayBuffer()).byteLength).toBe(0);
    },
  );

  it("ignores a Range of another unit", async () => {
    const { res, bytes } = await ranged("items=0-5");
    expect(res.status).toBe(200);
    expectSameBytes(new Uint8Array(await res.arrayBuffer()), bytes);
  });

  it("serves a range of a multipart blob across a part boundary", async () => {
    const MiB = 1024 * 1024;
    const repo = uniqueRepo("blob");
    const bytes = randomBytes(9 * MiB);
    const digest = await pushBlob(repo, bytes);
    const start = 8 * MiB - 10;
    const end = 8 * MiB + 9;
    const res = await fetchSigned(await blobRedirect(repo, digest), {
      headers: { Range: `bytes=${start}-${end}` },
    });
    expect(res.status).toBe(206);
    expectSameBytes(new Uint8Array(await res.arrayBuffer()), bytes.slice(start, end + 1));
  });
});

describe("the signed URL is the authorization", () => {
  it("403 for a tampered signature", async () => {
    const { repo, digest } = await pushed();
    const url = new URL(await blobRedirect(repo, digest));
    const sig = url.searchParams.get("sig")!;
    url.searchParams.set("sig", (sig[0] === "A" ? "B" : "A") + sig.slice(1));
    await expectError(await fetchSigned(url.toString()), 403, "DENIED");
  });

  it("403 when any signed part changes: the path, the size, the expiry", async () => {
    const a = await pushed(100);
    const b = await pushed(100);
    const urlA = new URL(await blobRedirect(a.repo, a.digest));
    const urlB = new URL(await blobRedirect(b.repo, b.digest));

    const otherPath = new URL(urlA);
    otherPath.pathname = urlB.pathname;
    await expectError(await fetchSigned(otherPath.toString()), 403, "DENIED");

    const bigger = new URL(urlA);
    bigger.searchParams.set("size", "99999999");
    await expectError(await fetchSigned(bigger.toString()), 403, "DENIED");

    const later = new URL(urlA);
    later.searchParams.set("exp", String(Number(urlA.searchParams.get("exp")) + 3600));
    await expectError(await fetchSigned(later.toString()), 403, "DENIED");

    const unsigned = new URL(urlA);
    unsigned.searchParams.delete("sig");
    await expectError(await fetchSigned(unsigned.toString()), 403, "DENIED");
  });

  it("403 for an expired link, even correctly signed", async () => {
    const { repo, digest } = await pushed();
    const url = new URL(await blobRedirect(repo, digest));
    const params: Record<string, string> = {};
    for (const [name, value] of url.searchParams) {
      if (name !== "exp" && name !== "sig") params[name] = value;
    }
    const expired = Math.floor(Date.now() / 1000) - 1;
    const query = await createUrlSigner(env.URL_SIGNING_SECRET).sign(url.pathname, params, expired);
    const res = await fetchSigned(`${url.origin}${url.pathname}?${query}`);
    await expectError(res, 403, "DENIED");
  });

  it("403 for a link signed with another secret", async () => {
    const { repo, digest } = await pushed();
    const url = new URL(await blobRedirect(repo, digest));
    const params = { digest, size: url.searchParams.get("size")! };
    const query = await createUrlSigner("another-secret-of-thirty-two-characters!").sign(
      url.pathname,
      params,
      Math.floor(Date.now() / 1000) + 300,
    );
    await expectError(await fetchSigned(`${url.origin}${url.pathname}?${query}`), 403, "DENIED");
  });

  it("a correctly re-signed, unexpired link works (the test signer matches the Worker's)", async () => {
    const { repo, digest, bytes } = await pushed(321);
    const url = new URL(await blobRedirect(repo, digest));
    const params = { digest, size: url.searchParams.get("size")! };
    const query = await createUrlSigner(env.URL_SIGNING_SECRET).sign(
      url.pathname,
      params,
      Math.floor(Date.now() / 1000) + 60,
    );
    const res = await fetchSigned(`${url.origin}${url.pathname}?${query}`);
    expect(res.status).toBe(200);
    expectSameBytes(new Uint8Array(await res.arrayBuffer()), bytes);
  });
});

describe("DELETE /v2/<name>/blobs/<digest> (end-10)", () => {
  it("202, then 404 BLOB_UNKNOWN on HEAD, GET and a second DELETE", async () => {
    const { repo, digest } = await pushed();
    const res = await api(`/v2/${repo}/blobs/${digest}`, { method: "DELETE" });
    expect(res.status).toBe(202);
    await expectHeadError(await api(`/v2/${repo}/blobs/${digest}`, { method: "HEAD" }), 404);
    await expectError(await api(`/v2/${repo}/blobs/${digest}`), 404, "BLOB_UNKNOWN");
    await expectError(
      await api(`/v2/${repo}/blobs/${digest}`, { method: "DELETE" }),
      404,
      "BLOB_UNKNOWN",
    );
  });

  it("only unlinks it from that repository", async () => {
    const { repo, digest, bytes } = await pushed();
    const other = uniqueRepo("blob");
    await pushBlob(other, bytes);
    expect((await api(`/v2/${repo}/blobs/${digest}`, { method: "DELETE" })).status).toBe(202);
    expectSameBytes(await pullBlob(other, digest), bytes);
  });
});

describe("digests in the URL", () => {
  it.each([
    "sha256:abc",
    `sha256:${"A".repeat(64)}`,
    `sha256:${"a".repeat(63)}`,
    `sha512:${"a".repeat(64)}`,
    "sha256",
    "nocolon",
  ])("%s → 400 DIGEST_INVALID on GET, HEAD and DELETE", async (digest) => {
    const { repo } = await pushed();
    await expectError(await api(`/v2/${repo}/blobs/${digest}`), 400, "DIGEST_INVALID");
    await expectHeadError(await api(`/v2/${repo}/blobs/${digest}`, { method: "HEAD" }), 400);
    await expectError(
      await api(`/v2/${repo}/blobs/${digest}`, { method: "DELETE" }),
      400,
      "DIGEST_INVALID",
    );
  });

  it("an unsupported algorithm is a 400", async () => {
    const { repo } = await pushed();
    for (const digest of [`md5:${"a".repeat(32)}`, `sha384:${"a".repeat(96)}`]) {
      await expectError(await api(`/v2/${repo}/blobs/${digest}`), 400, [
        "DIGEST_INVALID",
        "UNSUPPORTED",
      ]);
    }
  });

  it("an invalid repository name is 400 NAME_INVALID", async () => {
    const digest = await sha256("x");
    for (const name of ["UPPER", "a..b", "trailing/", "-lead", "a/-b"]) {
      await expectError(await api(`/v2/${name}/blobs/${digest}`), 400, "NAME_INVALID");
    }
  });
});
