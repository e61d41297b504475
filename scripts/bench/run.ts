// `npm run bench`: our registry (started as `npm start` runs it) side by side with the CNCF
// reference registry (Debian's `docker-registry`), on loopback, in alternation, several rounds.
//
//   npm run bench [-- --quick] [--rounds=5] [--duration=4] [--connections=32] [--tags=100000]
//                 [--image-mib=200] [--copy-rounds=3] [--reference-auth] [--out=.bench]
//                 [--sections=load,copy] [--ours-env=NAME=VALUE ...]
//
// `--ours-env` passes environment to our runner (e.g. REGISTRY_FRONT_DOOR=off to compare
// runtimes, as issue #4 asks for `npm start`); the table then says it was not the default.
// `--reference-auth` turns on htpasswd Basic auth in docker-registry (default: anonymous).
//
// What it measures (issue #4), each registry in turn, the order flipped every round:
//   1. manifest GET by tag and by digest: req/s, p50/p99 under `--connections` keep-alive
//      connections (wrk; its own Lua hook reports exact percentiles), and the server's CPU per
//      request (/proc, see cpu.ts). Ours is sent a Bearer token from its /v2/auth, as skopeo
//      and docker do; two extra rows send Basic on every request instead;
//   2. blob HEAD (raw Node client: wrk cannot HEAD); blob GET of a small blob (ours: the 307
//      answer alone; the reference serves the bytes); full transfer of the largest layer of the
//      big image (curl, following our redirect through the local blob route);
//   3. `skopeo copy` push and pull of the big image (5 random layers of unequal, odd sizes,
//      200 MiB in all), wall time. `--preserve-digests` pushes the uncompressed tar layers as
//      they are (no gzip on the way, so this measures registries, not compression) and pulls
//      them back unchanged; every copy runs in a fresh home with its own blob-info cache (see
//      skopeo.ts) and every round pushes new random content to a new repository;
//   4. tags list: `?n=100` in a repository with 100 tags, and with `--tags` tags (first page
//      and a page from the middle, `last=`); both filled by concurrent manifest PUTs of one
//      small manifest under distinct tags, then both registries are left to go idle;
//   5. blob bytes stored per blob byte pushed, during each big push: growth of the files that
//      hold blob content (ours: Miniflare's R2 `<state>/v3/r2/<bucket>/blobs/`) over the image's
//      blob bytes (config + layers), and the storage process's disk writes (/proc/<pid>/io
//      write_bytes of workerd) over the same, which also counts anything written then deleted;
//   6. `GET /v2/` on our runtime as the request-rate ceiling (it checks auth too).
// One table on stdout; every raw measurement as JSON under `.bench/` (git-ignored). Targets
// are reported, never enforced: the exit code says whether the benchmark ran, not how it did.
//
// `--quick` (CI): 2 rounds of 1 s runs without warm-up, a 10 MiB image, 2,000 tags: about a
// minute. Every wait is bounded; loopback only.

import { execFile, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { parseArgs, promisify } from "node:util";
import { createOciLayout, type OciLayoutImage } from "../../test/support/oci-layout.ts";
import * as cpu from "./cpu.ts";
import { type LoadResult, type RawRequest, runRaw, runWrk } from "./http-load.ts";
import {
  type AuthKind,
  type BenchRegistry,
  type RegistryId,
  startOurs,
  startReference,
} from "./registries.ts";
import { SkopeoHome } from "./skopeo.ts";
import { fmt, fmtSummary, renderTable, type Summary, summarize } from "./stats.ts";

const MiB = 1 << 20;
const repoRoot = path.resolve(import.meta.dirname, "../..");
const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");

interface Options {
  quick: boolean;
  rounds: number;
  durationSeconds: number;
  warmupSeconds: number;
  connections: number;
  tags: number;
  layers: number;
  /** Total size of the big image's layers. */
  imageMiB: number;
  copyRounds: number;
  transferRuns: number;
  referenceAuth: boolean;
  outDir: string;
  sections: Set<"load" | "copy">;
  /** Hard bound on the whole run. */
  budgetSeconds: number;
  populateSeconds: number;
  oursEnv: Record<string, string>;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      rounds: { type: "string" },
      duration: { type: "string" },
      connections: { type: "string" },
      tags: { type: "string" },
      "image-mib": { type: "string" },
      "copy-rounds": { type: "string" },
      "reference-auth": { type: "boolean", default: false },
      out: { type: "string", default: path.join(repoRoot, ".bench") },
      sections: { type: "string", default: "load,copy" },
      "ours-env": { type: "string", multiple: true, default: [] },
    },
  });
  const quick = values.quick;
  const int = (raw: string | undefined, fallback: number, min = 1) => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new Error(`expected an integer ≥ ${min}: ${raw}`);
    return n;
  };
  const sections = new Set(values.sections.split(",").map((s) => s.trim()));
  for (const s of sections) {
    if (s !== "load" && s !== "copy") throw new Error(`unknown section ${s}; use load, copy`);
  }
  return {
    quick,
    rounds: int(values.rounds, quick ? 2 : 5),
    durationSeconds: int(values.duration, quick ? 1 : 4),
    // A quick run proves the script works; its numbers are not for reading.
    warmupSeconds: quick ? 0 : 1,
    connections: int(values.connections, 32),
    tags: int(values.tags, quick ? 2_000 : 100_000, 101),
    layers: 5,
    imageMiB: int(values["image-mib"], quick ? 10 : 200),
    copyRounds: int(values["copy-rounds"], quick ? 2 : 3),
    transferRuns: quick ? 1 : 3,
    referenceAuth: values["reference-auth"],
    outDir: path.resolve(values.out),
    sections: sections as Set<"load" | "copy">,
    budgetSeconds: quick ? 300 : 3600,
    populateSeconds: quick ? 60 : 600,
    oursEnv: Object.fromEntries(
      values["ours-env"].map((pair) => {
        const eq = pair.indexOf("=");
        if (eq <= 0) throw new Error(`--ours-env wants NAME=VALUE, got ${pair}`);
        return [pair.slice(0, eq), pair.slice(eq + 1)];
      }),
    ),
  };
}

// ---- results ------------------------------------------------------------------------------

interface LoadSample extends LoadResult {
  metric: string;
  registry: RegistryId;
  round: number;
  url: string;
  cpu: {
    /** CPU seconds of each of this registry's processes during the run, by role. */
    processes: Record<string, number>;
    serverSeconds: number;
    serverMsPerRequest: number;
    /** The load generator (wrk, or the raw client in this process). */
    loadGeneratorSeconds: number;
    /** Busy CPU of the machine not explained by the registries or the load generator. */
    otherSeconds: number;
  };
}

interface CopySample {
  registry: RegistryId;
  round: number;
  repository: string;
  pushSeconds: number;
  pullSeconds: number;
  blobBytes: number;
  storedBlobBytesGrowth: number;
  diskWriteBytes: number;
  storedPerBlobByte: number;
  diskWritesPerBlobByte: number;
  blobInfoCacheIsolated: boolean;
  transfers: TransferSample[];
}

interface TransferSample {
  bytes: number;
  seconds: number;
  redirects: number;
  mibPerSecond: number;
}

interface PopulateSample {
  registry: RegistryId;
  repository: string;
  wanted: number;
  created: number;
  seconds: number;
  putsPerSecond: number;
  non2xx: number;
  socketErrors: number;
}

interface Results {
  startedAt: string;
  finishedAt?: string;
  options: Omit<Options, "sections"> & { sections: string[] };
  environment: Record<string, unknown>;
  registries: Record<RegistryId, { label: string; notes: string[] }>;
  images: Record<string, unknown>;
  populate: PopulateSample[];
  load: LoadSample[];
  copy: CopySample[];
  summary?: Record<string, unknown>;
}

// ---- main ---------------------------------------------------------------------------------

const options = parseOptions();
const registries: BenchRegistry[] = [];
let workDir: string | undefined;
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.allSettled(registries.map((r) => r.stop()));
    if (workDir) await rm(workDir, { recursive: true, force: true });
  })();
  return cleaning;
}

async function main(): Promise<void> {
  const missing = ["skopeo", "docker-registry"].filter((tool) => !hasCommand(tool));
  if (missing.length > 0) {
    throw new Error(`missing ${missing.join(", ")}: apt-get install ${missing.join(" ")}`);
  }
  const tools = { wrk: hasCommand("wrk"), curl: hasCommand("curl") };
  const log = (message: string) => console.error(`[bench] ${message}`);
  const t0 = performance.now();
  const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(0)} s`;

  workDir = await mkdtemp(path.join(os.tmpdir(), "registry-bench-"));
  const results: Results = {
    startedAt: new Date().toISOString(),
    options: { ...options, sections: [...options.sections] },
    environment: await environment(tools),
    registries: {} as Results["registries"],
    images: {},
    populate: [],
    load: [],
    copy: [],
  };

  log(
    `${options.quick ? "quick" : "full"} run: ${options.rounds} load rounds of ` +
      `${options.durationSeconds} s, ${options.connections} connections, ` +
      `${options.copyRounds} copy rounds of a ${options.imageMiB} MiB image, ` +
      `${options.tags} tags; load tool ${tools.wrk ? "wrk" : "node"}`,
  );
  log("starting both registries");
  registries.push(await startOurs(options.oursEnv));
  registries.push(await startReference({ auth: options.referenceAuth }));
  for (const r of registries) {
    results.registries[r.id] = { label: r.label, notes: r.notes };
    log(`  ${r.label} at ${r.url}`);
  }

  if (options.sections.has("load")) {
    // The small image: what the load rounds pull from.
    const small = await createOciLayout(path.join(workDir, "small"), {
      layers: [{ size: 1 * MiB }, { size: 1 * MiB }],
      tag: "v1",
    });
    results.images.small = describeImage(small);
    for (const r of registries) await push(r, small, "bench/small:v1", workDir);
    log(`pushed the small image to both (${elapsed()})`);

    const tagged = await populateTags(results, log);
    log(`tags in place (${elapsed()})`);
    // Pushes leave background work (our event queue's consumer writes the audit log in D1):
    // measure only once both registries are idle again.
    const settled = await settle(options.quick ? 20 : 180);
    results.environment.settleSeconds = settled;
    log(`registries idle after ${fmt(settled)} s`);
    await loadRounds(results, small, tagged, tools.wrk, log);
    log(`load rounds done (${elapsed()})`);
  }
  if (options.sections.has("copy")) {
    await copyRounds(results, tools.curl, log);
    log(`copy rounds done (${elapsed()})`);
  }

  results.finishedAt = new Date().toISOString();
  const { table, summary } = report(results);
  results.summary = summary;
  await mkdir(options.outDir, { recursive: true });
  const stamp = results.startedAt.replaceAll(":", "-").replace(/\..*$/, "");
  const file = path.join(options.outDir, `bench-${options.quick ? "quick-" : ""}${stamp}.json`);
  const json = `${JSON.stringify(results, null, 2)}\n`;
  await writeFile(file, json);
  await writeFile(path.join(options.outDir, "latest.json"), json);
  console.log(table);
  console.log(`\nraw results: ${path.relative(process.cwd(), file) || file}`);
}

// ---- setup: images and tags -----------------------------------------------------------------

function describeImage(image: OciLayoutImage) {
  return {
    manifest: image.manifest,
    config: image.config,
    layers: image.layers,
    totalBlobBytes: image.totalBlobBytes,
  };
}

async function push(
  r: BenchRegistry,
  image: OciLayoutImage,
  target: string,
  parent: string,
): Promise<{ seconds: number; cacheIsolated: boolean }> {
  const home = await SkopeoHome.create(parent);
  try {
    const result = await home.copy(
      [
        "--preserve-digests",
        "--dest-tls-verify=false",
        ...(r.creds ? [`--dest-creds=${r.creds}`] : ["--dest-no-creds"]),
        image.ref,
        `docker://${r.host}/${target}`,
      ],
      600_000,
    );
    return { seconds: result.seconds, cacheIsolated: home.cacheIsolated() };
  } finally {
    await home.remove();
  }
}

async function pull(
  r: BenchRegistry,
  source: string,
  dest: string,
  parent: string,
): Promise<{ seconds: number }> {
  const home = await SkopeoHome.create(parent);
  try {
    const result = await home.copy(
      [
        "--preserve-digests",
        "--src-tls-verify=false",
        ...(r.creds ? [`--src-creds=${r.creds}`] : ["--src-no-creds"]),
        `docker://${r.host}/${source}`,
        `oci:${dest}:v1`,
      ],
      600_000,
    );
    return { seconds: result.seconds };
  } finally {
    await home.remove();
  }
}

interface TaggedRepos {
  small: string;
  large: string;
  /** A tag in the middle of the large repository, for a `last=` page. */
  middleTag: string;
}

function tagName(i: number): string {
  return `t${String(i).padStart(7, "0")}`;
}

/** One tiny image manifest (config + one small layer), pushed under many tags. */
async function populateTags(results: Results, log: (m: string) => void): Promise<TaggedRepos> {
  const repos = { small: "bench/tags-100", large: `bench/tags-${options.tags}` };
  const layer = randomBytes(1024);
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: [sha256(layer)] },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: sha256(config),
        size: config.length,
      },
      layers: [
        {
          mediaType: "application/vnd.oci.image.layer.v1.tar",
          digest: sha256(layer),
          size: layer.length,
        },
      ],
    }),
  );
  for (const r of registries) {
    for (const [repo, count] of [
      [repos.small, 100],
      [repos.large, options.tags],
    ] as const) {
      for (const blob of [config, layer]) await uploadBlob(r, repo, blob);
      const sample = await putTags(r, repo, manifest, count);
      results.populate.push(sample);
      log(
        `  ${r.id}: ${sample.created} tags in ${repo} at ${fmt(sample.putsPerSecond)} PUT/s` +
          (sample.created < count ? ` (wanted ${count}: time bound hit)` : ""),
      );
      if (sample.non2xx > 0 || sample.socketErrors > 0) {
        throw new Error(
          `${r.id}: ${sample.non2xx} failed tag PUTs, ${sample.socketErrors} socket errors`,
        );
      }
    }
  }
  return { ...repos, middleTag: tagName(Math.floor(options.tags / 2)) };
}

/** POST a session, then PUT `?digest=` with the bytes (docker-registry 2.8 has no monolithic POST). */
async function uploadBlob(r: BenchRegistry, repo: string, bytes: Buffer): Promise<void> {
  const auth = await r.authorize("bearer", [`repository:${repo}:pull,push`]);
  const started = await fetch(`${r.url}/v2/${repo}/blobs/uploads/`, {
    method: "POST",
    headers: auth,
    signal: AbortSignal.timeout(30_000),
  });
  await started.body?.cancel();
  const location = started.headers.get("Location");
  if (started.status !== 202 || !location) {
    throw new Error(`${r.id}: upload session in ${repo} answered ${started.status}`);
  }
  const url = new URL(location, r.url);
  url.searchParams.set("digest", sha256(bytes));
  const done = await fetch(url, {
    method: "PUT",
    headers: { ...auth, "Content-Type": "application/octet-stream" },
    body: bytes,
    signal: AbortSignal.timeout(30_000),
  });
  await done.body?.cancel();
  if (done.status !== 201)
    throw new Error(`${r.id}: blob upload to ${repo} answered ${done.status}`);
}

/** Concurrent PUTs of one manifest under tags t0000000, t0000001, …, in batches (tokens expire). */
async function putTags(
  r: BenchRegistry,
  repo: string,
  manifest: Buffer,
  count: number,
): Promise<PopulateSample> {
  const BATCH = 20_000;
  const deadline = performance.now() + options.populateSeconds * 1000;
  const total = { created: 0, seconds: 0, requests: 0, non2xx: 0, socketErrors: 0 };
  for (let first = 0; first < count && performance.now() < deadline; first += BATCH) {
    const headers = {
      ...(await r.authorize("bearer", [`repository:${repo}:pull,push`])),
      "Content-Type": "application/vnd.oci.image.manifest.v1+json",
    };
    const result = await runRaw({
      origin: r.url,
      connections: options.connections,
      count: Math.min(BATCH, count - first),
      durationSeconds: (deadline - performance.now()) / 1000,
      request: (i): RawRequest => ({
        method: "PUT",
        path: `/v2/${repo}/manifests/${tagName(first + i)}`,
        headers,
        body: manifest,
      }),
    });
    total.created += result.statuses[201] ?? 0;
    total.seconds += result.seconds;
    total.requests += result.requests;
    total.non2xx += result.non2xx;
    total.socketErrors += result.socketErrors;
  }
  return {
    registry: r.id,
    repository: repo,
    wanted: count,
    created: total.created,
    seconds: total.seconds,
    putsPerSecond: total.requests / total.seconds,
    non2xx: total.non2xx,
    socketErrors: total.socketErrors,
  };
}

// ---- load rounds ---------------------------------------------------------------------------

interface LoadMetric {
  id: string;
  title: string;
  method: "GET" | "HEAD";
  path: (image: OciLayoutImage) => string;
  headers?: Record<string, string>;
  /** How ours authenticates (the reference: anonymous, or Basic with --reference-auth). */
  auth: AuthKind;
  /** Repository the token must cover (pull). */
  repository?: string;
  /** The trivial route this one is compared with (same auth). */
  trivial: string;
  /** Measured on ours only (a Basic row when the reference is anonymous would repeat a row). */
  oursOnly?: boolean;
  /** Status each registry must answer before it is loaded. */
  expect: Record<RegistryId, number>;
}

const SMALL_REPO = "bench/small";

function loadMetrics(tagged: TaggedRepos): LoadMetric[] {
  const ok = { ours: 200, reference: 200 };
  const bearer = { auth: "bearer" as const, trivial: "trivial" };
  const basic = {
    auth: "basic" as const,
    trivial: "trivial-basic",
    oursOnly: !options.referenceAuth,
  };
  const page = (repo: string, last?: string) =>
    `/v2/${repo}/tags/list?n=100${last ? `&last=${last}` : ""}`;
  const manifestByTag = {
    method: "GET" as const,
    path: () => `/v2/${SMALL_REPO}/manifests/v1`,
    headers: { Accept: MANIFEST_ACCEPT },
    repository: SMALL_REPO,
    expect: ok,
  };
  return [
    {
      id: "trivial",
      title: "GET /v2/ (trivial route)",
      method: "GET",
      path: () => "/v2/",
      expect: ok,
      ...bearer,
    },
    { id: "manifest-tag", title: "manifest GET by tag", ...manifestByTag, ...bearer },
    {
      id: "manifest-digest",
      title: "manifest GET by digest",
      method: "GET",
      path: (image) => `/v2/${SMALL_REPO}/manifests/${image.manifest.digest}`,
      headers: { Accept: MANIFEST_ACCEPT },
      repository: SMALL_REPO,
      expect: ok,
      ...bearer,
    },
    {
      id: "blob-head",
      title: "blob HEAD",
      method: "HEAD",
      path: (image) => `/v2/${SMALL_REPO}/blobs/${image.layers[0]!.digest}`,
      repository: SMALL_REPO,
      expect: ok,
      ...bearer,
    },
    {
      id: "blob-get",
      title: "blob GET, small (ours: 307 only)",
      method: "GET",
      path: (image) => `/v2/${SMALL_REPO}/blobs/${image.config.digest}`,
      repository: SMALL_REPO,
      expect: { ours: 307, reference: 200 },
      ...bearer,
    },
    {
      id: "tags-100",
      title: "tags page n=100, 100 tags",
      method: "GET",
      path: () => page(tagged.small),
      repository: tagged.small,
      expect: ok,
      ...bearer,
    },
    {
      id: "tags-large",
      title: `tags page n=100, ${options.tags} tags`,
      method: "GET",
      path: () => page(tagged.large),
      repository: tagged.large,
      expect: ok,
      ...bearer,
    },
    {
      id: "tags-large-middle",
      title: "  same, from the middle (last=)",
      method: "GET",
      path: () => page(tagged.large, tagged.middleTag),
      repository: tagged.large,
      expect: ok,
      ...bearer,
    },
    {
      id: "trivial-basic",
      title: "GET /v2/, Basic on every request",
      method: "GET",
      path: () => "/v2/",
      expect: ok,
      ...basic,
    },
    { id: "manifest-tag-basic", title: "manifest GET by tag, Basic", ...manifestByTag, ...basic },
  ];
}

function metricRegistries(metric: LoadMetric, round: number): BenchRegistry[] {
  return alternate(registries, round).filter((r) => !(metric.oursOnly && r.id !== "ours"));
}

function authFor(r: BenchRegistry, metric: LoadMetric): Promise<Record<string, string>> {
  return r.authorize(
    metric.auth,
    metric.repository ? [`repository:${metric.repository}:pull`] : [],
  );
}

async function loadRounds(
  results: Results,
  image: OciLayoutImage,
  tagged: TaggedRepos,
  useWrk: boolean,
  log: (m: string) => void,
): Promise<void> {
  const metrics = loadMetrics(tagged);
  // Probe every endpoint once: a wrong status would make every number below meaningless.
  for (const metric of metrics) {
    for (const r of metricRegistries(metric, 1)) {
      const res = await fetch(`${r.url}${metric.path(image)}`, {
        method: metric.method,
        headers: { ...(await authFor(r, metric)), ...metric.headers },
        redirect: "manual",
        signal: AbortSignal.timeout(60_000),
      });
      await res.body?.cancel();
      if (res.status !== metric.expect[r.id]) {
        throw new Error(
          `${r.id}: ${metric.method} ${metric.path(image)} answered ${res.status}, ` +
            `expected ${metric.expect[r.id]}`,
        );
      }
    }
  }
  for (let round = 1; round <= options.rounds; round++) {
    for (const metric of metrics) {
      for (const r of metricRegistries(metric, round)) {
        const url = `${r.url}${metric.path(image)}`;
        // A fresh token per run: tokens live minutes, a full run takes longer.
        const headers = { ...(await authFor(r, metric)), ...metric.headers };
        const run = (durationSeconds: number) =>
          metric.method === "GET" && useWrk
            ? runWrk({ url, headers, durationSeconds, connections: options.connections })
            : runRaw({
                origin: r.url,
                connections: options.connections,
                durationSeconds,
                request: () => ({ method: metric.method, path: metric.path(image), headers }),
              });
        if (options.warmupSeconds > 0) await run(options.warmupSeconds);
        const watched = registries.flatMap((x) => Object.values(x.processes));
        const before = cpu.snapshot(watched);
        const result = await run(options.durationSeconds);
        const usage = cpu.usageBetween(before, cpu.snapshot(watched));
        const processes = Object.fromEntries(
          Object.entries(r.processes).map(([role, pid]) => [role, usage.perPid[pid] ?? 0]),
        );
        const serverSeconds = Object.values(processes).reduce((a, b) => a + b, 0);
        // The idle registry's CPU (normally ~0) counts as "other" load.
        const idle = registries
          .filter((x) => x !== r)
          .flatMap((x) => Object.values(x.processes))
          .reduce((sum, pid) => sum + (usage.perPid[pid] ?? 0), 0);
        results.load.push({
          metric: metric.id,
          registry: r.id,
          round,
          url,
          ...stripRaw(result),
          cpu: {
            processes,
            serverSeconds,
            serverMsPerRequest: (serverSeconds * 1000) / Math.max(1, result.requests),
            loadGeneratorSeconds: usage.benchSeconds,
            otherSeconds: usage.otherSeconds + idle,
          },
        });
      }
    }
    const line = metrics
      .map((m) => {
        const rps = (id: RegistryId) =>
          results.load.find((s) => s.metric === m.id && s.registry === id && s.round === round)
            ?.requestsPerSecond;
        return `${m.id} ${fmt(rps("ours"))}/${fmt(rps("reference"))}`;
      })
      .join(", ");
    log(`load round ${round}/${options.rounds} (req/s ours/reference): ${line}`);
  }
}

function stripRaw(result: LoadResult): LoadResult {
  const { tool, requests, seconds, requestsPerSecond, non2xx, socketErrors, bytesRead } = result;
  const { latencyP50Ms, latencyP90Ms, latencyP99Ms } = result;
  return {
    tool,
    requests,
    seconds,
    requestsPerSecond,
    latencyP50Ms,
    latencyP90Ms,
    latencyP99Ms,
    non2xx,
    socketErrors,
    bytesRead,
  };
}

/**
 * Waits until the registries' processes use under 5% of a core over half a second, at most
 * `maxSeconds`; returns how long it took.
 */
async function settle(maxSeconds: number): Promise<number> {
  const pids = registries.flatMap((r) => Object.values(r.processes));
  const started = performance.now();
  while ((performance.now() - started) / 1000 < maxSeconds) {
    const before = cpu.snapshot(pids);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const usage = cpu.usageBetween(before, cpu.snapshot(pids));
    const busy = Object.values(usage.perPid).reduce((a, b) => a + b, 0);
    if (busy / usage.wallSeconds < 0.05) break;
  }
  return (performance.now() - started) / 1000;
}

/** Round 1 starts with ours, round 2 with the reference, and so on. */
function alternate<T>(items: T[], round: number): T[] {
  return round % 2 === 1 ? items : [...items].reverse();
}

// ---- copy rounds: skopeo push/pull, stored bytes, full blob transfer ----------------------

async function copyRounds(
  results: Results,
  useCurl: boolean,
  log: (m: string) => void,
): Promise<void> {
  const dir = workDir!;
  const runId = randomBytes(3).toString("hex");
  for (let round = 1; round <= options.copyRounds; round++) {
    // Fresh random bytes every round: no registry, cache or mount can know them.
    const image = await createOciLayout(path.join(dir, `big-${round}`), {
      layers: bigImageLayerSizes().map((size) => ({ size })),
      tag: "v1",
    });
    results.images[`big-${round}`] = describeImage(image);
    const largest = [...image.layers].sort((a, b) => b.size - a.size)[0]!;
    for (const r of alternate(registries, round)) {
      const repo = `bench/big-${runId}-${round}`;
      const storedBefore = await r.storedBlobBytes();
      const writesBefore = await r.diskWriteBytes();
      const pushed = await push(r, image, `${repo}:v1`, dir);
      const storedGrowth = (await r.storedBlobBytes()) - storedBefore;
      const writes = (await r.diskWriteBytes()) - writesBefore;

      const transfers: TransferSample[] = [];
      for (let i = 0; i < options.transferRuns; i++) {
        const url = `${r.url}/v2/${repo}/blobs/${largest.digest}`;
        const auth = await r.authorize("bearer", [`repository:${repo}:pull`]);
        const t = useCurl ? await curlGet(url, auth) : await nodeGet(url, auth);
        if (t.bytes !== largest.size) {
          throw new Error(`${r.id}: GET ${url} gave ${t.bytes} bytes, expected ${largest.size}`);
        }
        transfers.push(t);
      }

      const pullDir = path.join(dir, `pull-${r.id}-${round}`);
      const pulled = await pull(r, `${repo}:v1`, pullDir, dir);
      await checkPulled(pullDir, image);
      await rm(pullDir, { recursive: true, force: true });

      const sample: CopySample = {
        registry: r.id,
        round,
        repository: repo,
        pushSeconds: pushed.seconds,
        pullSeconds: pulled.seconds,
        blobBytes: image.totalBlobBytes,
        storedBlobBytesGrowth: storedGrowth,
        diskWriteBytes: writes,
        storedPerBlobByte: storedGrowth / image.totalBlobBytes,
        diskWritesPerBlobByte: writes / image.totalBlobBytes,
        blobInfoCacheIsolated: pushed.cacheIsolated,
        transfers,
      };
      results.copy.push(sample);
      log(
        `copy round ${round}/${options.copyRounds} ${r.id}: push ${fmt(sample.pushSeconds)} s, ` +
          `pull ${fmt(sample.pullSeconds)} s, stored/blob ${fmt(sample.storedPerBlobByte)}, ` +
          `disk writes/blob ${fmt(sample.diskWritesPerBlobByte)}, ` +
          `layer GET ${fmt(transfers[0]?.mibPerSecond)} MiB/s`,
      );
    }
    await rm(image.dir, { recursive: true, force: true });
  }
}

/**
 * Layer file sizes summing to about `imageMiB`: unequal (1.3× down to 0.7× the mean) and not
 * multiples of anything, like real layers; a blob whose size is a multiple of the upload part
 * size would skip the path that keeps a partial last part between requests.
 */
function bigImageLayerSizes(): number[] {
  const n = options.layers;
  const mean = (options.imageMiB * MiB) / n;
  return Array.from({ length: n }, (_, i) => {
    const weight = n === 1 ? 1 : 1.3 - (0.6 * i) / (n - 1);
    return Math.round(mean * weight) - 1536 - 1000 * (i + 1) - 7; // tar framing, odd sizes
  });
}

function largestLayerBytes(results: Results): number {
  const big = Object.entries(results.images).find(([name]) => name.startsWith("big-"))?.[1] as
    | { layers: { size: number }[] }
    | undefined;
  return Math.max(0, ...(big?.layers.map((l) => l.size) ?? []));
}

/** The pulled layout holds exactly the pushed blobs, by name and size (skopeo checked digests). */
async function checkPulled(dir: string, image: OciLayoutImage): Promise<void> {
  const blobs = path.join(dir, "blobs", "sha256");
  const want = [image.config, ...image.layers];
  const names = new Set(await readdir(blobs));
  for (const d of want) {
    const hex = d.digest.slice("sha256:".length);
    if (!names.has(hex) || (await stat(path.join(blobs, hex))).size !== d.size) {
      throw new Error(`pulled layout lacks ${d.digest} (${d.size} bytes)`);
    }
  }
}

async function curlGet(url: string, headers: Record<string, string>): Promise<TransferSample> {
  const { stdout } = await promisify(execFile)(
    "curl",
    [
      "--silent",
      "--show-error",
      "--fail",
      "--location",
      "--max-time",
      "120",
      "--output",
      "/dev/null",
      "--write-out",
      "%{size_download} %{time_total} %{num_redirects}",
      ...Object.entries(headers).flatMap(([k, v]) => ["--header", `${k}: ${v}`]),
      url,
    ],
    { timeout: 130_000 },
  );
  const [bytes = "0", seconds = "0", redirects = "0"] = stdout.trim().split(" ");
  return transfer(Number(bytes), Number(seconds), Number(redirects));
}

/** Fallback without curl: node:http, following redirects (at most 3). */
async function nodeGet(url: string, headers: Record<string, string>): Promise<TransferSample> {
  const started = performance.now();
  let redirects = 0;
  let current = url;
  for (;;) {
    const { status, location, bytes } = await new Promise<{
      status: number;
      location?: string;
      bytes: number;
    }>((resolve, reject) => {
      const req = http.get(current, { headers, timeout: 120_000 }, (res) => {
        let bytes = 0;
        res.on("data", (c: Buffer) => (bytes += c.length));
        res.on("end", () =>
          resolve({ status: res.statusCode!, location: res.headers.location, bytes }),
        );
        res.on("error", reject);
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", reject);
    });
    if (status >= 300 && status < 400 && location && redirects < 3) {
      redirects++;
      current = new URL(location, current).toString();
      continue;
    }
    if (status !== 200) throw new Error(`GET ${current} answered ${status}`);
    return transfer(bytes, (performance.now() - started) / 1000, redirects);
  }
}

function transfer(bytes: number, seconds: number, redirects: number): TransferSample {
  return { bytes, seconds, redirects, mibPerSecond: bytes / MiB / seconds };
}

// ---- report --------------------------------------------------------------------------------

function report(results: Results): { table: string; summary: Record<string, unknown> } {
  const rows: string[][] = [];
  const summary: Record<string, unknown> = {};
  const loadOf = (metric: string, id: RegistryId, pick: (s: LoadSample) => number) =>
    summarize(results.load.filter((s) => s.metric === metric && s.registry === id).map(pick));
  const perRound = (a: string, b: string, id: RegistryId) =>
    summarize(
      results.load
        .filter((s) => s.metric === a && s.registry === id)
        .map((s) => {
          const other = results.load.find(
            (o) => o.metric === b && o.registry === id && o.round === s.round,
          );
          return other ? s.requestsPerSecond / other.requestsPerSecond : Number.NaN;
        }),
    );
  const ratio = (a: Summary | undefined, b: Summary | undefined) =>
    a && b && b.median !== 0 ? a.median / b.median : undefined;
  const check = (value: number | undefined, ok: (v: number) => boolean, text: string) =>
    value === undefined ? `${text} ?` : `${text} ${ok(value) ? "ok" : "MISSED"}`;

  if (options.sections.has("load")) {
    const metrics = loadMetrics({ small: "", large: "", middleTag: "" });
    rows.push([`request rate under ${options.connections} connections (req/s; p50/p99 in ms)`]);
    for (const m of metrics) {
      const ours = loadOf(m.id, "ours", (s) => s.requestsPerSecond);
      const ref = loadOf(m.id, "reference", (s) => s.requestsPerSecond);
      const vsTrivial = m.id === m.trivial ? undefined : perRound(m.id, m.trivial, "ours");
      let target = "";
      if (m.id === "manifest-tag") {
        target = [
          check(vsTrivial?.median, (v) => v >= 0.8, "≥0.8× trivial"),
          check(ratio(ours, ref), (v) => v >= 1, "≥1.0× ref"),
        ].join(", ");
      }
      rows.push([
        m.title,
        "req/s",
        fmtSummary(ours),
        fmtSummary(ref),
        fmt(ratio(ours, ref)),
        fmt(vsTrivial?.median),
        target,
      ]);
      const p50o = loadOf(m.id, "ours", (s) => s.latencyP50Ms);
      const p50r = loadOf(m.id, "reference", (s) => s.latencyP50Ms);
      const p99o = loadOf(m.id, "ours", (s) => s.latencyP99Ms);
      const p99r = loadOf(m.id, "reference", (s) => s.latencyP99Ms);
      rows.push([
        "",
        "p50/p99 ms",
        `${fmt(p50o?.median)} / ${fmt(p99o?.median)}`,
        `${fmt(p50r?.median)} / ${fmt(p99r?.median)}`,
        fmt(ratio(p50o, p50r)),
        "",
        "",
      ]);
      const cpuO = loadOf(m.id, "ours", (s) => s.cpu.serverMsPerRequest);
      const cpuR = loadOf(m.id, "reference", (s) => s.cpu.serverMsPerRequest);
      rows.push([
        "",
        "server CPU ms/req",
        fmt(cpuO?.median),
        fmt(cpuR?.median),
        fmt(ratio(cpuO, cpuR)),
        "",
        "",
      ]);
      const errors = results.load
        .filter((s) => s.metric === m.id)
        .reduce((n, s) => n + s.non2xx + s.socketErrors, 0);
      if (errors > 0) rows.push([`  ! ${errors} error answers or socket errors in ${m.id}`]);
      summary[m.id] = {
        unit: "req/s",
        ours,
        reference: ref,
        oursOverReference: ratio(ours, ref),
        oursOverTrivial: vsTrivial,
        latencyP50Ms: { ours: p50o, reference: p50r },
        latencyP99Ms: { ours: p99o, reference: p99r },
        serverCpuMsPerRequest: { ours: cpuO, reference: cpuR },
      };
    }
    const busy = results.load.filter((s) => s.cpu.otherSeconds / s.seconds > 0.15);
    if (busy.length > 0) {
      const worst = Math.max(...busy.map((s) => s.cpu.otherSeconds / s.seconds));
      rows.push([
        `  ! ${busy.length} of ${results.load.length} runs shared the machine with other work ` +
          `(up to ${(worst * 100).toFixed(0)}% of a core): see cpu.otherSeconds in the JSON`,
      ]);
    }
    // Cost of a page = 1 / throughput; the target compares the large repository with the small.
    const costRatio = (metric: string, id: RegistryId) => perRound("tags-100", metric, id);
    for (const metric of ["tags-large", "tags-large-middle"]) {
      const ours = costRatio(metric, "ours");
      const ref = costRatio(metric, "reference");
      const title =
        metric === "tags-large"
          ? `tags page cost, ${options.tags} ÷ 100 tags`
          : "  same, page from the middle";
      rows.push([
        title,
        "×",
        fmtSummary(ours),
        fmtSummary(ref),
        "",
        "",
        metric === "tags-large" ? check(ours?.median, (v) => v <= 1.5, "≤1.5") : "",
      ]);
      summary[`${metric}-cost-ratio`] = { ours, reference: ref };
    }
    for (const r of registries) {
      for (const p of results.populate.filter((s) => s.registry === r.id)) {
        summary[`populate-${r.id}-${p.repository}`] = p;
      }
    }
    const populateRate = (id: RegistryId) =>
      results.populate.find((p) => p.registry === id && p.wanted === options.tags);
    const po = populateRate("ours");
    const pr = populateRate("reference");
    rows.push([
      `tag PUTs while filling (${options.tags})`,
      "PUT/s",
      fmt(po?.putsPerSecond),
      fmt(pr?.putsPerSecond),
      fmt(po && pr ? po.putsPerSecond / pr.putsPerSecond : undefined),
      "",
      "",
    ]);
  }

  if (options.sections.has("copy")) {
    const copyOf = (id: RegistryId, pick: (s: CopySample) => number) =>
      summarize(results.copy.filter((s) => s.registry === id).map(pick));
    const mib = options.imageMiB;
    rows.push([`skopeo copy of a ${mib} MiB image (${options.layers} layers), wall time`]);
    for (const [key, title] of [
      ["pushSeconds", "push (--preserve-digests, uncompressed)"],
      ["pullSeconds", "pull to an OCI layout"],
    ] as const) {
      const ours = copyOf("ours", (s) => s[key]);
      const ref = copyOf("reference", (s) => s[key]);
      rows.push([
        title,
        "s",
        fmtSummary(ours),
        fmtSummary(ref),
        fmt(ratio(ours, ref)),
        "",
        check(ratio(ours, ref), (v) => v <= 1.2, "≤1.2× ref"),
      ]);
      summary[key] = { ours, reference: ref, oursOverReference: ratio(ours, ref) };
    }
    const transferOf = (id: RegistryId) =>
      summarize(
        results.copy
          .filter((s) => s.registry === id)
          .flatMap((s) => s.transfers.map((t) => t.mibPerSecond)),
      );
    const to = transferOf("ours");
    const tr = transferOf("reference");
    rows.push([
      `GET the largest layer, ${fmt(largestLayerBytes(results) / MiB)} MiB (ours: via 307)`,
      "MiB/s",
      fmtSummary(to),
      fmtSummary(tr),
      fmt(ratio(to, tr)),
      "",
      "",
    ]);
    summary.layerTransferMiBps = { ours: to, reference: tr };
    rows.push(["stored blob bytes per blob byte pushed"]);
    const so = copyOf("ours", (s) => s.storedPerBlobByte);
    const sr = copyOf("reference", (s) => s.storedPerBlobByte);
    rows.push([
      "R2 (ours) / blobs dir (ref) growth",
      "×",
      fmtSummary(so),
      fmtSummary(sr),
      "",
      "",
      check(so?.median, (v) => Math.abs(v - 1) < 0.001, "=1.0"),
    ]);
    const wo = copyOf("ours", (s) => s.diskWritesPerBlobByte);
    const wr = copyOf("reference", (s) => s.diskWritesPerBlobByte);
    rows.push([
      "disk writes of the storage process",
      "×",
      fmtSummary(wo),
      fmtSummary(wr),
      "",
      "",
      "",
    ]);
    summary.storedPerBlobByte = { ours: so, reference: sr };
    summary.diskWritesPerBlobByte = { ours: wo, reference: wr };
    const leaked = results.copy.filter((s) => !s.blobInfoCacheIsolated).length;
    if (leaked > 0) rows.push([`  ! ${leaked} pushes used a shared skopeo blob-info cache`]);
  }

  const header = ["metric", "unit", "ours", "docker-registry", "ours÷ref", "÷trivial", "target"];
  const notes = [
    "",
    `ours: ${results.registries.ours?.label}; reference: ${results.registries.reference?.label}`,
    ...Object.values(results.registries).flatMap((r) => r.notes.map((n) => `  - ${n}`)),
    "median of rounds, ±half the range; ours÷ref: >1 is better for req/s and MiB/s, <1 for s and ms",
    "÷trivial: ours ÷ our GET /v2/ in the same round; tags cost ratio = req/s at 100 ÷ req/s at N",
    "docker-registry 2.8 ignores n and last on tags/list: its page is every tag in the repository",
    "blob HEAD rows use the raw Node client (wrk cannot HEAD), every other request row uses wrk",
    "stored bytes: growth of the blob files during the push ÷ the image's config + layer bytes",
    "  (ours: Miniflare's R2 files under <state>/v3/r2/<bucket>/blobs; ref: its blobs/ folder);",
    "  disk writes: write_bytes of /proc/<pid>/io of workerd (R2, Durable Object SQLite and WAL,",
    "  D1) or docker-registry over the push, ÷ the same bytes",
  ];
  return { table: [renderTable(header, rows), ...notes].join("\n"), summary };
}

// ---- small helpers -------------------------------------------------------------------------

function sha256(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

function hasCommand(name: string): boolean {
  return spawnSync(name, ["--version"], { stdio: "ignore" }).error === undefined;
}

async function environment(tools: {
  wrk: boolean;
  curl: boolean;
}): Promise<Record<string, unknown>> {
  const version = (cmd: string, args: string[]) => {
    const out = spawnSync(cmd, args, { encoding: "utf8" });
    return (out.stdout || out.stderr || "").split("\n")[0]?.trim();
  };
  const git = spawnSync("git", ["rev-parse", "HEAD"], { cwd: repoRoot, encoding: "utf8" });
  const dirty = spawnSync("git", ["status", "--porcelain"], { cwd: repoRoot, encoding: "utf8" });
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryMiB: Math.round(os.totalmem() / MiB),
    loadAverageAtStart: os.loadavg(),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    skopeo: version("skopeo", ["--version"]),
    dockerRegistry: version("docker-registry", ["--version"]),
    wrk: tools.wrk ? version("wrk", ["--version"]) : null,
    curl: tools.curl ? version("curl", ["--version"]) : null,
    gitCommit: git.stdout?.trim() || null,
    gitDirty: dirty.stdout ? dirty.stdout.trim().length > 0 : null,
  };
}

// ---- run ----------------------------------------------------------------------------------
// Last in the file: main() must not start before every module-level constant is initialized.

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the registries`);
    void cleanup().finally(() => process.exit(130));
  });
}
const budget = setTimeout(() => {
  console.error(`bench: time budget of ${options.budgetSeconds} s exceeded, giving up`);
  void cleanup().finally(() => process.exit(2));
}, options.budgetSeconds * 1000);
budget.unref();

try {
  await main();
  await cleanup();
  clearTimeout(budget);
} catch (error) {
  console.error(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : error}`);
  await cleanup();
  process.exit(1);
}
