// AWS Signature Version 4 query-string presigning (GET / HEAD) with WebCrypto, so blob GETs can
// be redirected to R2's S3-compatible endpoint instead of streaming through the Worker.
//
// Follows "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)":
//   canonical request = METHOD LF canonical URI LF canonical query LF "host:<host>" LF LF
//                       "host" LF "UNSIGNED-PAYLOAD"
//   string to sign    = "AWS4-HMAC-SHA256" LF <amz date> LF <scope> LF hex(SHA256(canonical request))
//   signing key       = HMAC chain over "AWS4" + secret: date, region, "s3", "aws4_request"

import { toHex } from "../lib/digest.ts";

export interface PresignInput {
  method?: "GET" | "HEAD";
  /** The object URL; any query params it carries (e.g. response-content-type) are signed too. */
  url: URL;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** 1..604800 (seven days), the range SigV4 presigned URLs accept. */
  expiresInSeconds: number;
  now: Date;
}

export interface R2PresignInput {
  accountId: string;
  bucket: string;
  key: string;
  accessKeyId: string;
  secretAccessKey: string;
  expiresInSeconds: number;
  now: Date;
  /** Sets the response's Content-Type (signed, so the client cannot change it). */
  responseContentType?: string;
}

export const MAX_PRESIGN_SECONDS = 604_800;

const SERVICE = "s3";
const ALGORITHM = "AWS4-HMAC-SHA256";
const encoder = new TextEncoder();

export async function presignS3Url(input: PresignInput): Promise<string> {
  const { url, region, accessKeyId, secretAccessKey, expiresInSeconds, now } = input;
  const method = input.method ?? "GET";
  if (
    !Number.isInteger(expiresInSeconds) ||
    expiresInSeconds < 1 ||
    expiresInSeconds > MAX_PRESIGN_SECONDS
  ) {
    throw new RangeError(`expiresInSeconds must be an integer in 1..${MAX_PRESIGN_SECONDS}`);
  }
  if (Number.isNaN(now.getTime())) throw new RangeError("now is not a valid date");
  if (!region || !accessKeyId || !secretAccessKey) {
    throw new Error("presigning needs a region, an access key id and a secret access key");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new Error(`cannot presign a ${url.protocol} URL`);
  }

  const amzDate = now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, ""); // 20130524T000000Z
  const date = amzDate.slice(0, 8);
  const scope = `${date}/${region}/${SERVICE}/aws4_request`;

  const params: [string, string][] = [];
  for (const [name, value] of url.searchParams) {
    // Ours would be signed twice, or a stale signature carried along.
    if (name.toLowerCase().startsWith("x-amz-")) {
      throw new Error(`URL to presign already carries ${name}`);
    }
    params.push([name, value]);
  }
  params.push(
    ["X-Amz-Algorithm", ALGORITHM],
    ["X-Amz-Credential", `${accessKeyId}/${scope}`],
    ["X-Amz-Date", amzDate],
    ["X-Amz-Expires", String(expiresInSeconds)],
    ["X-Amz-SignedHeaders", "host"],
  );
  // Sorted by encoded name, then encoded value (byte order; the encoded form is ASCII).
  // Not the joined "name=value" strings: "=" sorts after "-", so "a=" would follow "a-b=".
  const encoded = params.map(([name, value]) => [uriEncode(name), uriEncode(value)] as const);
  encoded.sort(([an, av], [bn, bv]) => byCodeUnit(an, bn) || byCodeUnit(av, bv));
  const canonicalQuery = encoded.map(([name, value]) => `${name}=${value}`).join("&");

  const canonicalUri = canonicalPath(url.pathname);
  // url.host is lowercase and keeps a non-default port, as the Host header will.
  const canonicalRequest = [
    method,
    canonicalUri,
    canonicalQuery,
    `host:${url.host}\n`,
    "host",
    "UNSIGNED-PAYLOAD",
  ].join("\n");
  const stringToSign = [
    ALGORITHM,
    amzDate,
    scope,
    toHex(new Uint8Array(await sha256(canonicalRequest))),
  ].join("\n");

  let key = await hmac(encoder.encode(`AWS4${secretAccessKey}`), date);
  for (const part of [region, SERVICE, "aws4_request"]) key = await hmac(key, part);
  const signature = toHex(await hmac(key, stringToSign));

  return `${url.protocol}//${url.host}${canonicalUri}?${canonicalQuery}&X-Amz-Signature=${signature}`;
}

/** Presigns `https://<accountId>.r2.cloudflarestorage.com/<bucket>/<key>` (path style, region auto). */
export async function presignR2GetUrl(input: R2PresignInput): Promise<string> {
  const { accountId, bucket, key } = input;
  // Both end up in the host or first path segment; keep them to the characters R2 allows.
  if (!/^[a-z0-9]+$/i.test(accountId)) throw new Error("invalid R2 account id");
  if (!/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(bucket)) throw new Error("invalid R2 bucket name");
  if (key === "") throw new Error("empty object key");
  // A URL resolves "." and ".." segments (even percent-encoded ones), which would sign and fetch
  // a different object than the one named.
  if (key.split("/").some((segment) => segment === "." || segment === "..")) {
    throw new Error(`object key ${JSON.stringify(key)} has a "." or ".." segment`);
  }
  const url = new URL(`https://${accountId}.r2.cloudflarestorage.com/${bucket}/${encodeKey(key)}`);
  if (input.responseContentType !== undefined) {
    url.searchParams.set("response-content-type", input.responseContentType);
  }
  return presignS3Url({
    method: "GET",
    url,
    region: "auto",
    accessKeyId: input.accessKeyId,
    secretAccessKey: input.secretAccessKey,
    expiresInSeconds: input.expiresInSeconds,
    now: input.now,
  });
}

/** SigV4 URI encoding: every byte but the RFC 3986 unreserved A-Z a-z 0-9 - . _ ~ as %XX. */
export function uriEncode(text: string): string {
  // encodeURIComponent also leaves ! ' ( ) * alone; SigV4 wants them encoded.
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** An object key as a URL path: each segment encoded, "/" kept. */
export function encodeKey(key: string): string {
  return key.split("/").map(uriEncode).join("/");
}

// S3 signs the path encoded once and not normalized. URL.pathname percent-encodes a different
// set of characters than SigV4, so decode each segment and re-encode it the SigV4 way.
function canonicalPath(pathname: string): string {
  if (pathname === "") return "/";
  return pathname
    .split("/")
    .map((segment) => uriEncode(decodeURIComponent(segment)))
    .join("/");
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function sha256(text: string): Promise<ArrayBuffer> {
  return crypto.subtle.digest("SHA-256", encoder.encode(text));
}

async function hmac(key: Uint8Array, text: string): Promise<Uint8Array> {
  const cryptoKey = await crypto.subtle.importKey(
    "raw",
    key,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", cryptoKey, encoder.encode(text)));
}
