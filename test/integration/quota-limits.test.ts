// A namespace's hard limit refuses new upload sessions, monolithic pushes, mounts and manifest
// pushes that would take its usage over the limit: 403 DENIED naming usage and limit, and nothing
// stored. What adds no bytes (a blob or manifest the namespace already counts) still passes.
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { blobRefShardName } from "../../durable-objects/blob-ref-object.ts";
import { namespaceObjectName } from "../../durable-objects/namespace-object.ts";
import type { Digest } from "../../schema/oci/reference.ts";
import {
  api,
  expectError,
  MediaTypes,
  pushBlob,
  pushImage,
  randomBytes,
  sha256,
} from "./helpers.ts";
import { createOrg } from "./identity-fixtures.ts";

async function usageOf(namespace: string): Promise<number> {
  return (await env.NAMESPACE.getByName(namespaceObjectName(namespace)).describe()).usageBytes;
}

async function setLimit(namespace: string, limitBytes: number): Promise<void> {
  const res = await api(`/api/v1/namespaces/${namespace}/quota`, {
    method: "PUT",
    body: JSON.stringify({ limitBytes }),
    headers: { "Content-Type": "application/json" },
  });
  expect(res.status, await res.clone().text()).toBe(200);
}

/** A namespace holding one pushed image (its layer's bytes returned); returns its usage. */
async function namespaceWithImage(): Promise<{
  ns: string;
  repo: string;
  used: number;
  layer: Uint8Array;
}> {
  const ns = await createOrg();
  const repo = `${ns}/app`;
  const layer = randomBytes(1000);
  await pushImage(repo, { tag: "base", layers: [layer] });
  return { ns, repo, used: await usageOf(ns), layer };
}

async function uploadSessions(repo: string): Promise<number> {
  return runInDurableObject(
    env.REPOSITORY.getByName(repo),
    (_object, state) => state.storage.sql.exec("SELECT 1 FROM uploads").toArray().length,
  );
}

async function storedObjects(): Promise<number> {
  let count = 0;
  let cursor: string | undefined;
  do {
    const page = await env.BLOBS.list(cursor ? { cursor } : {});
    count += page.objects.length;
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return count;
}

function manifestOf(
  config: { digest: string; size: number },
  layers: { digest: string; size: number }[],
) {
  return new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config: { mediaType: MediaTypes.ociConfig, ...config },
      layers: layers.map((layer) => ({ mediaType: MediaTypes.ociLayer, ...layer })),
    }),
  );
}

function putManifest(repo: string, reference: string, body: Uint8Array): Promise<Response> {
  return api(`/v2/${repo}/manifests/${reference}`, {
    method: "PUT",
    body,
    headers: { "Content-Type": MediaTypes.ociManifest },
  });
}

describe("hard limit", () => {
  it("refuses a new upload session once usage reaches the limit, and nothing is opened", async () => {
    const { ns, repo, used } = await namespaceWithImage();
    await setLimit(ns, used);
    const res = await api(`/v2/${repo}/blobs/uploads/`, {
      method: "POST",
      headers: { "Content-Length": "0" },
    });
    const body = await expectError(res, 403, "DENIED");
    expect(body.errors[0]!.message).toContain(`${used} of ${used} bytes`);
    expect(body.errors[0]!.detail).toMatchObject({
      namespace: ns,
      usageBytes: used,
      limitBytes: used,
    });
    expect(await uploadSessions(repo)).toBe(0);

    // Raising the limit opens the door again.
    await setLimit(ns, used + 1);
    const again = await api(`/v2/${repo}/blobs/uploads/`, {
      method: "POST",
      headers: { "Content-Length": "0" },
    });
    expect(again.status).toBe(202);
  });

  it("refuses a monolithic blob that would not fit, storing nothing, and admits one that adds no bytes", async () => {
    const { ns, repo, used, layer } = await namespaceWithImage();
    await setLimit(ns, used + 1000);
    const bytes = randomBytes(2000);
    const digest = await sha256(bytes);
    const objects = await storedObjects();
    const res = await api(`/v2/${repo}/blobs/uploads/?digest=${digest}`, {
      method: "POST",
      body: bytes,
      headers: { "Content-Type": "application/octet-stream" },
    });
    const body = await expectError(res, 403, "DENIED");
    expect(body.errors[0]!.message).toContain("would add 2000 bytes");
    expect((await api(`/v2/${repo}/blobs/${digest}`, { method: "HEAD" })).status).toBe(404);
    expect(await storedObjects()).toBe(objects);
    expect(await env.BLOB_REF.getByName(blobRefShardName(digest)).get(digest as Digest)).toBeNull();
    expect(await uploadSessions(repo)).toBe(0);

    // One that fits is stored.
    await pushBlob(repo, randomBytes(1000));
    // At the limit, a blob the namespace already counts adds nothing: it passes, in any of its
    // repositories.
    await setLimit(ns, used);
    await pushBlob(`${ns}/other`, layer);
  });

  it("refuses a manifest push whose new blobs go over the limit; nothing is stored or counted", async () => {
    const { ns, repo, used } = await namespaceWithImage();
    await setLimit(ns, used + 3000);
    const configBytes = new TextEncoder().encode(JSON.stringify({ os: "linux", n: Math.random() }));
    const config = { digest: await pushBlob(repo, configBytes), size: configBytes.byteLength };
    const layers = [randomBytes(2000), randomBytes(2000)];
    const pushed = [];
    for (const layer of layers) pushed.push({ digest: await pushBlob(repo, layer), size: 2000 });
    const tagsBefore = await (await api(`/v2/${repo}/tags/list`)).json();

    const manifest = manifestOf(config, pushed);
    const res = await putManifest(repo, "big", manifest);
    const body = await expectError(res, 403, "DENIED");
    const adds = 4000 + configBytes.byteLength;
    expect(body.errors[0]!.message).toContain(`${used} of ${used + 3000} bytes used`);
    expect(body.errors[0]!.message).toContain(`would add ${adds} bytes`);
    expect((await api(`/v2/${repo}/manifests/big`)).status).toBe(404);
    expect((await api(`/v2/${repo}/manifests/${await sha256(manifest)}`)).status).toBe(404);
    expect(await (await api(`/v2/${repo}/tags/list`)).json()).toEqual(tagsBefore);
    expect(await usageOf(ns)).toBe(used);
    const layerRecord = await env.BLOB_REF.getByName(blobRefShardName(pushed[0]!.digest)).get(
      pushed[0]!.digest as Digest,
    );
    expect(layerRecord?.refcount).toBe(0);

    // A manifest whose new blobs fit is accepted; then a retag at the limit (nothing new) too.
    const small = manifestOf(config, [pushed[0]!]);
    expect((await putManifest(repo, "small", small)).status).toBe(201);
    expect(await usageOf(ns)).toBe(used + 2000 + configBytes.byteLength);
    await setLimit(ns, await usageOf(ns));
    expect((await putManifest(repo, "small-again", small)).status).toBe(201);
  });

  it("refuses a mount that would add bytes over the limit, and links nothing", async () => {
    const { ns, repo, used } = await namespaceWithImage();
    const source = `${await createOrg()}/src`;
    const bytes = randomBytes(4000);
    const digest = await pushBlob(source, bytes);
    await setLimit(ns, used + 1000);
    const res = await api(`/v2/${repo}/blobs/uploads/?mount=${digest}&from=${source}`, {
      method: "POST",
      headers: { "Content-Length": "0" },
    });
    const body = await expectError(res, 403, "DENIED");
    expect(body.errors[0]!.message).toContain("would add 4000 bytes");
    expect((await api(`/v2/${repo}/blobs/${digest}`, { method: "HEAD" })).status).toBe(404);
    expect(await uploadSessions(repo)).toBe(0);

    // With room, the same mount links the blob.
    await setLimit(ns, used + 4000);
    const mounted = await api(`/v2/${repo}/blobs/uploads/?mount=${digest}&from=${source}`, {
      method: "POST",
      headers: { "Content-Length": "0" },
    });
    expect(mounted.status).toBe(201);
  });

  it("does not touch pulls: a namespace over its limit still serves its images", async () => {
    const { ns, repo } = await namespaceWithImage();
    await setLimit(ns, 0);
    expect((await api(`/v2/${repo}/manifests/base`)).status).toBe(200);
  });
});
