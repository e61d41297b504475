// Media types the registry understands (image-spec and Docker image manifest v2 schema 2).

export const MediaType = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociEmpty: "application/vnd.oci.empty.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerForeignLayer: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  ociForeignLayers: [
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  ],
} as const;

export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  MediaType.ociManifest,
  MediaType.ociIndex,
  MediaType.dockerManifest,
  MediaType.dockerManifestList,
];

export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList;
}

/** Layers that live outside the registry (their `urls` point elsewhere) need not be pushed. */
export function isForeignLayer(mediaType: string): boolean {
  return (
    mediaType === MediaType.dockerForeignLayer ||
    (MediaType.ociForeignLayers as readonly string[]).includes(mediaType)
  );
}

/** The largest manifest body accepted (distribution's limit; the spec allows refusing larger). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
