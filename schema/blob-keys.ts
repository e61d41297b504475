// The one module that owns the R2 key layout. Everything that names an R2 object asks here.
//
//   blobs/<write-id>            one blob's bytes, written exactly once by the upload that
//                               produced them (single put, or a multipart upload whose parts
//                               stream in while the digest is computed). The digest is not in
//                               the key because a streamed upload's digest is only known after
//                               the key was chosen and R2 cannot rename; BlobRefObject maps
//                               digest → {region, key} and is the only way to find a blob.
//
//   build-logs/<build-id>.jsonl a finished build's log, one JSON line per log line
//                               ({seq, at, stream, text}), archived once by its BuildObject.
//
//   build-sources/<build-id>    the upload of a manual build (a Dockerfile, or a tar or tar.gz
//                               context), written once by the API before the build is queued;
//                               fleet hosts fetch it through the fleet API, never from R2.
//
// Manifests are not in R2: their bytes live in the RepositoryObject that owns them, so that a
// pull by tag is answered by one Durable Object call (see ARCHITECTURE notes in the README).

/** R2 multipart parts must all be the same size but the last, and at least 5 MiB. 8 MiB parts
 * allow blobs up to 78 GiB within R2's 10,000-part limit. */
export const BLOB_PART_SIZE = 8 * 1024 * 1024;

export function blobObjectKey(writeId: string): string {
  return `blobs/${writeId}`;
}

/** Region of the one bucket bound today; replication to more regions comes later. */
export const PRIMARY_REGION = "primary";

/** The archived log of a finished build (JSON Lines). */
export function buildLogKey(buildId: string): string {
  return `build-logs/${buildId}.jsonl`;
}

/** The uploaded source (Dockerfile or context archive) of a manual build. */
export function buildSourceKey(buildId: string): string {
  return `build-sources/${buildId}`;
}
