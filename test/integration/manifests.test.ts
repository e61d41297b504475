// Manifests: end-3 (GET/HEAD), end-7 (PUT), end-9 (DELETE) by tag and by digest, for OCI image
// manifests and indexes, Docker schema2 manifests and manifest lists, and OCI artifacts.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { blobRefShardName } from "../../durable-objects/blob-ref-object.ts";
import type { Digest } from "../../schema/oci/reference.ts";
import {
  api,
  EMPTY_JSON,
  EMPTY_JSON_DIGEST,
  expectError,
  expectHeadError,
  expectSameBytes,
  MediaTypes,
  pathOf,
  pullBlob,
  pushBlob,
  pushImage,
  putManifest,
  randomBytes,
  sha256,
  sha512,
  uniqueRepo,
} from "./helpers.ts";

const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const MiB = 1024 * 1024;

/** Pushes a config and one layer, returns their descriptors (not yet in any manifest). */
async function blobsFor(
  repo: string,
  types: { config: string; layer: string } = {
    config: MediaTypes.ociConfig,
    layer: MediaTypes.ociLayer,
  },
) {
  const configBytes = encode({ architecture: "amd64", os: "linux", nonce: crypto.randomUUID() });
  const layerBytes = randomBytes(512);
  return {
    config: {
      mediaType: types.config,
      digest: await pushBlob(repo, configBytes),
      size: configBytes.byteLength,
    },
    layer: {
      mediaType: types.layer,
      digest: await pushBlob(repo, layerBytes),
      size: layerBytes.byteLength,
    },
  };
}

async function ociManifest(repo: string, extra: Record<string, unknown> = {}) {
  const { config, layer } = await blobsFor(repo);
  const body = encode({
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    config,
    layers: [layer],
    ...extra,
  });
  return { body, digest: await sha256(body), config, layer };
}

async function expectManifest(
  repo: string,
  reference: string,
  body: Uint8Array,
  mediaType: string,
): Promise<void> {
  const digest = await sha256(body);
  const res = await api(`/v2/${repo}/manifests/${reference}`);
  expect(res.status).toBe(200);
  expect(res.headers.get("Content-Type")).toBe(mediaType);
  expect(res.headers.get("Docker-Content-Digest")).toBe(digest);
  expect(res.headers.get("Content-Length")).toBe(String(body.byteLength));
  expectSameBytes(new Uint8Array(await res.arrayBuffer()), body);
}

async function pullConfig(repo: string, digest: string): Promise<Uint8Array> {
  return pullBlob(repo, digest);
}

async function refcount(digest: string): Promise<number> {
  const record = await env.BLOB_REF.getByName(blobRefShardName(digest)).get(digest as Digest);
  return record?.refcount ?? 0;
}

async function expectNoManifest(repo: string, reference: string): Promise<void> {
  await expectError(await api(`/v2/${repo}/manifests/${reference}`), 404, "MANIFEST_UNKNOWN");
}

describe("PUT /v2/<name>/manifests/<reference> (end-7)", () => {
  it("by tag: 201 with Location and Docker-Content-Digest", async () => {
    const repo = uniqueRepo("man");
    const { body, digest } = await ociManifest(repo);
    const res = await putManifest(repo, "v1", body);
    expect(res.status).toBe(201);
    expect(pathOf(res.headers.get("Location"))).toBe(`/v2/${repo}/manifests/${digest}`);
    expect(res.headers.get("Docker-Content-Digest")).toBe(digest);
    expect(res.headers.get("OCI-Subject")).toBeNull();
  });

  it("by digest: 201 with Location and Docker-Content-Digest", async () => {
    const repo = uniqueRepo("man");
    const { body, digest } = await ociManifest(repo);
    const res = await putManifest(repo, digest, body);
    expect(res.status).toBe(201);
    expect(pathOf(res.headers.get("Location"))).toBe(`/v2/${repo}/manifests/${digest}`);
    expect(res.headers.get("Docker-Content-Digest")).toBe(digest);
  });

  it("by a sha512 digest", async () => {
    const repo = uniqueRepo("man");
    const { body } = await ociManifest(repo);
    const digest = await sha512(body);
    const res = await putManifest(repo, digest, body);
    expect(res.status).toBe(201);
    expect(res.headers.get("Docker-Content-Digest")).toBe(digest);
    const get = await api(`/v2/${repo}/manifests/${digest}`);
    expect(get.status).toBe(200);
    expect(get.headers.get("Docker-Content-Digest")).toBe(digest);
    expectSameBytes(new Uint8Array(await get.arrayBuffer()), body);
  });

  it("is idempotent: the same bytes pushed again answer 201 with the same digest", async () => {
    const repo = uniqueRepo("man");
    const { body, digest, layer } = await ociManifest(repo);
    expect((await putManifest(repo, "a", body)).status).toBe(201);
    const again = await putManifest(repo, "a", body);
    expect(again.status).toBe(201);
    expect(again.headers.get("Docker-Content-Digest")).toBe(digest);
    expect(await refcount(layer.digest)).toBe(1);
  });

  it("ignores Content-Type parameters", async () => {
    const repo = uniqueRepo("man");
    const { body, digest } = await ociManifest(repo);
    const res = await putManifest(repo, "v1", body, `${MediaTypes.ociManifest}; charset=utf-8`);
    expect(res.status).toBe(201);
    await expectManifest(repo, digest, body, MediaTypes.ociManifest);
  });
});

describe("GET and HEAD /v2/<name>/manifests/<reference> (end-3)", () => {
  it("return the exact bytes pushed (whitespace, key order) with Content-Type echoed", async () => {
    const repo = uniqueRepo("man");
    const { config, layer } = await blobsFor(repo);
    // Pretty-printed with a custom key order: the registry must not re-serialize.
    const text = `{\n   "schemaVersion" : 2,\n\t"layers": [${JSON.stringify(layer)}],\n  "config": ${JSON.stringify(config, null, 3)},\n  "mediaType": "${MediaTypes.ociManifest}"\n}\n`;
    const body = new TextEncoder().encode(text);
    expect((await putManifest(repo, "pretty", body)).status).toBe(201);
    await expectManifest(repo, "pretty", body, MediaTypes.ociManifest);
    await expectManifest(repo, await sha256(body), body, MediaTypes.ociManifest);
  });

  it("HEAD by tag and by digest: 200, headers, no body", async () => {
    const repo = uniqueRepo("man");
    const { body, digest } = await ociManifest(repo);
    expect((await putManifest(repo, "v1", body)).status).toBe(201);
    for (const reference of ["v1", digest]) {
      const res = await api(`/v2/${repo}/manifests/${reference}`, { method: "HEAD" });
      expect(res.status).toBe(200);
      expect(res.headers.get("Content-Type")).toBe(MediaTypes.ociManifest);
      expect(res.headers.get("Docker-Content-Digest")).toBe(digest);
      expect(res.headers.get("Content-Length")).toBe(String(body.byteLength));
      expect(await res.text()).toBe("");
    }
  });

  it("unknown tag or digest: 404 MANIFEST_UNKNOWN (HEAD: 404 without a body)", async () => {
    const repo = uniqueRepo("man");
    await pushImage(repo, { tag: "present" });
    await expectNoManifest(repo, "absent");
    await expectNoManifest(repo, await sha256("absent"));
    await expectHeadError(await api(`/v2/${repo}/manifests/absent`, { method: "HEAD" }), 404);
  });

  it("a repository that does not exist: 404", async () => {
    const res = await api(`/v2/${uniqueRepo("never")}/manifests/latest`);
    await expectError(res, 404, ["MANIFEST_UNKNOWN", "NAME_UNKNOWN"]);
  });

  it("a manifest is visible only in the repository it was pushed to", async () => {
    const repo = uniqueRepo("man");
    const other = uniqueRepo("man");
    const image = await pushImage(repo, { tag: "v1" });
    await pushImage(other, { tag: "v0" });
    await expectNoManifest(other, image.digest);
    await expectNoManifest(other, "v1");
  });

  it("a manifest larger than 1 MiB comes back byte for byte; exactly 4 MiB is accepted", async () => {
    const repo = uniqueRepo("man");
    const { config, layer } = await blobsFor(repo);
    const base = { schemaVersion: 2, mediaType: MediaTypes.ociManifest, config, layers: [layer] };
    const sized = (total: number) => {
      const empty = JSON.stringify({ ...base, annotations: { pad: "" } }).length;
      return encode({ ...base, annotations: { pad: "x".repeat(total - empty) } });
    };
    for (const size of [3 * MiB + 17, 4 * MiB]) {
      const body = sized(size);
      expect(body.byteLength).toBe(size);
      const res = await putManifest(repo, `s${size}`, body);
      expect(res.status).toBe(201);
      await expectManifest(repo, `s${size}`, body, MediaTypes.ociManifest);
    }
  });
});

describe("manifest kinds", () => {
  it("an OCI index referencing pushed manifests", async () => {
    const repo = uniqueRepo("man");
    const amd = await pushImage(repo);
    const arm = await pushImage(repo);
    const body = encode({
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: [
        {
          mediaType: MediaTypes.ociManifest,
          digest: amd.digest,
          size: amd.manifest.byteLength,
          platform: { architecture: "amd64", os: "linux" },
        },
        {
          mediaType: MediaTypes.ociManifest,
          digest: arm.digest,
          size: arm.manifest.byteLength,
          platform: { architecture: "arm64", os: "linux" },
        },
      ],
    });
    const res = await putManifest(repo, "multi", body, MediaTypes.ociIndex);
    expect(res.status).toBe(201);
    expect(res.headers.get("Docker-Content-Digest")).toBe(await sha256(body));
    await expectManifest(repo, "multi", body, MediaTypes.ociIndex);
  });

  it("an index of indexes", async () => {
    const repo = uniqueRepo("man");
    const image = await pushImage(repo);
    const inner = encode({
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: [
        { mediaType: MediaTypes.ociManifest, digest: image.digest, size: image.manifest.length },
      ],
    });
    expect((await putManifest(repo, "inner", inner, MediaTypes.ociIndex)).status).toBe(201);
    const outer = encode({
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: [
        { mediaType: MediaTypes.ociIndex, digest: await sha256(inner), size: inner.length },
      ],
    });
    expect((await putManifest(repo, "outer", outer, MediaTypes.ociIndex)).status).toBe(201);
    await expectManifest(repo, "outer", outer, MediaTypes.ociIndex);
  });

  it("a Docker schema2 manifest and manifest list", async () => {
    const repo = uniqueRepo("man");
    const { config, layer } = await blobsFor(repo, {
      config: MediaTypes.dockerConfig,
      layer: MediaTypes.dockerLayer,
    });
    const manifest = encode({
      schemaVersion: 2,
      mediaType: MediaTypes.dockerManifest,
      config,
      layers: [layer],
    });
    const put = await putManifest(repo, "docker", manifest, MediaTypes.dockerManifest);
    expect(put.status).toBe(201);
    await expectManifest(repo, "docker", manifest, MediaTypes.dockerManifest);

    const list = encode({
      schemaVersion: 2,
      mediaType: MediaTypes.dockerManifestList,
      manifests: [
        {
          mediaType: MediaTypes.dockerManifest,
          digest: await sha256(manifest),
          size: manifest.byteLength,
          platform: { architecture: "amd64", os: "linux" },
        },
      ],
    });
    const putList = await putManifest(repo, "list", list, MediaTypes.dockerManifestList);
    expect(putList.status).toBe(201);
    await expectManifest(repo, "list", list, MediaTypes.dockerManifestList);
  });

  it("a Docker manifest may list a foreign layer that was never pushed", async () => {
    const repo = uniqueRepo("man");
    const { config, layer } = await blobsFor(repo, {
      config: MediaTypes.dockerConfig,
      layer: MediaTypes.dockerLayer,
    });
    const foreign = {
      mediaType: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
      digest: await sha256("windows base layer"),
      size: 1_000_000,
      urls: ["https://example.invalid/layer"],
    };
    const body = encode({
      schemaVersion: 2,
      mediaType: MediaTypes.dockerManifest,
      config,
      layers: [foreign, layer],
    });
    expect((await putManifest(repo, "win", body, MediaTypes.dockerManifest)).status).toBe(201);
  });

  it("an OCI artifact with artifactType and the empty config", async () => {
    const repo = uniqueRepo("man");
    expect(await pushBlob(repo, EMPTY_JSON)).toBe(EMPTY_JSON_DIGEST);
    const sbom = encode({ spdxVersion: "SPDX-2.3" });
    const sbomDigest = await pushBlob(repo, sbom);
    const body = encode({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      artifactType: "application/spdx+json",
      config: { mediaType: MediaTypes.ociEmpty, digest: EMPTY_JSON_DIGEST, size: 2 },
      layers: [{ mediaType: "application/spdx+json", digest: sbomDigest, size: sbom.length }],
    });
    const res = await putManifest(repo, "sbom", body);
    expect(res.status).toBe(201);
    await expectManifest(repo, "sbom", body, MediaTypes.ociManifest);
  });

  it("an OCI artifact whose only layer is the empty descriptor", async () => {
    const repo = uniqueRepo("man");
    await pushBlob(repo, EMPTY_JSON);
    const empty = { mediaType: MediaTypes.ociEmpty, digest: EMPTY_JSON_DIGEST, size: 2 };
    const body = encode({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      artifactType: "application/vnd.example.marker",
      config: empty,
      layers: [empty],
      annotations: { "org.example": "value" },
    });
    expect((await putManifest(repo, "marker", body)).status).toBe(201);
    await expectManifest(repo, "marker", body, MediaTypes.ociManifest);
  });
});

describe("MANIFEST_BLOB_UNKNOWN: a manifest needs its blobs and children in the repository", () => {
  it("a missing layer: 404 MANIFEST_BLOB_UNKNOWN and nothing stored", async () => {
    const repo = uniqueRepo("man");
    const { config } = await blobsFor(repo);
    const missing = {
      mediaType: MediaTypes.ociLayer,
      digest: await sha256("never pushed"),
      size: 12,
    };
    const body = encode({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config,
      layers: [missing],
    });
    await expectError(await putManifest(repo, "broken", body), 404, "MANIFEST_BLOB_UNKNOWN");
    await expectNoManifest(repo, "broken");
    await expectNoManifest(repo, await sha256(body));
    const tags = await api(`/v2/${repo}/tags/list`);
    if (tags.status === 200) expect(((await tags.json()) as { tags: string[] }).tags).toEqual([]);
    expect(await refcount(config.digest)).toBe(0);
  });

  it("a missing config", async () => {
    const repo = uniqueRepo("man");
    const { layer } = await blobsFor(repo);
    const body = encode({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config: { mediaType: MediaTypes.ociConfig, digest: await sha256("no config"), size: 9 },
      layers: [layer],
    });
    await expectError(
      await putManifest(repo, await sha256(body), body),
      404,
      "MANIFEST_BLOB_UNKNOWN",
    );
  });

  it("a blob only another repository has (the access boundary)", async () => {
    const repo = uniqueRepo("man");
    const other = uniqueRepo("man");
    const { config, layer } = await blobsFor(other);
    await pushBlob(repo, randomBytes(8));
    const body = encode({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config,
      layers: [layer],
    });
    await expectError(await putManifest(repo, "stolen", body), 404, "MANIFEST_BLOB_UNKNOWN");
    await expectNoManifest(repo, "stolen");
  });

  it("a blob deleted from the repository", async () => {
    const repo = uniqueRepo("man");
    const { body, layer } = await ociManifest(repo);
    expect((await api(`/v2/${repo}/blobs/${layer.digest}`, { method: "DELETE" })).status).toBe(202);
    await expectError(await putManifest(repo, "v1", body), 404, "MANIFEST_BLOB_UNKNOWN");
  });

  it("a missing child manifest in an index", async () => {
    const repo = uniqueRepo("man");
    const present = await pushImage(repo);
    const body = encode({
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: [
        {
          mediaType: MediaTypes.ociManifest,
          digest: present.digest,
          size: present.manifest.length,
        },
        { mediaType: MediaTypes.ociManifest, digest: await sha256("no such manifest"), size: 100 },
      ],
    });
    await expectError(
      await putManifest(repo, "index", body, MediaTypes.ociIndex),
      404,
      "MANIFEST_BLOB_UNKNOWN",
    );
    await expectNoManifest(repo, "index");
  });

  it("a child manifest only another repository has", async () => {
    const repo = uniqueRepo("man");
    const other = uniqueRepo("man");
    const elsewhere = await pushImage(other);
    await pushImage(repo);
    const body = encode({
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: [
        {
          mediaType: MediaTypes.ociManifest,
          digest: elsewhere.digest,
          size: elsewhere.manifest.length,
        },
      ],
    });
    await expectError(
      await putManifest(repo, "index", body, MediaTypes.ociIndex),
      404,
      "MANIFEST_BLOB_UNKNOWN",
    );
  });
});

describe("invalid manifests", () => {
  it("a body over 4 MiB: 413 MANIFEST_INVALID (declared length)", async () => {
    const repo = uniqueRepo("man");
    const body = new Uint8Array(4 * MiB + 1).fill(0x20);
    await expectError(await putManifest(repo, "huge", body), 413, "MANIFEST_INVALID");
    await expectNoManifest(repo, "huge");
  });

  it("a body over 4 MiB streamed without a length: 413 MANIFEST_INVALID", async () => {
    const repo = uniqueRepo("man");
    const piece = new Uint8Array(MiB).fill(0x20);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 5) controller.close();
        else {
          controller.enqueue(piece.slice());
          sent++;
        }
      },
    });
    const res = await api(`/v2/${repo}/manifests/huge`, {
      method: "PUT",
      body: stream,
      headers: { "Content-Type": MediaTypes.ociManifest },
    });
    await expectError(res, 413, "MANIFEST_INVALID");
  });

  it("a digest that does not match the reference: 400 DIGEST_INVALID, nothing stored", async () => {
    const repo = uniqueRepo("man");
    const { body } = await ociManifest(repo);
    const wrong = await sha256("something else");
    await expectError(await putManifest(repo, wrong, body), 400, "DIGEST_INVALID");
    await expectNoManifest(repo, wrong);
    await expectNoManifest(repo, await sha256(body));
    const wrong512 = await sha512("something else");
    await expectError(await putManifest(repo, wrong512, body), 400, "DIGEST_INVALID");
  });

  it.each([
    ["invalid JSON", "{not json", MediaTypes.ociManifest],
    ["an empty body", "", MediaTypes.ociManifest],
    ["a JSON array", "[]", MediaTypes.ociManifest],
    ["invalid UTF-8", new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), MediaTypes.ociManifest],
    ["JSON null", "null", MediaTypes.ociManifest],
    [
      "a mediaType that is not a string",
      '{"schemaVersion":2,"mediaType":5}',
      MediaTypes.ociManifest,
    ],
    ["a null config", '{"schemaVersion":2,"config":null,"layers":[]}', MediaTypes.ociManifest],
    ["a null child", '{"schemaVersion":2,"manifests":[null]}', MediaTypes.ociIndex],
    ["deeply nested JSON", `${"[".repeat(100_000)}${"]".repeat(100_000)}`, MediaTypes.ociManifest],
    [
      "a Docker schema1 manifest",
      '{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[],"history":[]}',
      "application/vnd.docker.distribution.manifest.v1+prettyjws",
    ],
  ])("%s: 400 MANIFEST_INVALID", async (_label, body, contentType) => {
    const repo = uniqueRepo("man");
    await expectError(await putManifest(repo, "bad", body, contentType), 400, "MANIFEST_INVALID");
    await expectNoManifest(repo, "bad");
  });

  it.each([
    ["schemaVersion 1", { schemaVersion: 1 }],
    ["schemaVersion as a string", { schemaVersion: "2" }],
    ["no schemaVersion", { schemaVersion: undefined }],
    ["layers not an array", { layers: "nope" }],
    [
      "a layer with a malformed digest",
      { layers: [{ mediaType: MediaTypes.ociLayer, digest: "sha256:xyz", size: 1 }] },
    ],
    [
      "a layer with a negative size",
      {
        layers: [{ mediaType: MediaTypes.ociLayer, digest: `sha256:${"a".repeat(64)}`, size: -1 }],
      },
    ],
    ["annotations that are not strings", { annotations: { a: 1 } }],
    ["null annotations", { annotations: null }],
    ["a null subject", { subject: null }],
    [
      "a size beyond 2^53",
      {
        layers: [
          { mediaType: MediaTypes.ociLayer, digest: `sha256:${"a".repeat(64)}`, size: 1e300 },
        ],
      },
    ],
  ])("%s: 400 MANIFEST_INVALID", async (_label, override) => {
    const repo = uniqueRepo("man");
    const { config, layer } = await blobsFor(repo);
    const body = encode({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config,
      layers: [layer],
      ...override,
    });
    await expectError(await putManifest(repo, "bad", body), 400, "MANIFEST_INVALID");
    await expectNoManifest(repo, "bad");
  });

  it("Content-Type that contradicts the body's mediaType: 400 MANIFEST_INVALID", async () => {
    const repo = uniqueRepo("man");
    const { body } = await ociManifest(repo);
    for (const contentType of [MediaTypes.ociIndex, MediaTypes.dockerManifest]) {
      await expectError(await putManifest(repo, "bad", body, contentType), 400, "MANIFEST_INVALID");
    }
    await expectNoManifest(repo, "bad");
  });

  it("an unknown manifest media type: 400 MANIFEST_INVALID", async () => {
    const repo = uniqueRepo("man");
    const body = encode({ schemaVersion: 2, mediaType: "application/vnd.example.thing+json" });
    await expectError(
      await putManifest(repo, "bad", body, "application/vnd.example.thing+json"),
      400,
      "MANIFEST_INVALID",
    );
  });

  it("a descriptor size that differs from the blob: 400 MANIFEST_INVALID", async () => {
    const repo = uniqueRepo("man");
    const { config, layer } = await blobsFor(repo);
    const body = encode({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config,
      layers: [{ ...layer, size: layer.size + 1 }],
    });
    await expectError(await putManifest(repo, "bad", body), 400, "MANIFEST_INVALID");
  });
});

describe("names and references", () => {
  it.each(["-leading", "with+plus", "sp%20ace", "a" + "x".repeat(300)])(
    "tag %s: 400 TAG_INVALID on PUT, GET and DELETE",
    async (tag) => {
      const repo = uniqueRepo("man");
      const { body } = await ociManifest(repo);
      await expectError(await putManifest(repo, tag, body), 400, "TAG_INVALID");
      await expectError(await api(`/v2/${repo}/manifests/${tag}`), 400, "TAG_INVALID");
      await expectHeadError(await api(`/v2/${repo}/manifests/${tag}`, { method: "HEAD" }), 400);
      await expectError(
        await api(`/v2/${repo}/manifests/${tag}`, { method: "DELETE" }),
        400,
        "TAG_INVALID",
      );
    },
  );

  it("accepts the longest tag (128 characters) and tags with . _ -", async () => {
    const repo = uniqueRepo("man");
    const { body, digest } = await ociManifest(repo);
    for (const tag of ["t".repeat(128), "_under", "v1.2.3-rc_1", "UPPER"]) {
      const res = await putManifest(repo, tag, body);
      expect(res.status).toBe(201);
      expect((await api(`/v2/${repo}/manifests/${tag}`)).headers.get("Docker-Content-Digest")).toBe(
        digest,
      );
    }
    await expectError(await putManifest(repo, "t".repeat(129), body), 400, "TAG_INVALID");
    await expectError(await putManifest(repo, ".dot", body), 400, "TAG_INVALID");
  });

  it("a malformed digest reference: 400 DIGEST_INVALID", async () => {
    const repo = uniqueRepo("man");
    const { body } = await ociManifest(repo);
    for (const reference of ["sha256:abc", `sha256:${"G".repeat(64)}`]) {
      await expectError(await putManifest(repo, reference, body), 400, "DIGEST_INVALID");
      await expectError(await api(`/v2/${repo}/manifests/${reference}`), 400, "DIGEST_INVALID");
    }
  });

  it.each([
    ["uppercase", "Upper/case"],
    ["a double dot", "a..b/c"],
    ["a trailing slash", "repo/"],
    ["a leading separator", "_repo"],
    ["an empty component", "a//b"],
    ["a dot component", "a/.b"],
    ["a name over 255 characters", `a/${"b".repeat(260)}`],
  ])("a name with %s: 400 NAME_INVALID", async (_label, name) => {
    const body = encode({ schemaVersion: 2 });
    await expectError(await putManifest(name, "v1", body), 400, "NAME_INVALID");
    await expectError(await api(`/v2/${name}/manifests/v1`), 400, "NAME_INVALID");
    await expectHeadError(await api(`/v2/${name}/manifests/v1`, { method: "HEAD" }), 400);
    await expectError(
      await api(`/v2/${name}/manifests/v1`, { method: "DELETE" }),
      400,
      "NAME_INVALID",
    );
  });

  it("accepts names with several components and separators", async () => {
    const name = `${uniqueRepo("a")}/b.c/d_e/f__g/h-i/j---k/0`;
    const { body } = await ociManifest(name);
    expect((await putManifest(name, "v1", body)).status).toBe(201);
    await expectManifest(name, "v1", body, MediaTypes.ociManifest);
  });
});

describe("DELETE /v2/<name>/manifests/<reference> (end-9)", () => {
  it("by digest: 202, then GET by tag and by digest answer 404 MANIFEST_UNKNOWN", async () => {
    const repo = uniqueRepo("man");
    const image = await pushImage(repo, { tag: "v1" });
    expect((await putManifest(repo, "also", image.manifest)).status).toBe(201);
    const res = await api(`/v2/${repo}/manifests/${image.digest}`, { method: "DELETE" });
    expect(res.status).toBe(202);
    await expectNoManifest(repo, image.digest);
    await expectNoManifest(repo, "v1");
    await expectNoManifest(repo, "also");
    await expectHeadError(await api(`/v2/${repo}/manifests/v1`, { method: "HEAD" }), 404);
    const tags = (await (await api(`/v2/${repo}/tags/list`)).json()) as { tags: string[] };
    expect(tags.tags).toEqual([]);
    // A second delete finds nothing.
    await expectError(
      await api(`/v2/${repo}/manifests/${image.digest}`, { method: "DELETE" }),
      404,
      "MANIFEST_UNKNOWN",
    );
  });

  it("by tag: only the tag goes; the manifest and other tags stay", async () => {
    const repo = uniqueRepo("man");
    const image = await pushImage(repo, { tag: "v1" });
    expect((await putManifest(repo, "stable", image.manifest)).status).toBe(201);
    expect((await api(`/v2/${repo}/manifests/v1`, { method: "DELETE" })).status).toBe(202);
    await expectNoManifest(repo, "v1");
    await expectManifest(repo, image.digest, image.manifest, MediaTypes.ociManifest);
    await expectManifest(repo, "stable", image.manifest, MediaTypes.ociManifest);
    const tags = (await (await api(`/v2/${repo}/tags/list`)).json()) as { tags: string[] };
    expect(tags.tags).toEqual(["stable"]);
  });

  it("an unknown tag or digest: 404 MANIFEST_UNKNOWN", async () => {
    const repo = uniqueRepo("man");
    await pushImage(repo, { tag: "v1" });
    await expectError(
      await api(`/v2/${repo}/manifests/nope`, { method: "DELETE" }),
      404,
      "MANIFEST_UNKNOWN",
    );
    await expectError(
      await api(`/v2/${repo}/manifests/${await sha256("nope")}`, { method: "DELETE" }),
      404,
      "MANIFEST_UNKNOWN",
    );
  });

  it("deleting a manifest in one repository leaves the same manifest in another", async () => {
    const repo = uniqueRepo("man");
    const other = uniqueRepo("man");
    const layer = randomBytes(256);
    const image = await pushImage(repo, { tag: "v1", layers: [layer] });
    // The same manifest bytes (same config and layer) pushed to a second repository.
    const configBytes = await pullConfig(repo, image.config);
    await pushBlob(other, configBytes);
    await pushBlob(other, layer);
    expect((await putManifest(other, "v1", image.manifest)).status).toBe(201);
    expect((await api(`/v2/${repo}/manifests/${image.digest}`, { method: "DELETE" })).status).toBe(
      202,
    );
    await expectNoManifest(repo, image.digest);
    await expectManifest(other, "v1", image.manifest, MediaTypes.ociManifest);
  });

  it("a deleted manifest can be pushed again", async () => {
    const repo = uniqueRepo("man");
    const image = await pushImage(repo, { tag: "v1" });
    expect((await api(`/v2/${repo}/manifests/${image.digest}`, { method: "DELETE" })).status).toBe(
      202,
    );
    expect((await putManifest(repo, "v1", image.manifest)).status).toBe(201);
    await expectManifest(repo, "v1", image.manifest, MediaTypes.ociManifest);
  });
});
