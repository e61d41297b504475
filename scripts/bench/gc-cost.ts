// What garbage collection costs, with 1× and 10× as much live data stored beside the same
// garbage (issue #5: the work must follow the garbage, not what is stored).
//
//   node scripts/bench/gc-cost.ts [--live=30] [--garbage=30] [--grace=4] [--multipliers=1,10]
//
// For each multiplier m, a fresh registry on workerd (the Worker bundled by wrangler and run
// through Miniflare, as `npm start` runs it, in this process so the bench can read the objects'
// counters over RPC) with a short GC grace:
//   1. live: m × --live tagged images (own config and layer each) in one repository, left until
//      their push and link grace has passed and the collector has examined them (nothing due);
//   2. garbage: --garbage more images in the same repository, tagged, then untagged, with a
//      retention window of 0: after the grace they are garbage, and so are their blobs;
//   3. the window: from the last untag until every garbage manifest, link and blob is gone.
// Measured over the window: candidates examined, SQLite rows read and written by the collector
// and the shards (the objects' own counters, gcStats()), R2 delete calls and keys, and the CPU
// workerd burned (/proc, so it includes everything the collection caused: delta delivery,
// quota triggers, audit events, and the few stats polls). The ratio 10×/1× of each is printed;
// work in proportion to the garbage shows as ratios near 1.0. Wall time of the window is shown
// too, but it is the grace periods (two in a row: manifest, then blob) plus alarm latency.

import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import type { Miniflare } from "miniflare";
import { blobRefShardName } from "../../durable-objects/blob-ref-shards.ts";
import type { RepositoryGcStats, ShardGcStats } from "../../schema/rpc.ts";
import { applyD1Migrations } from "../d1-migrations.ts";
import { ensureLocalSecrets } from "../local-secrets.ts";
import {
  type BundledModule,
  bundleWorker,
  readWranglerWorker,
  startLocalWorker,
  type WranglerWorker,
} from "../local-worker.ts";
import { processCpuSeconds } from "./cpu.ts";
import { findDescendant } from "./registries.ts";

const repoRoot = path.resolve(import.meta.dirname, "../..");
const REPOSITORY = "bench/gc";
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";

const { values: args } = parseArgs({
  options: {
    live: { type: "string", default: "30" },
    garbage: { type: "string", default: "30" },
    grace: { type: "string", default: "4" },
    multipliers: { type: "string", default: "1,10" },
  },
});
const LIVE = Number(args.live);
const GARBAGE = Number(args.garbage);
const GRACE_SECONDS = Number(args.grace);
const MULTIPLIERS = args.multipliers.split(",").map(Number);

interface Measurement {
  multiplier: number;
  liveManifests: number;
  garbageManifests: number;
  examined: number;
  manifestsCollected: number;
  linksRemoved: number;
  blobsSwept: number;
  rowsRead: number;
  rowsWritten: number;
  r2DeleteCalls: number;
  r2KeysDeleted: number;
  workerdCpuMs: number;
  windowSeconds: number;
}

/** What the bench calls on the objects (RPC through Miniflare's proxies). */
interface RepositoryStub {
  gcStats(): Promise<RepositoryGcStats>;
  setPolicy(policy: unknown): Promise<unknown>;
}
interface ShardStub {
  gcStats(): Promise<ShardGcStats>;
}

class Registry {
  readonly mf: Miniflare;
  readonly url: string;
  readonly workerdPid: number;
  readonly stateDir: string;
  private readonly authorization: string;

  private constructor(
    mf: Miniflare,
    url: string,
    authorization: string,
    workerdPid: number,
    stateDir: string,
  ) {
    this.mf = mf;
    this.url = url;
    this.authorization = authorization;
    this.workerdPid = workerdPid;
    this.stateDir = stateDir;
  }

  static async start(
    worker: WranglerWorker,
    modules: BundledModule[],
    stateDir: string,
  ): Promise<Registry> {
    const secrets = await ensureLocalSecrets(path.join(stateDir, ".dev.vars"));
    const local = await startLocalWorker({
      worker,
      modules,
      persistTo: stateDir,
      host: "127.0.0.1",
      port: 0,
      bindings: { ...secrets.values, GC_GRACE_SECONDS: String(GRACE_SECONDS) },
      onLog: (line) => {
        if (line.level === "error") console.error(`worker: ${line.message}`);
      },
    });
    for (const d1 of worker.config.d1_databases) {
      await applyD1Migrations(await local.mf.getD1Database(d1.binding), {
        dir: path.resolve(repoRoot, d1.migrations_dir ?? "migrations"),
      });
    }
    const pid = await findDescendant(process.pid, (p) => p.comm.startsWith("workerd"));
    if (pid === undefined) throw new Error("workerd process not found");
    const password = secrets.values.REGISTRY_ADMIN_PASSWORD!;
    const user = (worker.config.vars.REGISTRY_ADMIN_USER as string) || "admin";
    const url = (local.directUrl ?? local.url).toString().replace(/\/$/, "");
    const authorization = `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
    return new Registry(local.mf, url, authorization, pid, stateDir);
  }

  async stop(): Promise<void> {
    await this.mf.dispose();
  }

  async request(method: string, pathname: string, body?: Uint8Array, type?: string) {
    const res = await fetch(`${this.url}${pathname}`, {
      method,
      headers: { Authorization: this.authorization, ...(type ? { "Content-Type": type } : {}) },
      ...(body ? { body } : {}),
      redirect: "manual",
    });
    await res.arrayBuffer();
    return res;
  }

  async repository(): Promise<RepositoryStub> {
    const ns = await this.mf.getDurableObjectNamespace("REPOSITORY");
    return ns.get(ns.idFromName(REPOSITORY)) as unknown as RepositoryStub;
  }

  async shard(digest: string): Promise<ShardStub> {
    const ns = await this.mf.getDurableObjectNamespace("BLOB_REF");
    return ns.get(ns.idFromName(blobRefShardName(digest))) as unknown as ShardStub;
  }
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** Pushes one small image (its own config and layer) under `tag`; returns its blob digests. */
async function pushImage(registry: Registry, tag: string): Promise<string[]> {
  const config = new TextEncoder().encode(
    JSON.stringify({ architecture: "amd64", os: "linux", nonce: randomBytes(8).toString("hex") }),
  );
  const layer = randomBytes(512);
  const blobs: string[] = [];
  for (const bytes of [config, layer]) {
    const digest = sha256(bytes);
    const res = await registry.request(
      "POST",
      `/v2/${REPOSITORY}/blobs/uploads/?digest=${digest}`,
      bytes,
      "application/octet-stream",
    );
    if (res.status !== 201) throw new Error(`blob upload: ${res.status}`);
    blobs.push(digest);
  }
  const manifest = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: blobs[0],
        size: config.byteLength,
      },
      layers: [
        { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: blobs[1], size: 512 },
      ],
    }),
  );
  const res = await registry.request(
    "PUT",
    `/v2/${REPOSITORY}/manifests/${tag}`,
    manifest,
    MANIFEST,
  );
  if (res.status !== 201) throw new Error(`manifest push: ${res.status}`);
  return blobs;
}

/** Runs `task` over `items`, `width` at a time. */
async function inParallel<T, R>(items: T[], width: number, task: (item: T) => Promise<R>) {
  const results: R[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const at = next++;
        results[at] = await task(items[at]!);
      }
    }),
  );
  return results;
}

async function waitFor(what: string, done: () => Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function sum<T>(items: T[], field: (item: T) => number): number {
  return items.reduce((total, item) => total + field(item), 0);
}

async function measure(
  worker: WranglerWorker,
  modules: BundledModule[],
  multiplier: number,
  stateDir: string,
): Promise<Measurement> {
  const registry = await Registry.start(worker, modules, stateDir);
  try {
    const live = LIVE * multiplier;
    const indices = (n: number) => Array.from({ length: n }, (_, i) => i);
    await inParallel(indices(live), 8, (i) => pushImage(registry, `live-${i}`));
    const repository = await registry.repository();
    // The catalog pushed the default policy on the first write; a window of 0 replaces it.
    await repository.setPolicy({
      repository: REPOSITORY,
      namespace: "bench",
      revision: Number.MAX_SAFE_INTEGER,
      retentionMs: 0,
      immutableTags: [],
      prune: [],
    });
    // The live data's own candidates (each push and link, examined once after its grace) are
    // done before the window opens: what follows is the garbage's work alone.
    await waitFor(
      "the live data to settle",
      async () => (await repository.gcStats()).pending === 0,
      120_000,
    );

    const garbage = await inParallel(indices(GARBAGE), 8, (i) => pushImage(registry, `junk-${i}`));
    const shards = [...new Set(garbage.flat().map(blobRefShardName))];
    const shardStubs = await Promise.all(garbage.flat().map((digest) => registry.shard(digest)));
    const uniqueShards = shards.map(
      (name) => shardStubs[garbage.flat().findIndex((d) => blobRefShardName(d) === name)]!,
    );
    const before = {
      repository: await repository.gcStats(),
      shards: await Promise.all(uniqueShards.map((stub) => stub.gcStats())),
      cpu: processCpuSeconds(registry.workerdPid),
      at: performance.now(),
    };
    await inParallel(indices(GARBAGE), 8, async (i) => {
      const res = await registry.request("DELETE", `/v2/${REPOSITORY}/manifests/junk-${i}`);
      if (res.status !== 202) throw new Error(`tag delete: ${res.status}`);
    });
    const blobs = garbage.flat().length;
    let after = before;
    await waitFor(
      "the garbage to be collected",
      async () => {
        const shardStats = await Promise.all(uniqueShards.map((stub) => stub.gcStats()));
        after = {
          repository: await repository.gcStats(),
          shards: shardStats,
          cpu: processCpuSeconds(registry.workerdPid),
          at: performance.now(),
        };
        return (
          sum(after.shards, (s) => s.blobsSwept) - sum(before.shards, (s) => s.blobsSwept) >= blobs
        );
      },
      120_000 + 10 * GRACE_SECONDS * 1000,
    );
    const delta = (field: (s: ShardGcStats) => number) =>
      sum(after.shards, field) - sum(before.shards, field);
    return {
      multiplier,
      liveManifests: live,
      garbageManifests: GARBAGE,
      examined: after.repository.examined - before.repository.examined,
      manifestsCollected:
        after.repository.manifestsCollected - before.repository.manifestsCollected,
      linksRemoved: after.repository.linksRemoved - before.repository.linksRemoved,
      blobsSwept: delta((s) => s.blobsSwept),
      rowsRead: after.repository.rowsRead - before.repository.rowsRead + delta((s) => s.rowsRead),
      rowsWritten:
        after.repository.rowsWritten - before.repository.rowsWritten + delta((s) => s.rowsWritten),
      r2DeleteCalls: delta((s) => s.r2DeleteCalls),
      r2KeysDeleted: delta((s) => s.r2KeysDeleted),
      workerdCpuMs: Math.round((after.cpu - before.cpu) * 1000),
      windowSeconds: (after.at - before.at) / 1000,
    };
  } finally {
    await registry.stop();
  }
}

const ROWS: [string, (m: Measurement) => number][] = [
  ["live manifests stored", (m) => m.liveManifests],
  ["garbage manifests", (m) => m.garbageManifests],
  ["candidates examined", (m) => m.examined],
  ["manifests collected", (m) => m.manifestsCollected],
  ["links removed", (m) => m.linksRemoved],
  ["blobs swept", (m) => m.blobsSwept],
  ["SQLite rows read", (m) => m.rowsRead],
  ["SQLite rows written", (m) => m.rowsWritten],
  ["R2 delete calls", (m) => m.r2DeleteCalls],
  ["R2 keys deleted", (m) => m.r2KeysDeleted],
  ["workerd CPU (ms)", (m) => m.workerdCpuMs],
  ["window wall time (s)", (m) => Math.round(m.windowSeconds * 10) / 10],
];

function render(results: Measurement[]): string {
  const base = results[0]!;
  const header = [
    "",
    ...results.map((r) => `${r.multiplier}× live`),
    ...results.slice(1).map((r) => `ratio ${r.multiplier}×/${base.multiplier}×`),
  ];
  const lines = ROWS.map(([label, value]) => [
    label,
    ...results.map((r) => String(value(r))),
    ...results.slice(1).map((r) => (value(base) === 0 ? "-" : (value(r) / value(base)).toFixed(2))),
  ]);
  const widths = header.map((_, i) =>
    Math.max(...[header, ...lines].map((line) => line[i]!.length)),
  );
  return [header, ...lines]
    .map((line) =>
      line
        .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
        .join("  "),
    )
    .join("\n");
}

process.env.WRANGLER_LOG ??= "warn";
const worker = readWranglerWorker(path.join(repoRoot, "wrangler.toml"));
// One folder for everything (the bundle, each registry's state, the workerd wrapper the first
// start writes there), removed at the end.
const workDir = await mkdtemp(path.join(os.tmpdir(), "gc-cost-"));
try {
  const modules = await bundleWorker(worker, path.join(workDir, "bundle"));
  const results: Measurement[] = [];
  for (const multiplier of MULTIPLIERS) {
    console.error(`measuring with ${multiplier}× live data…`);
    const stateDir = path.join(workDir, `state-${multiplier}`);
    await mkdir(stateDir);
    results.push(await measure(worker, modules, multiplier, stateDir));
  }
  console.log(render(results));
} finally {
  await rm(workDir, { recursive: true, force: true });
}
