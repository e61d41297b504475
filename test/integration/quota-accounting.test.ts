// Namespace storage usage stays exact as manifests and repositories come and go: the distinct
// blobs the namespace's manifests reference, a layer shared by two of its repositories counted
// once, a layer shared by two namespaces counted in each.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { namespaceObjectName } from "../../durable-objects/namespace-object.ts";
import type { Digest } from "../../schema/oci/reference.ts";
import type { QuotaView } from "../../schema/rpc.ts";
import { api, pushBlob, pushImage, randomBytes } from "./helpers.ts";
import { uniqueName } from "./identity-fixtures.ts";

function quotaObject(namespace: string) {
  return env.NAMESPACE.getByName(namespaceObjectName(namespace));
}

async function usage(namespace: string): Promise<QuotaView> {
  return quotaObject(namespace).describe();
}

/** The bytes of a pushed image's config blob (pushImage makes it; HEAD tells its size). */
async function blobSize(repo: string, digest: string): Promise<number> {
  const res = await api(`/v2/${repo}/blobs/${digest}`, { method: "HEAD" });
  expect(res.status).toBe(200);
  return Number(res.headers.get("Content-Length"));
}

async function deleteRepository(repo: string): Promise<void> {
  expect((await api(`/api/v1/repositories/${repo}`, { method: "DELETE" })).status).toBe(204);
}

describe("namespace usage", () => {
  it("counts a layer shared by two repositories of a namespace once, until both let go", async () => {
    const ns = uniqueName("q");
    const layer = randomBytes(4096);
    const a = await pushImage(`${ns}/a`, { tag: "v1", layers: [layer] });
    const b = await pushImage(`${ns}/b`, { tag: "v1", layers: [layer] });
    const configA = await blobSize(`${ns}/a`, a.config);
    const configB = await blobSize(`${ns}/b`, b.config);
    expect(await usage(ns)).toMatchObject({
      usageBytes: 4096 + configA + configB,
      blobs: 3,
      limitBytes: null,
    });
    expect(await quotaObject(ns).references(a.layers[0]! as Digest)).toBe(2);

    // A second manifest of the same repository listing the layer adds no usage for it.
    const extra = randomBytes(100);
    const a2 = await pushImage(`${ns}/a`, { tag: "v2", layers: [layer, extra] });
    const configA2 = await blobSize(`${ns}/a`, a2.config);
    const all = 4096 + configA + configB + configA2 + 100;
    expect(await usage(ns)).toMatchObject({ usageBytes: all, blobs: 5 });
    expect(await quotaObject(ns).references(a.layers[0]! as Digest)).toBe(2);

    await deleteRepository(`${ns}/a`);
    // The layer stays (b keeps it); a's own blobs go.
    expect(await usage(ns)).toMatchObject({ usageBytes: 4096 + configB, blobs: 2 });
    expect(await quotaObject(ns).references(a.layers[0]! as Digest)).toBe(1);

    await deleteRepository(`${ns}/b`);
    expect(await usage(ns)).toMatchObject({ usageBytes: 0, blobs: 0 });
    expect(await quotaObject(ns).references(a.layers[0]! as Digest)).toBe(0);
  });

  it("counts a layer shared by two namespaces in each", async () => {
    const [first, second] = [uniqueName("q"), uniqueName("q")];
    const layer = randomBytes(2048);
    const one = await pushImage(`${first}/app`, { tag: "v1", layers: [layer] });
    const two = await pushImage(`${second}/app`, { tag: "v1", layers: [layer] });
    const firstConfig = await blobSize(`${first}/app`, one.config);
    const secondConfig = await blobSize(`${second}/app`, two.config);
    expect((await usage(first)).usageBytes).toBe(2048 + firstConfig);
    expect((await usage(second)).usageBytes).toBe(2048 + secondConfig);

    await deleteRepository(`${first}/app`);
    expect((await usage(first)).usageBytes).toBe(0);
    expect((await usage(second)).usageBytes).toBe(2048 + secondConfig);
  });

  it("drops with a manifest delete, not with a tag delete, and keeps what another manifest lists", async () => {
    const ns = uniqueName("q");
    const repo = `${ns}/app`;
    const shared = randomBytes(1000);
    const first = await pushImage(repo, { tag: "one", layers: [shared, randomBytes(300)] });
    const second = await pushImage(repo, { tag: "two", layers: [shared] });
    const [c1, c2] = [await blobSize(repo, first.config), await blobSize(repo, second.config)];
    expect((await usage(ns)).usageBytes).toBe(1000 + 300 + c1 + c2);

    // Untagging keeps the manifest, so its blobs stay counted.
    expect((await api(`/v2/${repo}/manifests/one`, { method: "DELETE" })).status).toBe(202);
    expect((await usage(ns)).usageBytes).toBe(1000 + 300 + c1 + c2);

    expect((await api(`/v2/${repo}/manifests/${first.digest}`, { method: "DELETE" })).status).toBe(
      202,
    );
    expect(await usage(ns)).toMatchObject({ usageBytes: 1000 + c2, blobs: 2 });

    // Pushing the same manifest again counts its blobs again.
    const again = await api(`/v2/${repo}/manifests/one`, {
      method: "PUT",
      body: first.manifest,
      headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" },
    });
    expect(again.status).toBe(201);
    expect((await usage(ns)).usageBytes).toBe(1000 + 300 + c1 + c2);
  });

  it("does not count uploaded blobs that no manifest references", async () => {
    const ns = uniqueName("q");
    await pushBlob(`${ns}/app`, randomBytes(5000));
    expect(await usage(ns)).toMatchObject({ usageBytes: 0, blobs: 0 });
  });

  it("applies a redelivered delta once", async () => {
    const ns = uniqueName("q");
    const digest = `sha256:${"cd".repeat(32)}` as Digest;
    const delta = { id: crypto.randomUUID(), digest, size: 777, delta: 1 as const };
    await quotaObject(ns).applyDeltas([delta]);
    await quotaObject(ns).applyDeltas([delta]);
    expect(await usage(ns)).toMatchObject({ usageBytes: 777, blobs: 1 });
    await quotaObject(ns).applyDeltas([{ ...delta, id: crypto.randomUUID(), delta: -1 }]);
    expect(await usage(ns)).toMatchObject({ usageBytes: 0, blobs: 0 });
  });

  it("counts references however they change (triggers), and the alarm delivers what is pending", async () => {
    const ns = uniqueName("q");
    const repo = `${ns}/app`;
    const bytes = randomBytes(1234);
    const digest = await pushBlob(repo, bytes);
    const stub = env.REPOSITORY.getByName(repo);
    // A reference written straight into the table (as any future code path might) is queued
    // by the trigger, with the linked blob's size, and not yet delivered.
    const queued = await runInDurableObject(stub, (_instance, state) => {
      state.storage.sql.exec(
        "INSERT INTO manifest_refs (manifest, target, kind) VALUES ('sha256:m1', ?, 'blob')",
        digest,
      );
      state.storage.sql.exec(
        "INSERT INTO manifest_refs (manifest, target, kind) VALUES ('sha256:m2', ?, 'blob')",
        digest,
      );
      return state.storage.sql
        .exec<{ size: number; delta: number }>("SELECT size, delta FROM quota_outbox")
        .toArray();
    });
    expect(queued).toEqual([{ size: 1234, delta: 1 }]);
    expect((await usage(ns)).usageBytes).toBe(0);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await usage(ns)).toMatchObject({ usageBytes: 1234, blobs: 1 });

    // Removing one of two references queues nothing; removing the last queues -1.
    await runInDurableObject(stub, (_instance, state) => {
      state.storage.sql.exec("DELETE FROM manifest_refs WHERE manifest = 'sha256:m1'");
      expect(state.storage.sql.exec("SELECT 1 FROM quota_outbox").toArray()).toHaveLength(0);
      state.storage.sql.exec("DELETE FROM manifest_refs WHERE manifest = 'sha256:m2'");
      expect(state.storage.sql.exec("SELECT delta FROM quota_outbox").toArray()).toEqual([
        { delta: -1 },
      ]);
      return state.storage.setAlarm(Date.now() + 60_000);
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await usage(ns)).toMatchObject({ usageBytes: 0, blobs: 0 });
  });
});
