import { describe, expect, it } from "vitest";
import type { Digest } from "../../../schema/oci/reference.ts";
import { createUrlSigner } from "../lib/url-signing.ts";
import { blobUrls, LOCAL_BLOB_ROUTE } from "./blob-urls.ts";

const link = { digest: `sha256:${"0".repeat(64)}` as Digest, size: 42, key: "blobs/abc" };
const secret = "s".repeat(40);
const now = () => Date.UTC(2026, 10, 25, 12, 0, 0);

describe("blob redirect URLs", () => {
  it("local mode signs an expiring link to the Worker's own blob route", async () => {
    const urls = blobUrls({ mode: "local", ttlSeconds: 300, signingSecret: secret }, now);
    const url = new URL(await urls.urlFor(link, "http://127.0.0.1:8787"));
    expect(url.origin).toBe("http://127.0.0.1:8787");
    expect(url.pathname).toBe(`${LOCAL_BLOB_ROUTE}blobs/abc`);
    expect(url.searchParams.get("digest")).toBe(link.digest);
    expect(url.searchParams.get("exp")).toBe(String(now() / 1000 + 300));
    const verdict = await createUrlSigner(secret).verify(
      url.pathname,
      url.searchParams,
      now() / 1000,
    );
    expect(verdict.ok).toBe(true);
    const late = await createUrlSigner(secret).verify(
      url.pathname,
      url.searchParams,
      now() / 1000 + 301,
    );
    expect(late).toEqual({ ok: false, reason: "expired" });
  });

  it("s3 mode presigns a GET on R2's S3 endpoint for the object key", async () => {
    const urls = blobUrls(
      {
        mode: "s3",
        ttlSeconds: 600,
        signingSecret: secret,
        r2: {
          accountId: "acct123",
          accessKeyId: "AKID",
          secretAccessKey: "SECRET",
          bucket: "registry-blobs",
        },
      },
      now,
    );
    const url = new URL(await urls.urlFor(link, "http://ignored"));
    expect(url.host).toBe("acct123.r2.cloudflarestorage.com");
    expect(url.pathname).toBe("/registry-blobs/blobs/abc");
    expect(url.searchParams.get("X-Amz-Expires")).toBe("600");
    expect(url.searchParams.get("X-Amz-Credential")).toBe("AKID/20261125/auto/s3/aws4_request");
    expect(url.searchParams.get("response-content-type")).toBe("application/octet-stream");
    expect(url.searchParams.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
  });

  it("s3 mode refuses to start without credentials, and unknown modes are refused", () => {
    expect(() =>
      blobUrls({ mode: "s3", ttlSeconds: 1, signingSecret: secret, r2: { bucket: "b" } }),
    ).toThrow(/R2_ACCOUNT_ID/);
    expect(() => blobUrls({ mode: "ftp", ttlSeconds: 1, signingSecret: secret })).toThrow(
      /unknown/,
    );
  });
});
