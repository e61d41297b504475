// BlobRefObject reference counts stay exact across repositories as manifests come and go.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { blobRefShardName } from "../../durable-objects/blob-ref-object.ts";
import type { Digest } from "../../schema/oci/reference.ts";
import { api, pushImage, randomBytes, uniqueRepo } from "./helpers.ts";

async function refcount(digest: string): Promise<number | undefined> {
  const record = await env.BLOB_REF.getByName(blobRefShardName(digest)).get(digest as Digest);
  return record?.refcount;
}

describe("blob reference counts", () => {
  it("count each repository manifest that lists a blob, and drop as manifests are deleted", async () => {
    const shared = randomBytes(4096);
    const a = uniqueRepo("refs");
    const b = uniqueRepo("refs");
    const imageA = await pushImage(a, { tag: "v1", layers: [shared] });
    const layer = imageA.layers[0]!;
    expect(await refcount(layer)).toBe(1);

    // The same layer in a second repository, and in a second manifest of the first.
    const imageB = await pushImage(b, { tag: "v1", layers: [shared] });
    const imageA2 = await pushImage(a, { tag: "v2", layers: [shared, randomBytes(100)] });
    expect(await refcount(layer)).toBe(3);

    // Re-pushing an identical manifest and retagging change nothing.
    const again = await api(`/v2/${a}/manifests/again`, {
      method: "PUT",
      body: imageA.manifest,
      headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" },
    });
    expect(again.status).toBe(201);
    expect(await refcount(layer)).toBe(3);

    expect((await api(`/v2/${a}/manifests/${imageA.digest}`, { method: "DELETE" })).status).toBe(
      202,
    );
    expect(await refcount(layer)).toBe(2);
    expect((await api(`/v2/${b}/manifests/${imageB.digest}`, { method: "DELETE" })).status).toBe(
      202,
    );
    expect((await api(`/v2/${a}/manifests/${imageA2.digest}`, { method: "DELETE" })).status).toBe(
      202,
    );
    expect(await refcount(layer)).toBe(0);
    // Deleting a tag only does not release the manifest.
    const imageC = await pushImage(a, { tag: "v3", layers: [shared] });
    expect((await api(`/v2/${a}/manifests/v3`, { method: "DELETE" })).status).toBe(202);
    expect(await refcount(imageC.layers[0]!)).toBe(1);
  });

  it("apply a redelivered delta once", async () => {
    const digest = `sha256:${"ab".repeat(32)}` as Digest;
    const shard = env.BLOB_REF.getByName(blobRefShardName(digest));
    const delta = { id: crypto.randomUUID(), digest, delta: 1 as const };
    await shard.applyDeltas([delta]);
    await shard.applyDeltas([delta]);
    expect((await shard.get(digest))?.refcount).toBe(1);
  });
});
