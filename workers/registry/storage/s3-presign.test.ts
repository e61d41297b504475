// Unit tests for SigV4 presigning: the AWS documentation vector, key encoding, expiry bounds,
// and the R2 URL shape, each signature re-checked the way the server would from the URL alone.
import { describe, expect, it } from "vitest";
import { encodeKey, presignR2GetUrl, presignS3Url, uriEncode } from "./s3-presign.ts";

// From the AWS S3 API reference, "Authenticating Requests: Using Query Parameters".
const AWS_EXAMPLE = {
  accessKeyId: "AKIAIOSFODNN7EXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  region: "us-east-1",
  now: new Date("2013-05-24T00:00:00Z"),
  expiresInSeconds: 86400,
};

const R2 = {
  accountId: "0123456789abcdef0123456789abcdef",
  bucket: "registry-blobs",
  accessKeyId: "r2-access-key-id",
  secretAccessKey: "r2-secret-access-key",
  expiresInSeconds: 300,
  now: new Date("2026-08-01T12:34:56.789Z"),
};

const encoder = new TextEncoder();

function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function hmac(key: Uint8Array | ArrayBuffer, text: string): Promise<ArrayBuffer> {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  return crypto.subtle.sign("HMAC", k, encoder.encode(text));
}

// What the server does with a presigned URL, written separately from the module under test:
// take the path exactly as sent, every query param but the signature (already in wire form),
// sort, and recompute. A match means the URL carries what was signed.
async function serverSideSignature(
  presigned: string,
  secretAccessKey: string,
  method = "GET",
): Promise<{ expected: string; given: string }> {
  const [origin, query = ""] = presigned.split("?");
  const url = new URL(presigned);
  const path = origin!.slice(`${url.protocol}//${url.host}`.length);
  const pairs = query.split("&").map((pair) => pair.split("=") as [string, string]);
  const given = pairs.find(([name]) => name === "X-Amz-Signature")?.[1] ?? "";
  const signed = pairs
    .filter(([name]) => name !== "X-Amz-Signature")
    .sort(([a, av], [b, bv]) => (a === b ? (av < bv ? -1 : 1) : a < b ? -1 : 1))
    .map(([name, value]) => `${name}=${value}`)
    .join("&");
  const amzDate = url.searchParams.get("X-Amz-Date")!;
  const [, date, region, service] = url.searchParams.get("X-Amz-Credential")!.split("/");
  const canonicalRequest = `${method}\n${path}\n${signed}\nhost:${url.host}\n\nhost\nUNSIGNED-PAYLOAD`;
  const stringToSign = `AWS4-HMAC-SHA256\n${amzDate}\n${date}/${region}/${service}/aws4_request\n${hex(
    await crypto.subtle.digest("SHA-256", encoder.encode(canonicalRequest)),
  )}`;
  let key = await hmac(encoder.encode(`AWS4${secretAccessKey}`), date!);
  key = await hmac(key, region!);
  key = await hmac(key, service!);
  key = await hmac(key, "aws4_request");
  return { expected: hex(await hmac(key, stringToSign)), given };
}

describe("presignS3Url", () => {
  it("reproduces the AWS documentation example", async () => {
    const url = await presignS3Url({
      ...AWS_EXAMPLE,
      url: new URL("https://examplebucket.s3.amazonaws.com/test.txt"),
    });
    expect(url).toBe(
      "https://examplebucket.s3.amazonaws.com/test.txt" +
        "?X-Amz-Algorithm=AWS4-HMAC-SHA256" +
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request" +
        "&X-Amz-Date=20130524T000000Z" +
        "&X-Amz-Expires=86400" +
        "&X-Amz-SignedHeaders=host" +
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
    );
  });

  it("agrees with the server-side recomputation on the AWS example", async () => {
    const url = await presignS3Url({
      ...AWS_EXAMPLE,
      url: new URL("https://examplebucket.s3.amazonaws.com/test.txt"),
    });
    const { expected, given } = await serverSideSignature(url, AWS_EXAMPLE.secretAccessKey);
    expect(given).toBe("aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    expect(expected).toBe(given);
  });

  it("signs HEAD differently from GET", async () => {
    const input = { ...AWS_EXAMPLE, url: new URL("https://examplebucket.s3.amazonaws.com/t") };
    const get = await presignS3Url(input);
    const head = await presignS3Url({ ...input, method: "HEAD" });
    expect(head).not.toBe(get);
    const check = await serverSideSignature(head, AWS_EXAMPLE.secretAccessKey, "HEAD");
    expect(check.expected).toBe(check.given);
  });

  it("re-encodes URL paths the SigV4 way (URL leaves ! $ ' ( ) * : @ unencoded)", async () => {
    const url = await presignS3Url({
      ...AWS_EXAMPLE,
      url: new URL("https://examplebucket.s3.amazonaws.com/a!b$c'd(e)f*g:h@i~j/k%2Fl"),
    });
    expect(url.split("?")[0]).toBe(
      "https://examplebucket.s3.amazonaws.com/a%21b%24c%27d%28e%29f%2Ag%3Ah%40i~j/k%2Fl",
    );
    const check = await serverSideSignature(url, AWS_EXAMPLE.secretAccessKey);
    expect(check.expected).toBe(check.given);
  });

  it("signs extra query params and sorts by name, then value", async () => {
    const target = new URL("https://examplebucket.s3.amazonaws.com/test.txt");
    target.searchParams.append("a-b", "2");
    target.searchParams.append("a", "1");
    target.searchParams.append("response-content-type", "application/octet-stream");
    const url = await presignS3Url({ ...AWS_EXAMPLE, url: target });
    const query = url.split("?")[1]!;
    // Uppercase X sorts before lowercase; "a" before "a-b" although "a=" > "a-".
    expect(query).toMatch(
      /X-Amz-SignedHeaders=host&a=1&a-b=2&response-content-type=application%2Foctet-stream&X-Amz-Signature=[0-9a-f]{64}$/,
    );
    const check = await serverSideSignature(url, AWS_EXAMPLE.secretAccessKey);
    expect(check.expected).toBe(check.given);

    const tampered = url.replace("application%2Foctet-stream", "text%2Fhtml");
    const forged = await serverSideSignature(tampered, AWS_EXAMPLE.secretAccessKey);
    expect(forged.expected).not.toBe(forged.given);
  });

  it("keeps a non-default port in the signed host", async () => {
    const url = await presignS3Url({
      ...AWS_EXAMPLE,
      url: new URL("http://localhost:9000/bucket/key"),
    });
    expect(url.startsWith("http://localhost:9000/bucket/key?")).toBe(true);
    const check = await serverSideSignature(url, AWS_EXAMPLE.secretAccessKey);
    expect(check.expected).toBe(check.given);
  });

  it("accepts expiries 1..604800 and refuses anything else", async () => {
    const url = new URL("https://examplebucket.s3.amazonaws.com/test.txt");
    for (const expiresInSeconds of [1, 604_800]) {
      const signed = await presignS3Url({ ...AWS_EXAMPLE, url, expiresInSeconds });
      expect(new URL(signed).searchParams.get("X-Amz-Expires")).toBe(String(expiresInSeconds));
    }
    for (const expiresInSeconds of [0, -1, 604_801, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(presignS3Url({ ...AWS_EXAMPLE, url, expiresInSeconds })).rejects.toThrow(
        RangeError,
      );
    }
  });

  it("refuses an invalid date, missing credentials and URLs already carrying X-Amz params", async () => {
    const url = new URL("https://examplebucket.s3.amazonaws.com/test.txt");
    await expect(presignS3Url({ ...AWS_EXAMPLE, url, now: new Date(Number.NaN) })).rejects.toThrow(
      RangeError,
    );
    await expect(presignS3Url({ ...AWS_EXAMPLE, url, secretAccessKey: "" })).rejects.toThrow();
    const signedAlready = new URL(url);
    signedAlready.searchParams.set("X-Amz-Signature", "00");
    await expect(presignS3Url({ ...AWS_EXAMPLE, url: signedAlready })).rejects.toThrow(
      /already carries/,
    );
  });
});

describe("key encoding", () => {
  it("encodes everything but RFC 3986 unreserved characters", () => {
    expect(uriEncode("AZaz09-._~")).toBe("AZaz09-._~");
    expect(uriEncode("a b+c")).toBe("a%20b%2Bc");
    expect(uriEncode("!'()*")).toBe("%21%27%28%29%2A");
    expect(uriEncode("/?#[]@:$&=,;%")).toBe("%2F%3F%23%5B%5D%40%3A%24%26%3D%2C%3B%25");
    expect(uriEncode("ü€😀")).toBe("%C3%BC%E2%82%AC%F0%9F%98%80");
  });

  it("encodes each path segment and keeps the slashes", () => {
    expect(encodeKey("blobs/sha256/ab/abcdef")).toBe("blobs/sha256/ab/abcdef");
    expect(encodeKey("dir with space/ü+x/a*b")).toBe("dir%20with%20space/%C3%BC%2Bx/a%2Ab");
    expect(encodeKey("a//b/")).toBe("a//b/");
  });
});

describe("presignR2GetUrl", () => {
  it("builds the path-style R2 URL with region auto and service s3", async () => {
    const signed = new URL(await presignR2GetUrl({ ...R2, key: "blobs/sha256/ab/abcdef0123" }));
    expect(signed.origin).toBe(`https://${R2.accountId}.r2.cloudflarestorage.com`);
    expect(signed.pathname).toBe("/registry-blobs/blobs/sha256/ab/abcdef0123");
    expect(signed.searchParams.get("X-Amz-Credential")).toBe(
      "r2-access-key-id/20260801/auto/s3/aws4_request",
    );
    expect(signed.searchParams.get("X-Amz-Date")).toBe("20260801T123456Z");
    expect(signed.searchParams.get("X-Amz-Expires")).toBe("300");
    expect(signed.searchParams.get("X-Amz-SignedHeaders")).toBe("host");
    expect(signed.searchParams.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
    expect(signed.searchParams.has("response-content-type")).toBe(false);
  });

  it("signs response-content-type", async () => {
    const url = await presignR2GetUrl({
      ...R2,
      key: "blobs/x",
      responseContentType: "application/vnd.oci.image.layer.v1.tar+gzip",
    });
    expect(new URL(url).searchParams.get("response-content-type")).toBe(
      "application/vnd.oci.image.layer.v1.tar+gzip",
    );
    expect(url).toContain(
      "response-content-type=application%2Fvnd.oci.image.layer.v1.tar%2Bgzip&X-Amz-Signature=",
    );
    const check = await serverSideSignature(url, R2.secretAccessKey);
    expect(check.expected).toBe(check.given);
  });

  it("encodes keys with spaces, unicode and '+' once, and signs what it sends", async () => {
    const url = await presignR2GetUrl({ ...R2, key: "uploads/a b/ü+€/x(1)*~.tar" });
    expect(url.split("?")[0]).toBe(
      `https://${R2.accountId}.r2.cloudflarestorage.com/registry-blobs/uploads/a%20b/%C3%BC%2B%E2%82%AC/x%281%29%2A~.tar`,
    );
    const check = await serverSideSignature(url, R2.secretAccessKey);
    expect(check.expected).toBe(check.given);
    // A literal "%" in a key is data, not an escape.
    const percent = await presignR2GetUrl({ ...R2, key: "a%20b" });
    expect(percent.split("?")[0]!.endsWith("/registry-blobs/a%2520b")).toBe(true);
  });

  it("is deterministic for the same inputs and changes with the key", async () => {
    const a = await presignR2GetUrl({ ...R2, key: "k1" });
    expect(await presignR2GetUrl({ ...R2, key: "k1" })).toBe(a);
    const b = await presignR2GetUrl({ ...R2, key: "k2" });
    expect(new URL(b).searchParams.get("X-Amz-Signature")).not.toBe(
      new URL(a).searchParams.get("X-Amz-Signature"),
    );
  });

  it("refuses keys, buckets and account ids that would change the URL's meaning", async () => {
    for (const key of ["", ".", "..", "a/../b", "a/./b", "../x"]) {
      await expect(presignR2GetUrl({ ...R2, key })).rejects.toThrow();
    }
    for (const bucket of ["", "A-Bucket", "b/c", "x", "bad_bucket"]) {
      await expect(presignR2GetUrl({ ...R2, bucket, key: "k" })).rejects.toThrow(/bucket/);
    }
    for (const accountId of ["", "evil.example.com/", "abc.def"]) {
      await expect(presignR2GetUrl({ ...R2, accountId, key: "k" })).rejects.toThrow(/account/);
    }
  });

  it("passes the expiry bounds through", async () => {
    await expect(presignR2GetUrl({ ...R2, key: "k", expiresInSeconds: 0 })).rejects.toThrow(
      RangeError,
    );
    await expect(presignR2GetUrl({ ...R2, key: "k", expiresInSeconds: 604_801 })).rejects.toThrow(
      RangeError,
    );
  });
});
