// Builds the domain services from the bindings, once per request; routes only see these.
import type { Env } from "../env.ts";
import { createUrlSigner } from "../lib/url-signing.ts";
import { catalogStore } from "../storage/catalog-store.ts";
import { objectDirectory } from "../storage/repository-stubs.ts";
import { BlobContentService } from "./blob-content-service.ts";
import { BlobService } from "./blob-service.ts";
import { blobUrls } from "./blob-urls.ts";
import { ManifestService } from "./manifest-service.ts";
import { QuotaService } from "./quota-service.ts";
import type { RequestContext } from "./request-context.ts";
import { UploadService } from "./upload-service.ts";

export interface RegistryServices {
  blobContent: BlobContentService;
  blobs: BlobService;
  uploads: UploadService;
  manifests: ManifestService;
  catalog: ReturnType<typeof catalogStore>;
  objects: ReturnType<typeof objectDirectory>;
}

export function registryServices(env: Env, ctx: RequestContext): RegistryServices {
  const objects = objectDirectory(env);
  const catalog = catalogStore(env.DB, ctx.principal);
  const urls = blobUrls({
    mode: env.BLOB_REDIRECT_MODE || "local",
    ttlSeconds: Number(env.BLOB_URL_TTL_SECONDS || 300),
    signingSecret: env.URL_SIGNING_SECRET,
    r2: {
      accountId: env.R2_ACCOUNT_ID,
      accessKeyId: env.R2_ACCESS_KEY_ID,
      secretAccessKey: env.R2_SECRET_ACCESS_KEY,
      bucket: env.R2_BUCKET_NAME,
    },
  });
  const quota = new QuotaService({ objects, ctx });
  return {
    objects,
    catalog,
    blobs: new BlobService({ objects, urls, ctx }),
    blobContent: new BlobContentService({
      signer: createUrlSigner(env.URL_SIGNING_SECRET),
      bucket: env.BLOBS,
    }),
    uploads: new UploadService({ objects, bucket: env.BLOBS, catalog, ctx, quota }),
    manifests: new ManifestService({ objects, catalog, ctx, quota, bucket: env.BLOBS }),
  };
}
