// Garbage collection, rule by rule (docs/garbage-collection.md): what keeps a manifest, when
// links and blobs go, what revives a blob, and the races the design closes, each driven with the
// clock and the alarms under the test's control.
import { env, runInDurableObject } from "cloudflare:test";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BlobRefObject } from "../../durable-objects/blob-ref-object.ts";
import type { ObjectEnv } from "../../durable-objects/env.ts";
import type { RepositoryObject } from "../../durable-objects/repository-object.ts";
import type { Digest } from "../../schema/oci/reference.ts";
import {
  advance,
  auditEvents,
  blobRecord,
  blobStatus,
  collect,
  DAY_MS,
  freezeClock,
  GRACE_MS,
  hasManifest,
  releaseClock,
  repository,
  setRetention,
  shard,
  sweep,
} from "./gc-fixtures.ts";
import {
  api,
  expectError,
  MediaTypes,
  pullBlob,
  pushBlob,
  pushImage,
  putManifest,
  randomBytes,
  sha256,
  uniqueRepo,
} from "./helpers.ts";

beforeAll(freezeClock);
afterAll(releaseClock);

/** Pushes an OCI index over `children` (digests of manifests in `repo`). */
async function pushIndex(repo: string, children: string[], tag?: string): Promise<string> {
  const manifests = [];
  for (const digest of children) {
    const head = await api(`/v2/${repo}/manifests/${digest}`, { method: "HEAD" });
    manifests.push({
      mediaType: MediaTypes.ociManifest,
      digest,
      size: Number(head.headers.get("Content-Length")),
    });
  }
  const body = JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests });
  const digest = await sha256(body);
  const res = await putManifest(repo, tag ?? digest, body, MediaTypes.ociIndex);
  expect(res.status).toBe(201);
  return digest;
}

async function subjectOf(repo: string, digest: string) {
  const head = await api(`/v2/${repo}/manifests/${digest}`, { method: "HEAD" });
  return {
    mediaType: MediaTypes.ociManifest,
    digest,
    size: Number(head.headers.get("Content-Length")),
  };
}

async function deleteReference(repo: string, reference: string): Promise<void> {
  expect((await api(`/v2/${repo}/manifests/${reference}`, { method: "DELETE" })).status).toBe(202);
}

describe("manifests", () => {
  it("keeps an untagged push for the grace, then collects it with its links and blob", async () => {
    const repo = uniqueRepo("gc");
    const image = await pushImage(repo, { layers: [randomBytes(2048)] });
    const layer = image.layers[0]!;
    const key = (await blobRecord(layer))!.copies[0]!.key;

    advance(GRACE_MS - 1000);
    await collect(repo);
    expect(await hasManifest(repo, image.digest)).toBe(true);

    advance(2000);
    await collect(repo);
    expect(await hasManifest(repo, image.digest)).toBe(false);
    // Nothing references its blobs any more: the links went in the same run, the counts too.
    expect(await blobStatus(repo, layer)).toBe(404);
    const record = await blobRecord(layer);
    expect(record).toMatchObject({ refcount: 0, links: 0, collectableAt: Date.now() + GRACE_MS });

    // The blob itself waits out its own grace, then its bytes go.
    await sweep(layer);
    expect(await env.BLOBS.head(key)).not.toBeNull();
    advance(GRACE_MS + 1);
    await sweep(layer);
    expect(await blobRecord(layer)).toBeNull();
    expect(await env.BLOBS.head(key)).toBeNull();

    const collected = await auditEvents("manifest.collect", (m) => m.digest === image.digest);
    expect(collected).toMatchObject([{ repository: repo, actor_kind: "system" }]);
    const unlinked = await auditEvents("blob.unlink", (m) =>
      (m.digests as string[]).includes(layer),
    );
    expect(unlinked).toMatchObject([{ repository: repo, actor_kind: "system" }]);
    const swept = await auditEvents("blob.collect", (m) =>
      (m.blobs as { digest: string }[]).some((blob) => blob.digest === layer),
    );
    expect(swept).toMatchObject([{ repository: null, actor_kind: "system" }]);
  });

  it("keeps a tagged manifest, and a deleted tag's manifest for the retention window", async () => {
    const repo = uniqueRepo("gc");
    const image = await pushImage(repo, { tag: "v1" });
    advance(2 * GRACE_MS);
    await collect(repo);
    expect(await hasManifest(repo, image.digest)).toBe(true);

    await deleteReference(repo, "v1");
    advance(13 * DAY_MS);
    await collect(repo);
    expect(await hasManifest(repo, image.digest)).toBe(true);
    advance(DAY_MS + 1000);
    await collect(repo);
    expect(await hasManifest(repo, image.digest)).toBe(false);
  });

  it("with retention 0, collects what a tag moved away from once its grace is over", async () => {
    const repo = uniqueRepo("gc");
    await setRetention(repo, 0);
    const first = await pushImage(repo, { tag: "latest" });
    const second = await pushImage(repo, { tag: "latest" });
    await collect(repo);
    expect(await hasManifest(repo, first.digest)).toBe(true);
    advance(GRACE_MS + 1);
    await collect(repo);
    expect(await hasManifest(repo, first.digest)).toBe(false);
    expect(await hasManifest(repo, second.digest)).toBe(true);
    expect(await blobStatus(repo, first.config)).toBe(404);
    expect(await blobStatus(repo, second.config)).toBe(200);
  });

  it("keeps an index's children while the index is kept, and collects them after it", async () => {
    const repo = uniqueRepo("gc");
    await setRetention(repo, 0);
    const shared = randomBytes(1500);
    const amd64 = await pushImage(repo, { layers: [shared] });
    const arm64 = await pushImage(repo, { layers: [shared, randomBytes(100)] });
    const index = await pushIndex(repo, [amd64.digest, arm64.digest], "multi");
    advance(2 * GRACE_MS);
    await collect(repo);
    for (const digest of [amd64.digest, arm64.digest, index]) {
      expect(await hasManifest(repo, digest)).toBe(true);
    }
    expect((await blobRecord(amd64.layers[0]!))?.refcount).toBe(2);

    await deleteReference(repo, "multi");
    await collect(repo);
    for (const digest of [amd64.digest, arm64.digest, index]) {
      expect(await hasManifest(repo, digest)).toBe(false);
    }
    expect(await blobRecord(amd64.layers[0]!)).toMatchObject({ refcount: 0, links: 0 });
  });

  it("keeps a referrer while its subject is kept; one whose subject never came goes", async () => {
    const repo = uniqueRepo("gc");
    await setRetention(repo, 0);
    const image = await pushImage(repo, { tag: "v1" });
    const signature = await pushImage(repo, {
      subject: await subjectOf(repo, image.digest),
      artifactType: "application/vnd.example.signature",
    });
    const orphan = await pushImage(repo, {
      subject: {
        mediaType: MediaTypes.ociManifest,
        digest: await sha256("never pushed"),
        size: 12,
      },
    });
    advance(2 * GRACE_MS);
    await collect(repo);
    expect(await hasManifest(repo, signature.digest)).toBe(true);
    expect(await hasManifest(repo, orphan.digest)).toBe(false);

    await deleteReference(repo, "v1");
    await collect(repo);
    expect(await hasManifest(repo, image.digest)).toBe(false);
    expect(await hasManifest(repo, signature.digest)).toBe(false);
  });

  it("re-examines a deleted manifest's children and blob links", async () => {
    const repo = uniqueRepo("gc");
    const child = await pushImage(repo);
    const index = await pushIndex(repo, [child.digest], "multi");
    advance(2 * GRACE_MS);
    await collect(repo);
    expect(await hasManifest(repo, child.digest)).toBe(true);

    await deleteReference(repo, index);
    await collect(repo);
    expect(await hasManifest(repo, child.digest)).toBe(false);
    expect(await blobStatus(repo, child.config)).toBe(404);
  });

  it("collects at once what an erased history entry or a shorter window no longer keeps", async () => {
    const repo = uniqueRepo("gc");
    const erased = await pushImage(repo, { tag: "v1" });
    const shrunk = await pushImage(repo, { tag: "v2" });
    await deleteReference(repo, "v1");
    await deleteReference(repo, "v2");
    advance(2 * GRACE_MS);
    await collect(repo);
    expect(await hasManifest(repo, erased.digest)).toBe(true);
    expect(await hasManifest(repo, shrunk.digest)).toBe(true);

    const history = await repository(repo).listTagHistory({ tag: "v1", limit: 10, beforeId: null });
    expect((await repository(repo).eraseTagHistory(history.entries[0]!.id)).ok).toBe(true);
    await collect(repo);
    expect(await hasManifest(repo, erased.digest)).toBe(false);
    expect(await hasManifest(repo, shrunk.digest)).toBe(true);

    await setRetention(repo, 0);
    await collect(repo);
    expect(await hasManifest(repo, shrunk.digest)).toBe(false);
  });

  it("extends the grace of a manifest pushed again (its index comes next)", async () => {
    const repo = uniqueRepo("gc");
    const child = await pushImage(repo);
    advance(GRACE_MS - 1000);
    const again = await putManifest(repo, child.digest, child.manifest);
    expect(again.status).toBe(201);
    advance(2000);
    await collect(repo);
    expect(await hasManifest(repo, child.digest)).toBe(true);
    await pushIndex(repo, [child.digest], "multi");
  });
});

describe("blobs", () => {
  it("removes a link nothing references after the grace, then sweeps the blob", async () => {
    const repo = uniqueRepo("gc");
    const bytes = randomBytes(3000);
    const digest = await pushBlob(repo, bytes);
    advance(GRACE_MS + 1);
    await collect(repo);
    expect(await blobStatus(repo, digest)).toBe(404);
    advance(GRACE_MS + 1);
    await sweep(digest);
    expect(await blobRecord(digest)).toBeNull();
  });

  it("revives a blob uploaded again before the sweep", async () => {
    const first = uniqueRepo("gc");
    const second = uniqueRepo("gc");
    const bytes = randomBytes(3000);
    const digest = await pushBlob(first, bytes);
    advance(GRACE_MS + 1);
    await collect(first);
    expect(await blobRecord(digest)).toMatchObject({ links: 0 });

    advance(GRACE_MS - 1000);
    await pushBlob(second, bytes);
    advance(GRACE_MS);
    await sweep(digest);
    expect(await blobRecord(digest)).toMatchObject({ links: 1, collectableAt: null });
    expect(await pullBlob(second, digest)).toEqual(bytes);
  });

  it("stores a new copy of a blob uploaded after it was swept", async () => {
    const repo = uniqueRepo("gc");
    const bytes = randomBytes(3000);
    const digest = await pushBlob(repo, bytes);
    const oldKey = (await blobRecord(digest))!.copies[0]!.key;
    advance(GRACE_MS + 1);
    await collect(repo);
    advance(GRACE_MS + 1);
    await sweep(digest);
    expect(await blobRecord(digest)).toBeNull();

    await pushBlob(repo, bytes);
    const record = await blobRecord(digest);
    expect(record?.copies[0]?.key).not.toBe(oldKey);
    expect(await pullBlob(repo, digest)).toEqual(bytes);
  });

  it("expires an abandoned upload session with its bytes, never one a writer holds", async () => {
    const repo = uniqueRepo("gc");
    const start = await api(`/v2/${repo}/blobs/uploads/`, { method: "POST" });
    const location = start.headers.get("Location")!;
    const id = location.split("/").at(-1)!;
    expect((await api(location, { method: "PATCH", body: randomBytes(5000) })).status).toBe(202);
    const stub = repository(repo);
    // A writer (a finishing PUT) holds the lease when the session's time runs out.
    const write = await stub.beginUploadWrite(id, null);
    expect(write.ok).toBe(true);
    const key = write.ok ? write.session.key : "";
    await runInDurableObject(stub, (_object: RepositoryObject, state) => {
      state.storage.sql.exec("UPDATE uploads SET expires_at = 0 WHERE id = ?", id);
    });
    await collect(repo);
    expect(await env.BLOBS.head(key)).not.toBeNull();
    expect((await stub.getUpload(id)).ok).toBe(true);
    // Abandoned: the writer never came back; once its lease lapses the session goes.
    advance(31 * 60 * 1000);
    await collect(repo);
    expect((await stub.getUpload(id)).ok).toBe(false);
    expect(await env.BLOBS.head(key)).toBeNull();
  });

  it("keeps a blob another repository still references", async () => {
    const a = uniqueRepo("gc");
    const b = uniqueRepo("gc");
    const shared = randomBytes(4000);
    const imageA = await pushImage(a, { layers: [shared] });
    await pushImage(b, { tag: "v1", layers: [shared] });
    const layer = imageA.layers[0]!;
    advance(GRACE_MS + 1);
    await collect(a);
    await collect(b);
    expect(await hasManifest(a, imageA.digest)).toBe(false);
    expect(await blobStatus(a, layer)).toBe(404);
    expect(await blobRecord(layer)).toMatchObject({ refcount: 1, links: 1, collectableAt: null });
    advance(2 * GRACE_MS);
    await sweep(layer);
    expect(await pullBlob(b, layer)).toEqual(shared);
  });
});

describe("races", () => {
  it("push after a long wait: the link R holds keeps the blob, whatever its age", async () => {
    const repo = uniqueRepo("gc");
    const config = new TextEncoder().encode('{"architecture":"amd64","os":"linux"}');
    const layer = randomBytes(2000);
    const configDigest = await pushBlob(repo, config);
    const layerDigest = await pushBlob(repo, layer);
    // The shard sweeps, the repository's collector has not run: the link still counts.
    advance(3 * GRACE_MS);
    await sweep(layerDigest);
    expect(await blobRecord(layerDigest)).toMatchObject({ links: 1, collectableAt: null });
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config: { mediaType: MediaTypes.ociConfig, digest: configDigest, size: config.byteLength },
      layers: [{ mediaType: MediaTypes.ociLayer, digest: layerDigest, size: layer.byteLength }],
    });
    expect((await putManifest(repo, "v1", manifest)).status).toBe(201);
    await collect(repo);
    advance(3 * GRACE_MS);
    await sweep(layerDigest);
    expect(await pullBlob(repo, layerDigest)).toEqual(layer);
  });

  it("push after the link was collected: MANIFEST_BLOB_UNKNOWN and nothing committed", async () => {
    const repo = uniqueRepo("gc");
    const config = new TextEncoder().encode('{"architecture":"arm64","os":"linux"}');
    const configDigest = await pushBlob(repo, config);
    await pushImage(repo, { tag: "keep" });
    advance(GRACE_MS + 1);
    await collect(repo);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config: { mediaType: MediaTypes.ociConfig, digest: configDigest, size: config.byteLength },
      layers: [],
    });
    await expectError(await putManifest(repo, "v1", manifest), 404, "MANIFEST_BLOB_UNKNOWN");
    expect(await hasManifest(repo, await sha256(manifest))).toBe(false);
    const tags = (await (await api(`/v2/${repo}/tags/list`)).json()) as { tags: string[] };
    expect(tags.tags).toEqual(["keep"]);
    expect(await blobRecord(configDigest)).toMatchObject({ refcount: 0, links: 0 });
  });

  it("mount vs sweep: a claim after the sweep is refused; one before it revives", async () => {
    const source = uniqueRepo("gc");
    const target = uniqueRepo("gc");
    const bytes = randomBytes(2500);
    const digest = (await pushBlob(source, bytes)) as Digest;
    // The Worker read the source's link, then the source's collector and the sweep ran.
    const stale = (await repository(source).getBlob(digest))!;
    advance(GRACE_MS + 1);
    await collect(source);

    // Inside the blob's grace: the mount's claim revives it.
    const early = await repository(target).linkBlob(stale);
    expect(early.ok).toBe(true);
    advance(3 * GRACE_MS);
    await sweep(digest);
    expect(await pullBlob(target, digest)).toEqual(bytes);

    // Past it: once the target lets go too, the blob is swept, and a late claim is refused.
    const late = uniqueRepo("gc");
    await collect(target);
    advance(GRACE_MS + 1);
    await sweep(digest);
    expect(await blobRecord(digest)).toBeNull();
    const refused = await repository(late).linkBlob(stale);
    expect(refused).toMatchObject({ ok: false, code: "BLOB_UNKNOWN" });
    expect(await repository(late).getBlob(digest)).toBeNull();
    expect(await blobRecord(digest)).toBeNull();
    // Through the API the mount falls back to an upload session (202).
    const mount = await api(`/v2/${late}/blobs/uploads/?mount=${digest}&from=${source}`, {
      method: "POST",
    });
    expect(mount.status).toBe(202);
  });

  it("upload of an existing digest vs sweep: its revive holds the blob until its claim", async () => {
    const first = uniqueRepo("gc");
    const second = uniqueRepo("gc");
    const bytes = randomBytes(1800);
    const digest = (await pushBlob(first, bytes)) as Digest;
    advance(GRACE_MS + 1);
    await collect(first);
    // Past the blob's grace: the next sweep would take it.
    advance(GRACE_MS + 1);
    // The upload found the stored copy (and revived it); a sweep runs before its link claim.
    expect(await shard(digest).revive(digest)).toMatchObject({
      collectableAt: Date.now() + GRACE_MS,
    });
    await sweep(digest);
    expect(await blobRecord(digest)).not.toBeNull();
    await pushBlob(second, bytes);
    expect(await blobRecord(digest)).toMatchObject({ links: 1, collectableAt: null });
    expect(await pullBlob(second, digest)).toEqual(bytes);
  });

  it("two concurrent mounts of one blob count one link", async () => {
    const source = uniqueRepo("gc");
    const target = uniqueRepo("gc");
    const digest = (await pushBlob(source, randomBytes(900))) as Digest;
    const link = (await repository(source).getBlob(digest))!;
    const results = await Promise.all([
      repository(target).linkBlob(link),
      repository(target).linkBlob(link),
      repository(target).linkBlob(link),
    ]);
    expect(results.every((result) => result.ok)).toBe(true);
    expect(await blobRecord(digest)).toMatchObject({ links: 2 });
  });

  it("a delta redelivered is applied once; a claim taken back before it arrives never counts", async () => {
    const digest = `sha256:${"cd".repeat(32)}` as Digest;
    const refs = shard(digest);
    await refs.registerCopy(digest, 10, "primary", "test/claims");
    expect(await refs.claimLink(digest, "test/other-key", crypto.randomUUID())).toEqual({
      granted: false,
    });
    const claim = crypto.randomUUID();
    expect(await refs.claimLink(digest, "test/claims", claim)).toEqual({ granted: true });
    const undo = { id: crypto.randomUUID(), digest, delta: -1 as const, kind: "link" as const };
    await refs.applyDeltas([{ ...undo, undoes: claim }]);
    await refs.applyDeltas([{ ...undo, undoes: claim }]);
    expect(await refs.get(digest)).toMatchObject({ links: 0 });

    const early = crypto.randomUUID();
    await refs.applyDeltas([{ ...undo, id: crypto.randomUUID(), undoes: early }]);
    expect(await refs.claimLink(digest, "test/claims", early)).toEqual({ granted: false });
    expect(await refs.get(digest)).toMatchObject({ links: 0 });
  });

  it("a claim whose object died before settling is taken back when it restarts", async () => {
    const repo = uniqueRepo("gc");
    const holder = uniqueRepo("gc");
    const digest = (await pushBlob(holder, randomBytes(700))) as Digest;
    const link = (await repository(holder).getBlob(digest))!;
    const orphan = crypto.randomUUID();
    // The claim row was committed and the shard granted it; then the object died.
    await runInDurableObject(repository(repo), (_object: RepositoryObject, state) => {
      state.storage.sql.exec(
        "INSERT INTO gc_claims (id, digest, created_at) VALUES (?, ?, ?)",
        orphan,
        digest,
        Date.now(),
      );
    });
    expect(await shard(digest).claimLink(digest, link.key, orphan)).toEqual({ granted: true });
    expect(await blobRecord(digest)).toMatchObject({ links: 2 });
    // What the constructor does on restart, then the delivery the alarm makes.
    await runInDurableObject(repository(repo), async (object: RepositoryObject) => {
      const internals = object as unknown as {
        gc: { recoverClaims(now: number): number };
        flushRefDeltas(): Promise<void>;
      };
      expect(internals.gc.recoverClaims(Date.now())).toBe(1);
      await internals.flushRefDeltas();
    });
    expect(await blobRecord(digest)).toMatchObject({ links: 1 });
  });

  it("a sweep interrupted after marking finishes on the next alarm", async () => {
    const repo = uniqueRepo("gc");
    const digest = await pushBlob(repo, randomBytes(1200));
    const key = (await blobRecord(digest))!.copies[0]!.key;
    advance(GRACE_MS + 1);
    await collect(repo);
    advance(GRACE_MS + 1);
    await runInDurableObject(shard(digest), async (object: BlobRefObject) => {
      const holder = object as unknown as { env: ObjectEnv };
      const real = holder.env;
      const failing = {
        delete: async () => {
          throw new Error("R2 unavailable");
        },
      } as unknown as R2Bucket;
      holder.env = { ...real, BLOBS: failing };
      try {
        await object.alarm();
      } finally {
        holder.env = real;
      }
    });
    // Marked: gone for the registry (no claim, no revive can take it back), bytes still there.
    expect(await blobRecord(digest)).toBeNull();
    expect(await env.BLOBS.head(key)).not.toBeNull();
    expect(await sweep(digest)).toBe(true);
    expect(await env.BLOBS.head(key)).toBeNull();
  });
});
