// Garbage collection under randomized interleavings (docs/garbage-collection.md): rounds of
// concurrent pushes (blobs, images, indexes, referrers), mounts, tag moves and deletes, manifest
// deletes, and driven alarms of repositories and shards, across three repositories sharing
// layers, with the clock moved between rounds. After every round: no manifest a rule keeps is
// gone, and every blob a stored manifest or link shows is in R2. After every block of rounds,
// once grace and retention have passed: exactly the kept manifests remain, counts are exact,
// reachable blobs read back through the registry, and everything else is gone from the shards
// and from the bucket. The seed is printed on failure; set REPLAY_SEED to replay it (the same
// operations on the same blobs; how concurrent calls interleave inside the objects may differ).
import { env, runDurableObjectAlarm } from "cloudflare:test";
import { afterAll, beforeAll, expect, it } from "vitest";
import { RegistryError } from "../../schema/oci/errors.ts";
import type { Digest, Reference, RepositoryName, Tag } from "../../schema/oci/reference.ts";
import { registryServices } from "../../workers/registry/services/registry-services.ts";
import {
  advance,
  blobRecord,
  DAY_MS,
  freezeClock,
  GRACE_MS,
  type RepositoryState,
  releaseClock,
  repository,
  repositoryState,
  setRetention,
  shard,
} from "./gc-fixtures.ts";
import { EMPTY_JSON, EMPTY_JSON_DIGEST, MediaTypes, pullBlob, sha256 } from "./helpers.ts";

const REPLAY_SEED: number | null = null;
const ROUNDS = 1000;
const ROUNDS_PER_BLOCK = 100;
const TAGS = ["a", "b", "c"];

beforeAll(freezeClock);
afterAll(releaseClock);

/** mulberry32: small, fast, and the same sequence for the same seed. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Blob {
  digest: string;
  bytes: Uint8Array;
}

interface Pushed {
  digest: string;
  body: string;
  mediaType: string;
}

/** What the test knows that the objects do not tell: pushes, client deletes, the policy. */
interface RepoModel {
  name: string;
  retentionMs: number;
  /** Images pushed here (candidates for index children and subjects). */
  images: Pushed[];
  pushedAt: Map<string, number>;
  /** Deleted by the client (not by GC) and not pushed since: no rule keeps these. */
  clientDeleted: Set<string>;
}

class Round {
  readonly log: string[] = [];
  readonly pushed = new Map<string, Set<string>>();
  readonly deleted = new Map<string, Set<string>>();

  constructor(
    readonly rng: () => number,
    readonly repos: RepoModel[],
    readonly pool: { configs: Blob[]; layers: Blob[] },
  ) {}

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.rng() * items.length)]!;
  }

  note(repo: RepoModel, what: "pushed" | "deleted", digest: string): void {
    const map = what === "pushed" ? this.pushed : this.deleted;
    const set = map.get(repo.name) ?? new Set<string>();
    set.add(digest);
    map.set(repo.name, set);
  }
}

const encoder = new TextEncoder();

/** The registry's services as one request builds them, for a superuser whose events are dropped. */
const services = registryServices(env, {
  principal: { kind: "user", id: "gc-interleavings", name: "gc-interleavings", superuser: true },
  events: { emit() {} },
});

function parseReference(reference: string): Reference {
  return reference.startsWith("sha256:")
    ? { kind: "digest", digest: reference as Digest }
    : { kind: "tag", tag: reference as Tag };
}

/**
 * Like a client: HEAD, then a mount from another repository, else an upload (what a 202 to the
 * mount asks for). Through the registry's own services, below HTTP: the requests' routing and
 * authentication decide nothing here, and skipping them makes a thousand rounds affordable.
 */
async function ensureBlob(round: Round, repo: RepoModel, blob: Blob): Promise<void> {
  const name = repo.name as RepositoryName;
  const digest = blob.digest as Digest;
  if (await services.blobs.stat(name, digest).catch(unless("BLOB_UNKNOWN"))) return;
  if (round.rng() < 0.4) {
    const from = round.pick(round.repos.filter((other) => other !== repo));
    round.log.push(`mount ${repo.name} <- ${from.name} ${blob.digest.slice(7, 15)}`);
    if (await services.uploads.mount(name, from.name as RepositoryName, digest)) return;
  }
  round.log.push(`upload ${repo.name} ${blob.digest.slice(7, 15)}`);
  await services.uploads.monolithic(
    name,
    digest,
    new Response(blob.bytes).body!,
    blob.bytes.length,
  );
}

/** Turns an expected registry error into null; anything else still fails the round. */
function unless(code: string): (error: unknown) => null {
  return (error) => {
    if (error instanceof RegistryError && error.code === code) return null;
    throw error;
  };
}

async function putManifest(
  round: Round,
  repo: RepoModel,
  json: Record<string, unknown>,
  mediaType: string,
): Promise<Pushed | null> {
  const body = JSON.stringify(json);
  const digest = await sha256(body);
  const tagged = round.rng() < 0.6;
  const reference = tagged ? round.pick(TAGS) : digest;
  round.log.push(`PUT ${repo.name} ${reference} ${digest.slice(7, 15)}`);
  // A link or child collected between the client's check and the push: refused, spec-shaped.
  const pushed = await services.manifests
    .put(repo.name as RepositoryName, parseReference(reference), encoder.encode(body), mediaType)
    .catch(unless("MANIFEST_BLOB_UNKNOWN"));
  if (!pushed) return null;
  repo.pushedAt.set(digest, Date.now());
  round.note(repo, "pushed", digest);
  return { digest, body, mediaType };
}

function descriptor(pushed: Pushed) {
  return { mediaType: pushed.mediaType, digest: pushed.digest, size: pushed.body.length };
}

const operations: { weight: number; run: (round: Round) => Promise<void> }[] = [
  {
    weight: 30, // an image: config and layers (shared with the other repositories), then manifest
    async run(round) {
      const repo = round.pick(round.repos);
      const config = round.pick(round.pool.configs);
      const layers = [...new Set([round.pick(round.pool.layers), round.pick(round.pool.layers)])];
      for (const blob of [config, ...layers]) await ensureBlob(round, repo, blob);
      const pushed = await putManifest(
        round,
        repo,
        {
          schemaVersion: 2,
          mediaType: MediaTypes.ociManifest,
          config: {
            mediaType: MediaTypes.ociConfig,
            digest: config.digest,
            size: config.bytes.length,
          },
          layers: layers.map((layer) => ({
            mediaType: MediaTypes.ociLayer,
            digest: layer.digest,
            size: layer.bytes.length,
          })),
          annotations: { variant: String(Math.floor(round.rng() * 4)) },
        },
        MediaTypes.ociManifest,
      );
      if (pushed) repo.images.push(pushed);
    },
  },
  {
    weight: 10, // an index over images pushed here (which may have been collected meanwhile)
    async run(round) {
      const repo = round.pick(round.repos);
      if (repo.images.length === 0) return;
      const children = [...new Set([round.pick(repo.images), round.pick(repo.images)])];
      await putManifest(
        round,
        repo,
        {
          schemaVersion: 2,
          mediaType: MediaTypes.ociIndex,
          manifests: children.map(descriptor),
          annotations: { variant: String(Math.floor(round.rng() * 2)) },
        },
        MediaTypes.ociIndex,
      );
    },
  },
  {
    weight: 10, // a referrer (a signature) of an image pushed here
    async run(round) {
      const repo = round.pick(round.repos);
      if (repo.images.length === 0) return;
      const subject = round.pick(repo.images);
      const layer = round.pick(round.pool.layers);
      await ensureBlob(round, repo, { digest: EMPTY_JSON_DIGEST, bytes: EMPTY_JSON });
      await ensureBlob(round, repo, layer);
      await putManifest(
        round,
        repo,
        {
          schemaVersion: 2,
          mediaType: MediaTypes.ociManifest,
          artifactType: "application/vnd.example.signature",
          config: { mediaType: MediaTypes.ociEmpty, digest: EMPTY_JSON_DIGEST, size: 2 },
          layers: [
            { mediaType: MediaTypes.ociLayer, digest: layer.digest, size: layer.bytes.length },
          ],
          subject: descriptor(subject),
          annotations: { variant: String(Math.floor(round.rng() * 2)) },
        },
        MediaTypes.ociManifest,
      );
    },
  },
  {
    weight: 12, // a tag delete
    async run(round) {
      const repo = round.pick(round.repos);
      const tag = round.pick(TAGS);
      round.log.push(`DELETE ${repo.name}:${tag}`);
      await services.manifests
        .delete(repo.name as RepositoryName, parseReference(tag))
        .catch(unless("MANIFEST_UNKNOWN"));
    },
  },
  {
    weight: 8, // a manifest delete by the client
    async run(round) {
      const repo = round.pick(round.repos);
      if (repo.images.length === 0) return;
      const { digest } = round.pick(repo.images);
      round.log.push(`DELETE ${repo.name}@${digest.slice(7, 15)}`);
      const deleted = await services.manifests
        .delete(repo.name as RepositoryName, parseReference(digest))
        .then(() => true)
        .catch(unless("MANIFEST_UNKNOWN"));
      if (deleted) round.note(repo, "deleted", digest);
    },
  },
  {
    weight: 8, // a blob uploaded or mounted and never referenced (yet)
    async run(round) {
      const repo = round.pick(round.repos);
      const blob = round.pick([...round.pool.layers, ...round.pool.configs]);
      round.log.push(`blob ${repo.name} ${blob.digest.slice(7, 15)}`);
      await ensureBlob(round, repo, blob);
    },
  },
  {
    weight: 12, // a repository's alarm: collection and delta delivery
    async run(round) {
      const repo = round.pick(round.repos);
      round.log.push(`alarm ${repo.name}`);
      await runDurableObjectAlarm(repository(repo.name));
    },
  },
  {
    weight: 10, // a shard's alarm: the sweep
    async run(round) {
      const blob = round.pick([...round.pool.layers, ...round.pool.configs]);
      round.log.push(`sweep ${blob.digest.slice(7, 15)}`);
      await runDurableObjectAlarm(shard(blob.digest));
    },
  },
];
const TOTAL_WEIGHT = operations.reduce((sum, op) => sum + op.weight, 0);

function pickOperation(rng: () => number) {
  let at = rng() * TOTAL_WEIGHT;
  for (const op of operations) {
    at -= op.weight;
    if (at < 0) return op;
  }
  return operations.at(-1)!;
}

/** The manifests the rules keep, from the object's own tables and what the test pushed. */
function keptManifests(repo: RepoModel, state: RepositoryState, now: number): Set<string> {
  const roots = new Set<string>();
  for (const tag of state.tags) {
    if (tag.end_ms === null || tag.end_ms + repo.retentionMs > now) roots.add(tag.digest);
  }
  for (const [digest, at] of repo.pushedAt) if (at + GRACE_MS > now) roots.add(digest);
  const stored = new Set(state.manifests.map((m) => m.digest));
  const kept = new Set<string>();
  const queue = [...roots].filter((digest) => !repo.clientDeleted.has(digest));
  while (queue.length > 0) {
    const digest = queue.pop()!;
    if (kept.has(digest)) continue;
    kept.add(digest);
    if (!stored.has(digest)) continue;
    for (const ref of state.refs) {
      if (ref.manifest === digest && ref.kind === "manifest") queue.push(ref.target);
    }
    for (const m of state.manifests) if (m.subject === digest) queue.push(m.digest);
  }
  for (const digest of repo.clientDeleted) kept.delete(digest);
  return kept;
}

async function bucketKeys(): Promise<Set<string>> {
  const keys = new Set<string>();
  let cursor: string | undefined;
  do {
    const page = await env.BLOBS.list(cursor ? { cursor } : {});
    for (const object of page.objects) keys.add(object.key);
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return keys;
}

/** After every round: nothing kept is gone, nothing shown points at missing bytes. */
async function checkSafety(repos: RepoModel[]): Promise<void> {
  const keys = await bucketKeys();
  const now = Date.now();
  for (const repo of repos) {
    const state = await repositoryState(repo.name);
    const stored = new Set(state.manifests.map((m) => m.digest));
    for (const digest of keptManifests(repo, state, now)) {
      if (!stored.has(digest)) throw new Error(`${repo.name}: kept manifest ${digest} is gone`);
    }
    const links = new Map(state.links.map((link) => [link.digest, link.r2_key]));
    for (const ref of state.refs) {
      if (ref.kind === "blob" && !links.has(ref.target)) {
        throw new Error(`${repo.name}: manifest ${ref.manifest} lists unlinked ${ref.target}`);
      }
    }
    for (const [digest, key] of links) {
      if (!keys.has(key)) throw new Error(`${repo.name}: link ${digest} points at deleted ${key}`);
    }
  }
}

/** After a block, once every grace and window has passed: only what is kept remains. */
async function checkQuiescent(
  repos: RepoModel[],
  pool: Blob[],
  byDigest: Map<string, Blob>,
): Promise<void> {
  advance(Math.max(...repos.map((repo) => repo.retentionMs)) + 2 * GRACE_MS + 1000);
  for (const repo of repos) await runDurableObjectAlarm(repository(repo.name));
  advance(GRACE_MS + 1000);
  for (const blob of pool) await runDurableObjectAlarm(shard(blob.digest));

  const now = Date.now();
  const refs = new Map<string, number>();
  const linkedIn = new Map<string, string[]>();
  for (const repo of repos) {
    const state = await repositoryState(repo.name);
    const stored = state.manifests.map((m) => m.digest).sort();
    expect(stored, `${repo.name}: stored manifests are exactly the kept ones`).toEqual(
      [...keptManifests(repo, state, now)].sort(),
    );
    const referenced = new Set<string>();
    for (const ref of state.refs) {
      if (ref.kind !== "blob") continue;
      referenced.add(ref.target);
      refs.set(ref.target, (refs.get(ref.target) ?? 0) + 1);
    }
    expect(state.links.map((link) => link.digest).sort(), `${repo.name}: links`).toEqual(
      [...referenced].sort(),
    );
    for (const digest of referenced)
      linkedIn.set(digest, [...(linkedIn.get(digest) ?? []), repo.name]);
  }
  const liveKeys = new Set<string>();
  for (const blob of pool) {
    const record = await blobRecord(blob.digest);
    const holders = linkedIn.get(blob.digest);
    if (!holders) {
      expect(record, `unreachable ${blob.digest} is swept`).toBeNull();
      continue;
    }
    expect(record, `counts of ${blob.digest}`).toMatchObject({
      refcount: refs.get(blob.digest),
      links: holders.length,
      collectableAt: null,
    });
    for (const copy of record!.copies) liveKeys.add(copy.key);
    const bytes = await pullBlob(holders[0]!, blob.digest);
    expect(bytes.byteLength).toBe(byDigest.get(blob.digest)!.bytes.byteLength);
    expect(await sha256(bytes)).toBe(blob.digest);
  }
  expect([...(await bucketKeys())].sort(), "the bucket holds exactly the live copies").toEqual(
    [...liveKeys].sort(),
  );

  // The block's repositories go; then nothing of theirs may remain anywhere.
  for (const repo of repos) await repository(repo.name).deleteAll();
  advance(GRACE_MS + 1000);
  for (const blob of pool) await runDurableObjectAlarm(shard(blob.digest));
  for (const blob of pool) expect(await blobRecord(blob.digest)).toBeNull();
  expect([...(await bucketKeys())], "the bucket is empty").toEqual([]);
}

/** Bytes from the seeded generator, so a replay pushes the same blobs to the same shards. */
function seededBytes(rng: () => number, size: number): Uint8Array {
  return Uint8Array.from({ length: size }, () => Math.floor(rng() * 256));
}

async function blobOf(bytes: Uint8Array): Promise<Blob> {
  return { digest: await sha256(bytes), bytes };
}

it(`keeps what is kept and collects the rest over ${ROUNDS} interleavings`, {
  timeout: 180_000,
}, async () => {
  const seed = REPLAY_SEED ?? Math.floor(Math.random() * 2 ** 31);
  const rng = prng(seed);
  let roundNumber = 0;
  let log: string[] = [];
  try {
    expect([...(await bucketKeys())]).toEqual([]);
    for (let block = 0; roundNumber < ROUNDS; block++) {
      const repos: RepoModel[] = [0, 1, 2].map((i) => ({
        name: `gcmix/s${seed}-b${block}-r${i}`,
        retentionMs: rng() < 0.5 ? 0 : DAY_MS,
        images: [],
        pushedAt: new Map(),
        clientDeleted: new Set(),
      }));
      for (const repo of repos) await setRetention(repo.name, repo.retentionMs);
      const configs = await Promise.all(
        [0, 1].map((i) =>
          blobOf(new TextEncoder().encode(JSON.stringify({ os: "linux", block, i, seed }))),
        ),
      );
      const layers = await Promise.all(
        [0, 1, 2, 3, 4].map(() => blobOf(seededBytes(rng, 64 + Math.floor(rng() * 600)))),
      );
      const emptyJson = await blobOf(EMPTY_JSON);
      const pool = [...configs, ...layers, emptyJson];
      const byDigest = new Map(pool.map((blob) => [blob.digest, blob]));

      for (let i = 0; i < ROUNDS_PER_BLOCK && roundNumber < ROUNDS; i++, roundNumber++) {
        const round = new Round(rng, repos, { configs, layers });
        log = round.log;
        const count = 2 + Math.floor(rng() * 2);
        await Promise.all(Array.from({ length: count }, () => pickOperation(rng).run(round)));
        // A digest pushed and deleted in the same round: the order is unknown, so no rule is
        // required of it until its next push.
        for (const repo of repos) {
          for (const digest of round.deleted.get(repo.name) ?? []) repo.clientDeleted.add(digest);
          for (const digest of round.pushed.get(repo.name) ?? []) {
            if (!round.deleted.get(repo.name)?.has(digest)) repo.clientDeleted.delete(digest);
          }
        }
        await checkSafety(repos);
        const step = rng();
        const ms =
          step < 0.35
            ? 0
            : step < 0.55
              ? 60_000
              : step < 0.7
                ? GRACE_MS / 2
                : step < 0.85
                  ? GRACE_MS + 1
                  : step < 0.95
                    ? 2 * GRACE_MS
                    : DAY_MS + 1;
        advance(ms);
      }
      log = [`end of block ${block}`];
      await checkQuiescent(repos, pool, byDigest);
    }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(
      `GC interleavings failed with seed ${seed} in round ${roundNumber} (replay: REPLAY_SEED = ${seed})\n` +
        `round: ${log.join("; ")}\n${message}`,
      { cause: error },
    );
  }
});
