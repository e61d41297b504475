// End-to-end: the registry started exactly as `npm start` does, driven by skopeo as a user would.
//
// E2E_REGISTRY=reference runs the same file against the CNCF reference registry
// (`docker-registry`, with htpasswd auth) as a baseline that proves the test itself is right.
//
// What skopeo 1.9 sends (reference registry's access log): `GET /v2/` without credentials, then
// Basic auth on every request once challenged (anonymous: `Basic Og==`, empty user and password).
// Per blob: HEAD in the target repository; if the blob-info cache knows another repository on
// this registry holds it, HEAD there and `POST uploads/?mount=&from=` (201 = mounted); otherwise
// POST (202), one PATCH with the whole blob, PUT `?digest=` with an empty body. No Content-Range
// chunking. Then PUT the manifest. A pull GETs the manifest, then each blob (following a 307).
//
// Skopeo quirks this file relies on:
// - An uncompressed layer (`…layer.v1.tar`) is gzip-compressed on the way to `docker://`, so
//   the pushed digests differ from the layout's and the PATCH body is `Transfer-Encoding:
//   chunked` of unknown length. `--preserve-digests` pushes the bytes unchanged instead (PATCH
//   with a Content-Length); tests that need the source digests use it.
// - Copying to `oci:` compresses uncompressed layers too, so every pull back uses
//   `--preserve-digests` to get the registry's bytes exactly.
// - Run as root (as on CI containers), skopeo's blob-info cache is machine-wide
//   (/var/lib/containers/cache), whatever HOME says. Every test therefore uses fresh random
//   layer content, so nothing cached by another run can ever match; within a test the cache is
//   what makes skopeo try a cross-repository mount, as it would for a user.
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  blobPath,
  createOciLayout,
  type Descriptor,
  readOciLayoutDigests,
} from "../support/oci-layout.ts";
import { type AccessLogEntry, startReferenceRegistry } from "../support/reference-registry.ts";
import { startRegistry } from "../support/registry-process.ts";
import { assertSkopeoInstalled, Skopeo } from "../support/skopeo.ts";

const MiB = 1 << 20;
const USE_REFERENCE = process.env.E2E_REGISTRY === "reference";

/** What the tests need from a running registry, whichever one it is. */
interface Target {
  name: string;
  /** `127.0.0.1:<port>`, as `docker://` references spell it. */
  host: string;
  /** `user:password` of an account that may push, pull and delete. */
  creds: string;
  /**
   * Dedupe hook: total bytes of blob content the registry holds in storage. For our registry
   * this sums Miniflare's persisted R2 blob files (`<stateDir>/v3/r2/<bucket>/blobs/`); swap it
   * for a registry API (e.g. an admin storage-usage endpoint) once one exists.
   */
  storedBlobBytes(): Promise<number>;
  /**
   * Requests the registry has served so far, in order, when it can tell: the reference
   * registry's access log, or our registry's Miniflare request log (REGISTRY_LOG_REQUESTS=1).
   */
  requests?(): RequestRecord[];
  stop(): Promise<void>;
}

/** One request as the registry logged it; `path` has no query (Miniflare logs none). */
interface RequestRecord {
  method: string;
  path: string;
  status: number;
}

async function startTarget(): Promise<Target> {
  if (USE_REFERENCE) {
    const auth = { user: "e2e-admin", password: randomBytes(12).toString("hex") };
    const registry = await startReferenceRegistry({ auth });
    return {
      name: "docker-registry (reference)",
      host: registry.host,
      creds: `${auth.user}:${auth.password}`,
      storedBlobBytes: () => directoryBytes(registry.blobsDir),
      requests: () =>
        registry.accessLog().map((entry: AccessLogEntry) => ({
          method: entry.method,
          path: entry.uri.split("?")[0]!,
          status: entry.status,
        })),
      stop: () => registry.stop(),
    };
  }
  // REGISTRY_LOG_REQUESTS is start.ts's own switch (one log line per request), so the tests can
  // see which requests skopeo sent; it costs one loopback call per request, not per byte.
  const registry = await startRegistry({ env: { REGISTRY_LOG_REQUESTS: "1" } });
  return {
    name: "edge-registry (npm start)",
    host: new URL(registry.url).host,
    creds: `${registry.adminUser}:${registry.adminPassword}`,
    storedBlobBytes: () => miniflareR2BlobBytes(registry.stateDir),
    requests: () => parseMiniflareRequestLog(registry.output()),
    stop: async () => {
      await registry.stop();
    },
  };
}

let target: Target;
let workDir: string;
/** Unique per run, so repositories never collide with leftovers of another run. */
const runId = randomBytes(4).toString("hex");

beforeAll(async () => {
  await assertSkopeoInstalled();
  workDir = await mkdtemp(join(tmpdir(), "e2e-skopeo-"));
  target = await startTarget();
});

afterAll(async () => {
  await target?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe("skopeo end to end", () => {
  it("pushes a multi-layer image, inspects it, lists its tags and pulls it back byte for byte", async () => {
    const dir = await testDir("multi");
    const image = await createOciLayout(join(dir, "src"), {
      layers: [{ size: 1 * MiB }, { size: 3 * MiB }, { size: 5 * MiB }, { size: 8 * MiB }],
      tag: "v1",
    });
    const skopeo = await Skopeo.create(dir, { creds: target.creds });
    const repo = repoName("multi");

    // Plain `skopeo copy`, as a user types it: skopeo gzips the layers and streams them.
    await skopeo.ok("copy", ...skopeo.destFlags(), image.ref, `docker://${repo}:v1`);

    const raw = await skopeo.ok("inspect", "--raw", ...skopeo.flags(), `docker://${repo}:v1`);
    const rawBytes = Buffer.from(raw.stdout.replace(/\n$/, ""));
    const pushedDigest = sha256(rawBytes);
    const pushed = JSON.parse(rawBytes.toString("utf8")) as {
      config: Descriptor;
      layers: Descriptor[];
    };
    expect(pushed.config.digest).toBe(image.config.digest);
    expect(pushed.layers).toHaveLength(4);
    for (const layer of pushed.layers) {
      expect(layer.mediaType).toBe("application/vnd.oci.image.layer.v1.tar+gzip");
    }

    const inspected = JSON.parse(
      (await skopeo.ok("inspect", ...skopeo.flags(), `docker://${repo}:v1`)).stdout,
    );
    expect(inspected.Digest).toBe(pushedDigest);
    expect(inspected.Layers).toEqual(pushed.layers.map((layer) => layer.digest));
    expect(inspected.Architecture).toBe("amd64");
    expect(inspected.Os).toBe("linux");
    expect(inspected.RepoTags).toEqual(["v1"]);

    const tags = JSON.parse(
      (await skopeo.ok("list-tags", ...skopeo.flags(), `docker://${repo}`)).stdout,
    );
    expect(tags.Tags).toEqual(["v1"]);

    // Pull into a fresh layout and check every byte: the manifest as the registry stores it,
    // every blob re-hashed against its name, and each layer, unzipped, equal to the source tar.
    const back = join(dir, "back");
    await skopeo.ok(
      "copy",
      "--preserve-digests",
      ...skopeo.srcFlags(),
      `docker://${repo}:v1`,
      `oci:${back}:v1`,
    );
    const pulled = await readOciLayoutDigests(back);
    expect(pulled.manifests).toHaveLength(1);
    const manifest = pulled.manifests[0]!;
    expect(manifest.digest).toBe(pushedDigest);
    expect(manifest.bytes.toString("utf8")).toBe(rawBytes.toString("utf8"));
    expect(pulled.blobs).toEqual(
      new Map([
        [pushedDigest, rawBytes.length],
        ...[pushed.config, ...pushed.layers].map((d) => [d.digest, d.size] as const),
      ]),
    );
    expect(await readFile(blobPath(back, image.config.digest))).toEqual(
      await readFile(blobPath(image.dir, image.config.digest)),
    );
    for (const [index, layer] of pushed.layers.entries()) {
      expect(await gunzipDigest(blobPath(back, layer.digest))).toBe(image.layers[index]!.digest);
    }
  });

  it("round-trips an image unchanged with --preserve-digests", async () => {
    const dir = await testDir("exact");
    const image = await createOciLayout(join(dir, "src"), {
      layers: [{ size: 2 * MiB }, { size: 1 * MiB + 123 }],
      tag: "v1",
    });
    const skopeo = await Skopeo.create(dir, { creds: target.creds });
    const repo = repoName("exact");

    await skopeo.ok(
      "copy",
      "--preserve-digests",
      ...skopeo.destFlags(),
      image.ref,
      `docker://${repo}:v1`,
    );
    const inspected = JSON.parse(
      (await skopeo.ok("inspect", ...skopeo.flags(), `docker://${repo}:v1`)).stdout,
    );
    expect(inspected.Digest).toBe(image.manifest.digest);
    expect(inspected.Layers).toEqual(image.layers.map((layer) => layer.digest));

    const back = join(dir, "back");
    await skopeo.ok(
      "copy",
      "--preserve-digests",
      ...skopeo.srcFlags(),
      `docker://${repo}:v1`,
      `oci:${back}:v1`,
    );
    const source = await readOciLayoutDigests(image.dir);
    const pulled = await readOciLayoutDigests(back);
    expect(pulled.blobs).toEqual(source.blobs);
    expect(pulled.manifests.map((m) => [m.tag, m.digest, m.bytes.toString("utf8")])).toEqual(
      source.manifests.map((m) => [m.tag, m.digest, m.bytes.toString("utf8")]),
    );
  });

  it("tags one image several times", async () => {
    const dir = await testDir("tags");
    const image = await createOciLayout(join(dir, "src"), {
      layers: [{ size: 1 * MiB }],
      tag: "v1",
    });
    const skopeo = await Skopeo.create(dir, { creds: target.creds });
    const repo = repoName("tags");

    for (const tag of ["v1", "v2", "latest"]) {
      await skopeo.ok(
        "copy",
        "--preserve-digests",
        ...skopeo.destFlags(),
        image.ref,
        `docker://${repo}:${tag}`,
      );
    }
    const tags = JSON.parse(
      (await skopeo.ok("list-tags", ...skopeo.flags(), `docker://${repo}`)).stdout,
    );
    expect([...tags.Tags].sort()).toEqual(["latest", "v1", "v2"]);
    for (const reference of [":v1", ":v2", ":latest", `@${image.manifest.digest}`]) {
      const inspected = JSON.parse(
        (await skopeo.ok("inspect", "--no-tags", ...skopeo.flags(), `docker://${repo}${reference}`))
          .stdout,
      );
      expect(inspected.Digest).toBe(image.manifest.digest);
    }
  });

  it("skips every blob when the same image is pushed again", async () => {
    const dir = await testDir("again");
    const image = await createOciLayout(join(dir, "src"), {
      layers: [{ size: 4 * MiB }, { size: 12 * MiB }],
      tag: "v1",
    });
    const skopeo = await Skopeo.create(dir, { creds: target.creds });
    const repo = repoName("again");
    const push = () =>
      skopeo.ok(
        "copy",
        "--preserve-digests",
        ...skopeo.destFlags(),
        image.ref,
        `docker://${repo}:v1`,
      );

    const first = await push();
    const stored = await target.storedBlobBytes();
    const seen = (await settledRequests())?.length ?? 0;
    const second = await push();
    report(`push ${mib(image.totalBlobBytes)}: first ${first.ms} ms, again ${second.ms} ms`);

    expect(await target.storedBlobBytes()).toBe(stored);
    const during = (await settledRequests())?.slice(seen);
    if (during) {
      // Every blob answered a HEAD with 200: no upload session was even opened.
      expect(during.filter((r) => r.path.includes("/blobs/uploads/"))).toEqual([]);
      expect(
        during.filter((r) => r.method === "HEAD" && r.status === 200).length,
      ).toBeGreaterThanOrEqual(image.layers.length + 1);
    }
  });

  it("stores each layer once when the same image goes to other repositories", async () => {
    const dir = await testDir("dedupe");
    const image = await createOciLayout(join(dir, "src"), {
      layers: [{ size: 2 * MiB }, { size: 4 * MiB }, { size: 6 * MiB }],
      tag: "v1",
    });
    const skopeo = await Skopeo.create(dir, { creds: target.creds });
    const [repoA, repoB, repoC] = [
      repoName("dedupe-a"),
      repoName("dedupe-b"),
      repoName("dedupe-c"),
    ];

    const before = await target.storedBlobBytes();
    await skopeo.ok(
      "copy",
      "--preserve-digests",
      ...skopeo.destFlags(),
      image.ref,
      `docker://${repoA}:v1`,
    );
    const afterA = await target.storedBlobBytes();
    // Guards the measure itself: if it saw nothing of the first push it would prove nothing.
    expect(afterA - before).toBeGreaterThanOrEqual(image.totalBlobBytes);

    // Same machine, same host name: skopeo's blob-info cache knows repoA holds these blobs, so
    // it HEADs them there and asks for a cross-repository mount.
    const seen = (await settledRequests())?.length ?? 0;
    const toB = await skopeo.ok(
      "copy",
      "--preserve-digests",
      ...skopeo.destFlags(),
      image.ref,
      `docker://${repoB}:v1`,
    );
    const duringB = (await settledRequests())?.slice(seen);
    // A mount is the only upload POST answered 201 (a session start is 202).
    const mounts = duringB?.filter((r) => r.method === "POST" && r.status === 201);
    // `localhost` is another registry to the cache: no mount candidates, so skopeo uploads every
    // blob in full and only the registry's content addressing can keep a single copy.
    const seenBeforeC = (await settledRequests())?.length ?? 0;
    const localhostC = repoC.replace(/^127\.0\.0\.1:/, "localhost:");
    const toC = await skopeo.ok(
      "copy",
      "--preserve-digests",
      ...skopeo.destFlags(),
      image.ref,
      `docker://${localhostC}:v1`,
    );
    const duringC = (await settledRequests())?.slice(seenBeforeC);
    const growth = (await target.storedBlobBytes()) - afterA;
    report(
      `dedupe: first push +${afterA - before} B; repo B ${toB.ms} ms ` +
        `(${mounts ? mounts.length : "unknown"} mounts), repo C full upload ${toC.ms} ms; ` +
        `growth after B and C ${growth} B`,
    );
    // Only manifests may add bytes; any layer (≥ 2 MiB) stored again would blow this bound.
    expect(growth).toBeLessThan(64 * 1024);
    if (mounts && duringC) {
      expect(mounts.length, "every layer mounted from repo A").toBeGreaterThanOrEqual(
        image.layers.length,
      );
      const uploadsToC = duringC.filter((r) => r.method === "PATCH" && r.status === 202);
      expect(uploadsToC.length, "repo C re-uploads every layer").toBeGreaterThanOrEqual(
        image.layers.length,
      );
    }

    for (const repo of [repoA, repoB, repoC]) {
      const inspected = JSON.parse(
        (await skopeo.ok("inspect", ...skopeo.flags(), `docker://${repo}:v1`)).stdout,
      );
      expect(inspected.Digest).toBe(image.manifest.digest);
    }
  });

  it("deletes a manifest by digest while another repository keeps it", async () => {
    const dir = await testDir("delete");
    const image = await createOciLayout(join(dir, "src"), {
      layers: [{ size: 1 * MiB }, { size: 2 * MiB }],
      tag: "v1",
    });
    const skopeo = await Skopeo.create(dir, { creds: target.creds });
    const [doomed, kept] = [repoName("delete-x"), repoName("delete-y")];
    for (const repo of [doomed, kept]) {
      await skopeo.ok(
        "copy",
        "--preserve-digests",
        ...skopeo.destFlags(),
        image.ref,
        `docker://${repo}:v1`,
      );
    }

    await skopeo.ok("delete", ...skopeo.flags(), `docker://${doomed}@${image.manifest.digest}`);
    const byDigest = await skopeo.run(
      "inspect",
      ...skopeo.flags(),
      `docker://${doomed}@${image.manifest.digest}`,
    );
    expect(byDigest.code).not.toBe(0);
    expect(byDigest.stderr).toMatch(/manifest unknown/i);
    const byTag = await skopeo.run("inspect", ...skopeo.flags(), `docker://${doomed}:v1`);
    expect(byTag.code).not.toBe(0);
    expect(byTag.stderr).toMatch(/manifest unknown/i);

    const inspected = JSON.parse(
      (await skopeo.ok("inspect", ...skopeo.flags(), `docker://${kept}:v1`)).stdout,
    );
    expect(inspected.Digest).toBe(image.manifest.digest);
    const back = join(dir, "back");
    await skopeo.ok(
      "copy",
      "--preserve-digests",
      ...skopeo.srcFlags(),
      `docker://${kept}:v1`,
      `oci:${back}:v1`,
    );
    expect((await readOciLayoutDigests(back)).blobs).toEqual(
      (await readOciLayoutDigests(image.dir)).blobs,
    );
  });

  it("pushes and pulls back a single layer larger than 200 MiB", async () => {
    const dir = await testDir("big");
    const image = await createOciLayout(join(dir, "src"), {
      layers: [{ size: 210 * MiB }],
      tag: "v1",
    });
    const skopeo = await Skopeo.create(dir, { creds: target.creds });
    const repo = repoName("big");
    try {
      // Default copy: skopeo gzips on the fly and streams one chunked PATCH of unknown length.
      const push = await skopeo.ok("copy", ...skopeo.destFlags(), image.ref, `docker://${repo}:v1`);
      const raw = await skopeo.ok("inspect", "--raw", ...skopeo.flags(), `docker://${repo}:v1`);
      const pushed = JSON.parse(raw.stdout) as { layers: Descriptor[] };
      expect(pushed.layers).toHaveLength(1);
      const layer = pushed.layers[0]!;
      expect(layer.size).toBeGreaterThan(200 * MiB);

      const back = join(dir, "back");
      const pull = await skopeo.ok(
        "copy",
        "--preserve-digests",
        ...skopeo.srcFlags(),
        `docker://${repo}:v1`,
        `oci:${back}:v1`,
      );
      const pulled = await readOciLayoutDigests(back); // re-hashes every blob
      expect(pulled.blobs.get(layer.digest)).toBe(layer.size);
      expect(await gunzipDigest(blobPath(back, layer.digest))).toBe(image.layers[0]!.digest);
      report(`big layer ${mib(layer.size)}: push ${push.ms} ms, pull ${pull.ms} ms`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses anonymous and wrong-password access", async () => {
    const dir = await testDir("anon");
    const image = await createOciLayout(join(dir, "src"), {
      layers: [{ size: 64 * 1024 }],
      tag: "v1",
    });
    const skopeo = await Skopeo.create(dir, { creds: target.creds });
    const repo = repoName("anon");

    const ping = await fetch(`http://${target.host}/v2/`);
    await ping.body?.cancel();
    expect(ping.status).toBe(401);
    // Ours starts the token flow (Bearer); the reference registry in htpasswd mode asks for Basic.
    expect(ping.headers.get("www-authenticate")).toMatch(/^(Bearer|Basic) realm=/i);

    const [user] = target.creds.split(":");
    const wrong = [`--creds=${user}:not-the-password`];
    const anonymousPush = await skopeo.run(
      "copy",
      "--dest-tls-verify=false",
      image.ref,
      `docker://${repo}:v1`,
    );
    const anonymousInspect = await skopeo.run(
      "inspect",
      "--tls-verify=false",
      `docker://${repo}:v1`,
    );
    const anonymousTags = await skopeo.run("list-tags", "--tls-verify=false", `docker://${repo}`);
    const wrongInspect = await skopeo.run(
      "inspect",
      "--tls-verify=false",
      ...wrong,
      `docker://${repo}:v1`,
    );
    for (const result of [anonymousPush, anonymousInspect, anonymousTags, wrongInspect]) {
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/unauthorized|authentication required|denied/i);
    }

    // Nothing of the refused push landed.
    const authorized = await skopeo.run("inspect", ...skopeo.flags(), `docker://${repo}:v1`);
    expect(authorized.stderr).toMatch(/manifest unknown|name unknown/i);
  });
});

// ---------------------------------------------------------------------------------------------

/**
 * The target's request log once it has stopped growing: a log line may land a moment after the
 * client has its response, and must not be counted in the next step's window.
 */
async function settledRequests(): Promise<RequestRecord[] | undefined> {
  if (!target.requests) return undefined;
  let records = target.requests();
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 150));
    const again = target.requests();
    if (again.length === records.length) return again;
    records = again;
  }
}

// `[mf:info] POST /v2/a/b/blobs/uploads/ 201 Created (3ms)`: Miniflare's request log line.
const MINIFLARE_REQUEST_LINE = /^\[mf:info\] ([A-Z]+) (\S+) (\d{3}) /gm;

function parseMiniflareRequestLog(output: string): RequestRecord[] {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour codes.
  const plain = output.replace(/\x1b\[[0-9;]*m/g, "");
  return [...plain.matchAll(MINIFLARE_REQUEST_LINE)].map((match) => ({
    method: match[1]!,
    path: match[2]!.split("?")[0]!,
    status: Number(match[3]),
  }));
}

/** `<host>/e2e-<run>/<name>`: unique per run, lowercase as the name grammar wants. */
function repoName(name: string): string {
  return `${target.host}/e2e-${runId}/${name}`;
}

async function testDir(name: string): Promise<string> {
  return mkdtemp(join(workDir, `${name}-`));
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** Digest of a gzip blob's uncompressed content, streamed. */
async function gunzipDigest(path: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(path), createGunzip(), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) hash.update(chunk);
  });
  return `sha256:${hash.digest("hex")}`;
}

/** Total size of the regular files below `dir` (0 if it does not exist yet). */
async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  let entries: string[];
  try {
    entries = await readdir(dir, { recursive: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw error;
  }
  for (const entry of entries) {
    const info = await stat(join(dir, entry)).catch(() => undefined);
    if (info?.isFile()) total += info.size;
  }
  return total;
}

/**
 * Bytes in Miniflare's persisted R2 blob store: `<stateDir>/v3/r2/<bucket>/blobs/` holds one
 * file per stored object (or multipart part); object metadata lives in SQLite elsewhere.
 */
async function miniflareR2BlobBytes(stateDir: string): Promise<number> {
  const r2 = join(stateDir, "v3", "r2");
  let buckets: string[];
  try {
    buckets = await readdir(r2);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw error;
  }
  let total = 0;
  for (const bucket of buckets) total += await directoryBytes(join(r2, bucket, "blobs"));
  return total;
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

function report(line: string): void {
  console.log(`[e2e ${target.name}] ${line}`);
}
