// The local stand-in for presigned R2 URLs: checks a signed blob link and opens the bytes.
import { RegistryError } from "../../../schema/oci/errors.ts";
import { type ByteRange, parseByteRange } from "../http/byte-range.ts";
import type { UrlSigner } from "../lib/url-signing.ts";
import { openBlob } from "../storage/blob-reader.ts";
import { LOCAL_BLOB_ROUTE } from "./blob-urls.ts";

export interface SignedBlob {
  key: string;
  digest: string;
  size: number;
  /** The requested byte range; "unsatisfiable" answers 416. */
  range: ByteRange | null | "unsatisfiable";
}

export class BlobContentService {
  constructor(private readonly deps: { signer: UrlSigner; bucket: R2Bucket }) {}

  /** Verifies the link's signature and expiry; the signature is the whole authorization. */
  async resolve(url: URL, rangeHeader: string | undefined): Promise<SignedBlob> {
    const verdict = await this.deps.signer.verify(
      url.pathname,
      url.searchParams,
      Math.floor(Date.now() / 1000),
    );
    if (!verdict.ok) {
      throw new RegistryError("DENIED", `blob link ${verdict.reason}`, { status: 403 });
    }
    const size = Number(verdict.params.size);
    return {
      key: decodeURIComponent(url.pathname.slice(LOCAL_BLOB_ROUTE.length)),
      digest: verdict.params.digest ?? "",
      size,
      range: parseByteRange(rangeHeader, size),
    };
  }

  async open(blob: SignedBlob): Promise<ReadableStream> {
    const range = blob.range === "unsatisfiable" ? null : blob.range;
    const body = await openBlob(this.deps.bucket, blob.key, range);
    if (!body) throw new RegistryError("BLOB_UNKNOWN");
    return body;
  }
}
