// GET /api/v1/repositories/<name>/manifests/<digest>/retention: garbage collection explains why it
// keeps a manifest, rule by rule, and when only time keeps it, when it becomes collectable.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeUser } from "./api-helpers.ts";
import {
  advance,
  collect,
  DEFAULT_RETENTION_MS,
  freezeClock,
  GRACE_MS,
  releaseClock,
} from "./gc-fixtures.ts";
import { api, MediaTypes, pushImage, putManifest, sha256, uniqueRepo } from "./helpers.ts";

beforeAll(freezeClock);
afterAll(releaseClock);

interface RetentionBody {
  digest: string;
  kept: boolean;
  keptBy: {
    tags: string[];
    parents: string[];
    subject: string | null;
    historyUntil: string | null;
    pushGraceUntil: string | null;
  };
  collectableAt: string | null;
}

function retention(repo: string, digest: string, authorization?: string): Promise<Response> {
  return api(`/api/v1/repositories/${repo}/manifests/${digest}/retention`, {
    headers: authorization ? { Authorization: authorization } : {},
  });
}

async function explain(repo: string, digest: string): Promise<RetentionBody> {
  const res = await retention(repo, digest);
  expect(res.status).toBe(200);
  return (await res.json()) as RetentionBody;
}

async function pushIndex(repo: string, child: string, size: number, tag: string): Promise<string> {
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaTypes.ociIndex,
    manifests: [{ mediaType: MediaTypes.ociManifest, digest: child, size }],
  });
  expect((await putManifest(repo, tag, body, MediaTypes.ociIndex)).status).toBe(201);
  return sha256(body);
}

describe("manifest retention", () => {
  it("names the tags and indexes that keep a manifest, then the time that keeps it", async () => {
    const repo = uniqueRepo("retention");
    const image = await pushImage(repo, { tag: "v1" });
    const index = await pushIndex(repo, image.digest, image.manifest.byteLength, "multi");
    const pushedAt = Date.now();

    expect(await explain(repo, image.digest)).toEqual({
      digest: image.digest,
      kept: true,
      keptBy: {
        tags: ["v1"],
        parents: [index],
        subject: null,
        historyUntil: null,
        pushGraceUntil: new Date(pushedAt + GRACE_MS).toISOString(),
      },
      collectableAt: null,
    });

    // Untagged and no longer listed: only the tag's history and the push grace keep it.
    expect((await api(`/v2/${repo}/manifests/v1`, { method: "DELETE" })).status).toBe(202);
    expect((await api(`/v2/${repo}/manifests/${index}`, { method: "DELETE" })).status).toBe(202);
    const timed = await explain(repo, image.digest);
    const historyUntil = new Date(pushedAt + DEFAULT_RETENTION_MS).toISOString();
    expect(timed).toMatchObject({
      kept: true,
      keptBy: { tags: [], parents: [], subject: null, historyUntil },
      collectableAt: historyUntil,
    });
    // The collector agrees: it keeps the manifest until then, and collects it after.
    await collect(repo);
    expect((await retention(repo, image.digest)).status).toBe(200);
    advance(DEFAULT_RETENTION_MS + 1);
    await collect(repo);
    expect((await retention(repo, image.digest)).status).toBe(404);
  });

  it("shows a manifest pushed by digest as kept by its push grace alone", async () => {
    const repo = uniqueRepo("retention");
    const image = await pushImage(repo);
    const graceUntil = new Date(Date.now() + GRACE_MS).toISOString();
    expect(await explain(repo, image.digest)).toMatchObject({
      kept: true,
      keptBy: { tags: [], parents: [], historyUntil: null, pushGraceUntil: graceUntil },
      collectableAt: graceUntil,
    });
  });

  it("refuses who cannot pull the repository, and unknown or malformed digests", async () => {
    const repo = uniqueRepo("retention");
    const image = await pushImage(repo, { tag: "v1" });
    const stranger = await makeUser();
    const denied = await retention(repo, image.digest, `Bearer ${stranger.token}`);
    expect(denied.status).toBe(404);
    expect(await denied.text()).not.toContain("v1");
    const unknown = `sha256:${"0".repeat(64)}`;
    expect((await retention(repo, unknown)).status).toBe(404);
    expect((await retention(repo, "sha256:nothex")).status).toBe(400);
    expect((await retention(repo, image.digest, "Basic bm90OnJpZ2h0")).status).toBe(401);
  });
});
