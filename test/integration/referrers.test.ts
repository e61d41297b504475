// Referrers: end-12a (GET /v2/<name>/referrers/<digest>), end-12b (?artifactType=), and the
// `OCI-Subject` answer to a manifest PUT with a subject (distribution-spec v1.1).
import { describe, expect, it } from "vitest";
import {
  api,
  EMPTY_JSON,
  EMPTY_JSON_DIGEST,
  expectError,
  MediaTypes,
  pushBlob,
  pushImage,
  putManifest,
  sha256,
  uniqueRepo,
} from "./helpers.ts";

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

interface Index {
  schemaVersion: number;
  mediaType: string;
  manifests: Descriptor[];
}

const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const SBOM = "application/vnd.example.sbom.v1";
const SIGNATURE = "application/vnd.example.signature.v1";

async function referrers(repo: string, digest: string, query = "") {
  const res = await api(`/v2/${repo}/referrers/${digest}${query}`);
  expect(res.status).toBe(200);
  expect(res.headers.get("Content-Type")).toBe(MediaTypes.ociIndex);
  const index = (await res.json()) as Index;
  expect(index.schemaVersion).toBe(2);
  expect(index.mediaType).toBe(MediaTypes.ociIndex);
  expect(Array.isArray(index.manifests)).toBe(true);
  return { res, index };
}

const byDigest = (a: Descriptor, b: Descriptor) => (a.digest < b.digest ? -1 : 1);

/** An artifact manifest (empty config) pointing at `subject`. */
async function pushArtifact(
  repo: string,
  subject: Descriptor,
  artifactType: string,
  annotations?: Record<string, string>,
) {
  await pushBlob(repo, EMPTY_JSON);
  const empty = { mediaType: MediaTypes.ociEmpty, digest: EMPTY_JSON_DIGEST, size: 2 };
  const body = encode({
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    artifactType,
    config: empty,
    layers: [empty],
    subject,
    ...(annotations ? { annotations } : {}),
  });
  const digest = await sha256(body);
  const res = await putManifest(repo, digest, body);
  return { res, body, digest };
}

async function subjectIn(repo: string): Promise<Descriptor> {
  const image = await pushImage(repo, { tag: "v1" });
  return { mediaType: MediaTypes.ociManifest, digest: image.digest, size: image.manifest.length };
}

describe("PUT of a manifest with a subject", () => {
  it("answers OCI-Subject with the subject's digest", async () => {
    const repo = uniqueRepo("ref");
    const subject = await subjectIn(repo);
    const { res } = await pushArtifact(repo, subject, SBOM);
    expect(res.status).toBe(201);
    expect(res.headers.get("OCI-Subject")).toBe(subject.digest);
  });

  it("accepts a subject that does not exist (yet), and lists the referrer once it does", async () => {
    const repo = uniqueRepo("ref");
    const future = { mediaType: MediaTypes.ociManifest, digest: await sha256("later"), size: 5 };
    const { res, digest } = await pushArtifact(repo, future, SBOM);
    expect(res.status).toBe(201);
    expect(res.headers.get("OCI-Subject")).toBe(future.digest);
    const { index } = await referrers(repo, future.digest);
    expect(index.manifests.map((m) => m.digest)).toEqual([digest]);
  });

  it("an index with a subject is a referrer too", async () => {
    const repo = uniqueRepo("ref");
    const subject = await subjectIn(repo);
    const child = await pushImage(repo);
    const body = encode({
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: [
        { mediaType: MediaTypes.ociManifest, digest: child.digest, size: child.manifest.length },
      ],
      subject,
      annotations: { "org.example.kind": "bundle" },
    });
    const res = await putManifest(repo, await sha256(body), body, MediaTypes.ociIndex);
    expect(res.status).toBe(201);
    expect(res.headers.get("OCI-Subject")).toBe(subject.digest);
  });
});

describe("GET /v2/<name>/referrers/<digest> (end-12a)", () => {
  it("lists descriptors with mediaType, size, digest, artifactType and annotations", async () => {
    const repo = uniqueRepo("ref");
    const subject = await subjectIn(repo);
    const sbom = await pushArtifact(repo, subject, SBOM, {
      "org.opencontainers.image.created": "2024-01-01T00:00:00Z",
      "org.example.sbom.format": "json",
    });
    const signature = await pushArtifact(repo, subject, SIGNATURE);
    // An image manifest without artifactType: the referrer reports its config's media type.
    const image = await pushImage(repo, { subject, annotations: { "org.example.note": "plain" } });

    const { res, index } = await referrers(repo, subject.digest);
    expect(res.headers.get("OCI-Filters-Applied")).toBeNull();
    const expected: Descriptor[] = [
      {
        mediaType: MediaTypes.ociManifest,
        digest: sbom.digest,
        size: sbom.body.length,
        artifactType: SBOM,
        annotations: {
          "org.opencontainers.image.created": "2024-01-01T00:00:00Z",
          "org.example.sbom.format": "json",
        },
      },
      {
        mediaType: MediaTypes.ociManifest,
        digest: signature.digest,
        size: signature.body.length,
        artifactType: SIGNATURE,
      },
      {
        mediaType: MediaTypes.ociManifest,
        digest: image.digest,
        size: image.manifest.length,
        artifactType: MediaTypes.ociConfig,
        annotations: { "org.example.note": "plain" },
      },
    ];
    expect([...index.manifests].sort(byDigest)).toEqual(expected.sort(byDigest));
  });

  it("an index referrer without artifactType has none in its descriptor", async () => {
    const repo = uniqueRepo("ref");
    const subject = await subjectIn(repo);
    const child = await pushImage(repo);
    const body = encode({
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: [
        { mediaType: MediaTypes.ociManifest, digest: child.digest, size: child.manifest.length },
      ],
      subject,
    });
    expect((await putManifest(repo, await sha256(body), body, MediaTypes.ociIndex)).status).toBe(
      201,
    );
    const { index } = await referrers(repo, subject.digest);
    expect(index.manifests).toEqual([
      { mediaType: MediaTypes.ociIndex, digest: await sha256(body), size: body.length },
    ]);
  });

  it("an index referrer with an artifactType reports it", async () => {
    const repo = uniqueRepo("ref");
    const subject = await subjectIn(repo);
    const child = await pushImage(repo);
    const body = encode({
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      artifactType: "application/vnd.example.bundle.v1",
      manifests: [
        { mediaType: MediaTypes.ociManifest, digest: child.digest, size: child.manifest.length },
      ],
      subject,
    });
    expect((await putManifest(repo, await sha256(body), body, MediaTypes.ociIndex)).status).toBe(
      201,
    );
    const { index } = await referrers(repo, subject.digest);
    expect(index.manifests).toEqual([
      {
        mediaType: MediaTypes.ociIndex,
        digest: await sha256(body),
        size: body.length,
        artifactType: "application/vnd.example.bundle.v1",
      },
    ]);
  });

  // distribution-spec §"Listing Referrers": "If the pushed image manifest has no artifactType or
  // it is empty, the descriptor's artifactType MUST be set to the config descriptor's mediaType".
  // (Refusing the empty artifactType as MANIFEST_INVALID would be sound too.)
  it("an image manifest with an empty artifactType is reported with its config's media type", async () => {
    const repo = uniqueRepo("ref");
    const subject = await subjectIn(repo);
    const configBytes = encode({ kind: "signature" });
    const config = {
      mediaType: "application/vnd.example.signature.config.v1+json",
      digest: await pushBlob(repo, configBytes),
      size: configBytes.length,
    };
    const body = encode({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      artifactType: "",
      config,
      layers: [],
      subject,
    });
    const res = await putManifest(repo, await sha256(body), body);
    if (res.status !== 201) {
      await expectError(res, 400, "MANIFEST_INVALID");
      return;
    }
    const { index } = await referrers(repo, subject.digest);
    expect(index.manifests).toHaveLength(1);
    expect(index.manifests[0]!.artifactType).toBe(config.mediaType);
  });

  it("no referrers: 200 with an empty index", async () => {
    const repo = uniqueRepo("ref");
    const subject = await subjectIn(repo);
    const { index } = await referrers(repo, subject.digest);
    expect(index.manifests).toEqual([]);
  });

  it("a digest nothing refers to in a repository that does not exist: 200 empty, or 404", async () => {
    const res = await api(`/v2/${uniqueRepo("never")}/referrers/${await sha256("x")}`);
    if (res.status === 200) {
      expect(((await res.json()) as Index).manifests).toEqual([]);
    } else {
      await expectError(res, 404, "NAME_UNKNOWN");
    }
  });

  it("only lists referrers of that repository", async () => {
    const repo = uniqueRepo("ref");
    const other = uniqueRepo("ref");
    const subject = await subjectIn(repo);
    await pushArtifact(other, subject, SBOM);
    expect((await referrers(repo, subject.digest)).index.manifests).toEqual([]);
    expect((await referrers(other, subject.digest)).index.manifests).toHaveLength(1);
  });

  it("lists a referrer once, however often and by whatever reference it was pushed", async () => {
    const repo = uniqueRepo("ref");
    const subject = await subjectIn(repo);
    const sbom = await pushArtifact(repo, subject, SBOM);
    expect((await putManifest(repo, "sbom", sbom.body)).status).toBe(201);
    expect((await putManifest(repo, sbom.digest, sbom.body)).status).toBe(201);
    const { index } = await referrers(repo, subject.digest);
    expect(index.manifests.map((m) => m.digest)).toEqual([sbom.digest]);
  });

  it("a deleted referrer is no longer listed", async () => {
    const repo = uniqueRepo("ref");
    const subject = await subjectIn(repo);
    const kept = await pushArtifact(repo, subject, SBOM);
    const gone = await pushArtifact(repo, subject, SIGNATURE);
    expect((await api(`/v2/${repo}/manifests/${gone.digest}`, { method: "DELETE" })).status).toBe(
      202,
    );
    const { index } = await referrers(repo, subject.digest);
    expect(index.manifests.map((m) => m.digest)).toEqual([kept.digest]);
  });

  it("an invalid digest: 400 DIGEST_INVALID", async () => {
    const repo = uniqueRepo("ref");
    await subjectIn(repo);
    for (const digest of ["sha256:abc", "latest", `sha256:${"Z".repeat(64)}`]) {
      const res = await api(`/v2/${repo}/referrers/${digest}`);
      await expectError(res, 400, "DIGEST_INVALID");
    }
  });

  it("an invalid name: 400 NAME_INVALID", async () => {
    await expectError(
      await api(`/v2/Bad/Name/referrers/${await sha256("x")}`),
      400,
      "NAME_INVALID",
    );
  });
});

describe("GET /v2/<name>/referrers/<digest>?artifactType= (end-12b)", () => {
  it("filters by artifactType and says so with OCI-Filters-Applied", async () => {
    const repo = uniqueRepo("ref");
    const subject = await subjectIn(repo);
    const sbom = await pushArtifact(repo, subject, SBOM);
    await pushArtifact(repo, subject, SIGNATURE);
    const { res, index } = await referrers(
      repo,
      subject.digest,
      `?artifactType=${encodeURIComponent(SBOM)}`,
    );
    expect(res.headers.get("OCI-Filters-Applied")).toBe("artifactType");
    expect(index.manifests.map((m) => m.digest)).toEqual([sbom.digest]);
    expect(index.manifests[0]!.artifactType).toBe(SBOM);
  });

  it("filters on the config media type of an image manifest without artifactType", async () => {
    const repo = uniqueRepo("ref");
    const subject = await subjectIn(repo);
    const image = await pushImage(repo, { subject });
    await pushArtifact(repo, subject, SBOM);
    const { index } = await referrers(
      repo,
      subject.digest,
      `?artifactType=${encodeURIComponent(MediaTypes.ociConfig)}`,
    );
    expect(index.manifests.map((m) => m.digest)).toEqual([image.digest]);
  });

  it("a filter that matches nothing: 200, empty, OCI-Filters-Applied", async () => {
    const repo = uniqueRepo("ref");
    const subject = await subjectIn(repo);
    await pushArtifact(repo, subject, SBOM);
    const { res, index } = await referrers(
      repo,
      subject.digest,
      "?artifactType=application/vnd.example.none",
    );
    expect(res.headers.get("OCI-Filters-Applied")).toBe("artifactType");
    expect(index.manifests).toEqual([]);
  });
});
