// Where a blob GET is redirected: a presigned URL on R2's S3 endpoint in production, or this
// Worker's own signed, expiring route locally (workerd has no S3 endpoint). Chosen by config.
import type { BlobLink } from "../../../schema/rpc.ts";
import { createUrlSigner } from "../lib/url-signing.ts";
import { presignR2GetUrl } from "../storage/s3-presign.ts";

export const LOCAL_BLOB_ROUTE = "/_blobs/";

export interface BlobUrls {
  urlFor(link: BlobLink, origin: string): Promise<string>;
}

export interface BlobUrlConfig {
  mode: string;
  ttlSeconds: number;
  signingSecret: string;
  r2?: { accountId?: string; accessKeyId?: string; secretAccessKey?: string; bucket: string };
}

export function blobUrls(config: BlobUrlConfig, now: () => number = Date.now): BlobUrls {
  if (config.mode === "s3") {
    const { accountId, accessKeyId, secretAccessKey, bucket } = config.r2 ?? { bucket: "" };
    if (!accountId || !accessKeyId || !secretAccessKey) {
      throw new Error(
        "BLOB_REDIRECT_MODE=s3 needs R2_ACCOUNT_ID, R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY",
      );
    }
    return {
      urlFor: (link) =>
        presignR2GetUrl({
          accountId,
          bucket,
          key: link.key,
          accessKeyId,
          secretAccessKey,
          expiresInSeconds: config.ttlSeconds,
          now: new Date(now()),
          responseContentType: "application/octet-stream",
        }),
    };
  }
  if (config.mode !== "local") throw new Error(`unknown BLOB_REDIRECT_MODE ${config.mode}`);
  const signer = createUrlSigner(config.signingSecret);
  return {
    async urlFor(link, origin) {
      const path = LOCAL_BLOB_ROUTE + link.key;
      const expires = Math.floor(now() / 1000) + config.ttlSeconds;
      const query = await signer.sign(
        path,
        { digest: link.digest, size: String(link.size) },
        expires,
      );
      return `${origin}${path}?${query}`;
    },
  };
}
