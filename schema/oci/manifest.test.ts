import { describe, expect, it } from "vitest";
import { parseManifest } from "./manifest.ts";
import { MediaType } from "./media-types.ts";

const d = (c: string) => `sha256:${c.repeat(64)}`;
const enc = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const image = {
  schemaVersion: 2,
  mediaType: MediaType.ociManifest,
  config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: d("a"), size: 10 },
  layers: [
    { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: d("b"), size: 20 },
    { mediaType: MediaType.dockerForeignLayer, digest: d("c"), size: 30, urls: ["https://x"] },
  ],
};

describe("parseManifest", () => {
  it("extracts config and layers, skipping foreign layers", () => {
    const result = parseManifest(enc(image), MediaType.ociManifest);
    expect(result.ok && result.manifest.blobs.map((b) => b.digest)).toEqual([d("a"), d("b")]);
    expect(result.ok && result.manifest.artifactType).toBe(
      "application/vnd.oci.image.config.v1+json",
    );
  });

  it("reads index children, subject, artifactType and annotations", () => {
    const index = {
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      artifactType: "application/x-sbom",
      manifests: [{ mediaType: MediaType.ociManifest, digest: d("e"), size: 5 }],
      subject: { mediaType: MediaType.ociManifest, digest: d("f"), size: 6 },
      annotations: { "org.example": "yes" },
    };
    const result = parseManifest(enc(index), null);
    expect(result).toMatchObject({
      ok: true,
      manifest: {
        mediaType: MediaType.ociIndex,
        children: [{ digest: d("e") }],
        subject: { digest: d("f") },
        artifactType: "application/x-sbom",
        annotations: { "org.example": "yes" },
      },
    });
  });

  it("accepts Docker schema2 manifests and manifest lists by Content-Type", () => {
    const docker = { ...image, mediaType: MediaType.dockerManifest };
    expect(parseManifest(enc(docker), MediaType.dockerManifest).ok).toBe(true);
    const list = { schemaVersion: 2, mediaType: MediaType.dockerManifestList, manifests: [] };
    expect(parseManifest(enc(list), MediaType.dockerManifestList).ok).toBe(true);
  });

  it.each([
    ["not JSON", new TextEncoder().encode("{"), MediaType.ociManifest],
    ["an array", enc([]), MediaType.ociManifest],
    ["schemaVersion 1", enc({ ...image, schemaVersion: 1 }), MediaType.ociManifest],
    ["Content-Type/mediaType mismatch", enc(image), MediaType.dockerManifest],
    ["unknown media type", enc({ ...image, mediaType: "text/plain" }), "text/plain"],
    ["bad digest", enc({ ...image, config: { ...image.config, digest: "sha256:xyz" } }), null],
    ["negative size", enc({ ...image, config: { ...image.config, size: -1 } }), null],
    ["layers missing", enc({ ...image, layers: undefined }), null],
    ["annotations not strings", enc({ ...image, annotations: { a: 1 } }), null],
    [
      "artifactType on a Docker manifest",
      enc({ ...image, mediaType: MediaType.dockerManifest, artifactType: "x" }),
      null,
    ],
  ])("refuses %s as MANIFEST_INVALID", (_name, body, contentType) => {
    expect(parseManifest(body, contentType)).toMatchObject({ ok: false, code: "MANIFEST_INVALID" });
  });
});
