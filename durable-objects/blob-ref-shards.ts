// How blob digests map to BlobRefObject shards. Pure, so Node-side tools can address shards too.

/** 256 shards per algorithm, named by the first two hex characters of the digest. */
export function blobRefShardName(digest: string): string {
  const colon = digest.indexOf(":");
  return `${digest.slice(0, colon)}:${digest.slice(colon + 1, colon + 3)}`;
}
