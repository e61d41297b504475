// Measures, on workerd, what the tag lifecycle adds to a push: (1) a tagged putManifest in a
// repository holding 1,000 tags, without a policy and with 50 immutability rules plus a
// keep-count and an older-than prune rule (checked and applied on every push); (2) a whole
// tagged image manifest PUT whose config is read for `quay.expires-after`, against one whose
// config type is not an image's (not read). Run with
// `npx vitest run --config vitest.measure.config.ts test/measure/tag-lifecycle.measure.ts`.
// It reports figures and asserts only that the work happened.
import { env } from "cloudflare:test";
import { expect, it } from "vitest";
import type { LifecyclePolicy } from "../../schema/lifecycle.ts";
import type { Digest } from "../../schema/oci/reference.ts";
import type { PutManifestInput } from "../../schema/rpc.ts";
import { api, pushBlob, sha256, uniqueRepo } from "../integration/helpers.ts";

const TAGS = 1000;
const PUSHES = 300;
const LABEL_PUSHES = 100;

function report(label: string, started: number, calls: number): number {
  const micros = ((performance.now() - started) * 1000) / calls;
  console.log(`${label.padEnd(64)} ${micros.toFixed(0).padStart(7)} µs`);
  return micros;
}

/** A manifest with no blobs (an index of nothing): the object stores it without blob checks. */
async function emptyIndex(n: number): Promise<PutManifestInput> {
  const body = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [],
      annotations: { n: String(n) },
    }),
  );
  return {
    digest: (await sha256(body)) as Digest,
    mediaType: "application/vnd.oci.image.index.v1+json",
    body,
    blobs: [],
    children: [],
  };
}

async function tagPushes(policy: LifecyclePolicy | null): Promise<number> {
  const repo = uniqueRepo("measure");
  const stub = env.REPOSITORY.getByName(repo);
  const manifests = await Promise.all(
    Array.from({ length: TAGS + PUSHES }, (_, i) => emptyIndex(i)),
  );
  for (let i = 0; i < TAGS; i++) {
    await stub.putManifest({ ...manifests[i]!, tag: `t${i}` });
  }
  if (policy) await stub.setPolicy({ ...policy, repository: repo });
  const started = performance.now();
  for (let i = 0; i < PUSHES; i++) {
    // Each push moves one existing tag (the immutability check has a current row to look at).
    const result = await stub.putManifest({ ...manifests[TAGS + i]!, tag: `t${i}` });
    expect(result.ok).toBe(true);
  }
  return report(
    `putManifest, ${TAGS} tags, ${policy ? "50 immutability rules + 2 prune rules" : "no policy"}`,
    started,
    PUSHES,
  );
}

it("reports the cost of lifecycle checks on a tag push", async () => {
  const bare = await tagPushes(null);
  const policy: LifecyclePolicy = {
    repository: "",
    namespace: "measure",
    revision: 1,
    retentionMs: 14 * 86_400_000,
    immutableTags: Array.from({ length: 50 }, (_, i) => `release-${i}.*`),
    prune: [
      { id: "count", kind: "keep-count", count: 5000, tagPattern: null },
      { id: "age", kind: "older-than", olderThanMs: 30 * 86_400_000, tagPattern: "t*" },
    ],
  };
  const withPolicy = await tagPushes(policy);
  console.log(
    `${"lifecycle cost per tag push".padEnd(64)} ${(withPolicy - bare).toFixed(0).padStart(7)} µs`,
  );
});

/** Pushes an image's blobs (untimed) and returns its manifest bytes. */
async function imageManifest(repo: string, configMediaType: string): Promise<Uint8Array> {
  const config = new TextEncoder().encode(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Labels: { "quay.expires-after": "2d" } },
      nonce: crypto.randomUUID(),
    }),
  );
  const layer = crypto.getRandomValues(new Uint8Array(256));
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: configMediaType,
      digest: await pushBlob(repo, config),
      size: config.length,
    },
    layers: [
      {
        mediaType: "application/vnd.oci.image.layer.v1.tar",
        digest: await pushBlob(repo, layer),
        size: layer.length,
      },
    ],
  };
  return new TextEncoder().encode(JSON.stringify(manifest));
}

it("reports the cost of reading the quay.expires-after label at push time", async () => {
  const repo = uniqueRepo("measure");
  const timed = async (label: string, configMediaType: string) => {
    let total = 0;
    for (let i = 0; i < LABEL_PUSHES; i++) {
      const body = await imageManifest(repo, configMediaType);
      const started = performance.now();
      const res = await api(`/v2/${repo}/manifests/${label.replaceAll(" ", "-")}-${i}`, {
        method: "PUT",
        body,
        headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" },
      });
      total += performance.now() - started;
      expect(res.status, await res.text()).toBe(201);
    }
    const micros = (total * 1000) / LABEL_PUSHES;
    console.log(
      `${`tagged manifest PUT, ${label}`.padEnd(64)} ${micros.toFixed(0).padStart(7)} µs`,
    );
    return micros;
  };
  // Alternated twice, so warm-up and drift do not favour either side.
  const notRead = [await timed("config not read", "application/vnd.example.config.v1+json")];
  const read = [await timed("label read", "application/vnd.oci.image.config.v1+json")];
  notRead.push(await timed("config not read", "application/vnd.example.config.v1+json"));
  read.push(await timed("label read", "application/vnd.oci.image.config.v1+json"));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(
    `${"label read per tagged image push".padEnd(64)} ${(mean(read) - mean(notRead)).toFixed(0).padStart(7)} µs`,
  );
});
