// End-to-end identity and access: the registry started exactly as `npm start` does, set up through
// the /api/v1 management API over HTTP as an operator would (as the bootstrap admin), then driven
// by skopeo with each account's own credentials (`--creds`, `--src-creds`, `--dest-creds`), the
// way users and CI jobs log in:
//   - alice (a user, password) pushes to and pulls from her own namespace, also with an app token;
//   - the robot `<org>+ci` (write on the organization's private and public repositories) pushes;
//   - bob (read on the private repository) pulls it, and his push is refused and changes nothing;
//   - anonymous clients pull the public repository but not the private one, and cannot push;
//   - alice sees nothing of the organization's private repository;
//   - the robot, pushing alice's image, cannot probe or mount her blobs (it uploads them anew).
//
// Every image has fresh random layers (see test/support/skopeo.ts on skopeo's machine-wide
// blob-info cache) and every account and organization name is unique per run.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createOciLayout,
  type OciLayoutImage,
  readOciLayoutDigests,
} from "../support/oci-layout.ts";
import { type RunningRegistry, startRegistry } from "../support/registry-process.ts";
import { assertSkopeoInstalled, Skopeo } from "../support/skopeo.ts";

const KiB = 1024;
const runId = randomBytes(3).toString("hex");
const alice = { name: `alice${runId}`, password: `alice-${randomBytes(9).toString("hex")}` };
const bob = { name: `bob${runId}`, password: `bob-${randomBytes(9).toString("hex")}` };
const org = `org${runId}`;
const robotName = `${org}+ci`;
const privateRepo = `${org}/private`;
const publicRepo = `${org}/public`;
const aliceRepo = `${alice.name}/app`;

/** What skopeo prints when the registry refuses (401 after the token dance, or 403). */
const REFUSED = /unauthorized|denied|authentication required/i;

let registry: RunningRegistry;
let host: string;
let workDir: string;
let skopeo: Skopeo;
let adminCreds: string;
let robotCreds: string;
let aliceCreds: string;
let bobCreds: string;
/** Digest of the image the robot pushed to `<org>/private:v1`. */
let robotPrivateDigest: string;
let publicDigest: string;
/** The image alice pushed to `alice/app:v1`. */
let aliceImage: OciLayoutImage;

const started = Date.now();
const timings: string[] = [];

function basic(creds: string): string {
  return `Basic ${Buffer.from(creds).toString("base64")}`;
}

/** One management API call as `creds` (default: the bootstrap admin). */
async function api(
  method: string,
  path: string,
  body?: unknown,
  creds = adminCreds,
): Promise<{ status: number; json: unknown }> {
  const response = await fetch(`${registry.url}/api/v1${path}`, {
    method,
    headers: {
      Authorization: basic(creds),
      ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : null };
}

/** A management API call that must answer `expected`; its JSON body. */
async function apiOk<T>(
  method: string,
  path: string,
  body: unknown,
  expected: number,
  creds = adminCreds,
): Promise<T> {
  const { status, json } = await api(method, path, body, creds);
  if (status !== expected) {
    expect.fail(
      `${method} /api/v1${path} answered ${status}, not ${expected}: ${JSON.stringify(json)}`,
    );
  }
  return json as T;
}

/** `docker://<host>/<repo><reference>` */
function ref(repo: string, reference = ""): string {
  return `docker://${host}/${repo}${reference}`;
}

async function image(name: string, sizes: number[]): Promise<OciLayoutImage> {
  return createOciLayout(await mkdtemp(join(workDir, `${name}-`)), {
    layers: sizes.map((size) => ({ size })),
    tag: "v1",
  });
}

async function inspectDigest(repo: string, reference: string, creds: string | null) {
  const result = await skopeo.run(
    "inspect",
    "--no-tags",
    ...skopeo.flags(creds),
    ref(repo, reference),
  );
  return {
    ...result,
    digest:
      result.code === 0 ? (JSON.parse(result.stdout) as { Digest: string }).Digest : undefined,
  };
}

async function tagsOf(repo: string, creds: string | null): Promise<string[]> {
  const result = await skopeo.ok("list-tags", ...skopeo.flags(creds), ref(repo));
  return [...(JSON.parse(result.stdout) as { Tags: string[] }).Tags].sort();
}

/** Pulls `repo:tag` into a fresh OCI layout (registry bytes unchanged); the manifest digest. */
async function pull(repo: string, tag: string, creds: string | null): Promise<string> {
  const dest = await mkdtemp(join(workDir, "pull-"));
  const result = await skopeo.ok(
    "copy",
    "--preserve-digests",
    ...skopeo.srcFlags(creds),
    ref(repo, `:${tag}`),
    `oci:${dest}:${tag}`,
  );
  timings.push(`pull ${repo}:${tag} ${result.ms} ms`);
  const layout = await readOciLayoutDigests(dest); // re-hashes every blob against its name
  expect(layout.manifests).toHaveLength(1);
  return layout.manifests[0]!.digest;
}

async function push(img: OciLayoutImage, repo: string, tag: string, creds: string | null) {
  return skopeo.run(
    "copy",
    "--preserve-digests",
    ...skopeo.destFlags(creds),
    img.ref,
    ref(repo, `:${tag}`),
  );
}

interface RequestRecord {
  method: string;
  /** Without the query (Miniflare logs none). */
  path: string;
  status: number;
}

/** The registry's request log so far: `[mf:info] HEAD /v2/a/b/blobs/sha256:… 404 Not Found (2ms)`. */
function requestLog(): RequestRecord[] {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour codes.
  const plain = registry.output().replace(/\x1b\[[0-9;]*m/g, "");
  return [...plain.matchAll(/^\[mf:info\] ([A-Z]+) (\S+) (\d{3}) /gm)].map((match) => ({
    method: match[1]!,
    path: match[2]!.split("?")[0]!,
    status: Number(match[3]),
  }));
}

/** The request log once it has stopped growing (a line may land just after the response). */
async function settledRequestLog(): Promise<RequestRecord[]> {
  let records = requestLog();
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 150));
    const again = requestLog();
    if (again.length === records.length) return again;
    records = again;
  }
}

beforeAll(async () => {
  await assertSkopeoInstalled();
  workDir = await mkdtemp(join(tmpdir(), "e2e-skopeo-access-"));
  // REGISTRY_LOG_REQUESTS is start.ts's switch for one log line per request: the mount check
  // reads which requests skopeo sent.
  registry = await startRegistry({ env: { REGISTRY_LOG_REQUESTS: "1" } });
  host = new URL(registry.url).host;
  adminCreds = `${registry.adminUser}:${registry.adminPassword}`;
  aliceCreds = `${alice.name}:${alice.password}`;
  bobCreds = `${bob.name}:${bob.password}`;
  skopeo = await Skopeo.create(workDir); // no default credentials: every call names its own
  timings.push(`registry start ${Date.now() - started} ms`);

  // The operator's setup, all over HTTP as the bootstrap admin.
  const setupStart = Date.now();
  for (const user of [alice, bob]) {
    await apiOk("POST", "/users", { username: user.name, password: user.password }, 201);
  }
  await apiOk("POST", "/organizations", { name: org }, 201);
  await apiOk("POST", "/repositories", { name: privateRepo, visibility: "private" }, 201);
  await apiOk("POST", "/repositories", { name: publicRepo, visibility: "public" }, 201);
  const robot = await apiOk<{ name: string; token: string }>(
    "POST",
    `/namespaces/${org}/robots`,
    { name: "ci" },
    201,
  );
  expect(robot.name).toBe(robotName);
  robotCreds = `${robot.name}:${robot.token}`;
  for (const repo of [privateRepo, publicRepo]) {
    await apiOk(
      "PUT",
      `/repositories/${repo}/permissions/robot/${robotName}`,
      { role: "write" },
      200,
    );
  }
  await apiOk(
    "PUT",
    `/repositories/${privateRepo}/permissions/user/${bob.name}`,
    { role: "read" },
    200,
  );
  timings.push(`API setup ${Date.now() - setupStart} ms`);
});

afterAll(async () => {
  await registry?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
  console.log(`[skopeo-access] ${timings.join("; ")}; total ${Date.now() - started} ms`);
});

describe("skopeo with users, robots, read-only and anonymous credentials", () => {
  it("alice pushes to her own namespace with her password and pulls it back", async () => {
    const img = await image("alice", [256 * KiB, 64 * KiB]);
    // Plain copy, as a user types it (skopeo gzips the layers); the repository does not exist
    // yet: her push creates it in her own namespace.
    const pushed = await skopeo.ok(
      "copy",
      ...skopeo.destFlags(aliceCreds),
      img.ref,
      ref(aliceRepo, ":v1"),
    );
    timings.push(`alice push ${pushed.ms} ms`);
    const inspected = await inspectDigest(aliceRepo, ":v1", aliceCreds);
    expect(inspected.code, inspected.stderr).toBe(0);
    expect(await pull(aliceRepo, "v1", aliceCreds)).toBe(inspected.digest);
    expect(await tagsOf(aliceRepo, aliceCreds)).toEqual(["v1"]);
    aliceImage = img;
  });

  it("the robot pushing alice's image gets nothing out of her repository", async () => {
    // skopeo's blob-info cache knows alice/app holds these blobs, so it first probes them there
    // (HEAD) with a token for alice/app, as it would to mount them. The robot may not read
    // alice/app: every probe must be refused (no existence oracle, no mount), and the blobs
    // uploaded anew.
    // Settle first: a line of the previous test may still be on its way into the log.
    const seen = (await settledRequestLog()).length;
    const pushed = await skopeo.run(
      "copy",
      ...skopeo.destFlags(robotCreds),
      aliceImage.ref,
      ref(privateRepo, ":from-alice"),
    );
    expect(pushed.code, pushed.stderr).toBe(0);
    const during = (await settledRequestLog()).slice(seen);
    const probes = during.filter((r) => r.path.startsWith(`/v2/${aliceRepo}/`));
    expect(probes.length, "skopeo probed alice/app (blob-info cache)").toBeGreaterThan(0);
    for (const probe of probes) expect(probe.status, `${probe.method} ${probe.path}`).toBe(401);
    const mounts = during.filter((r) => r.method === "POST" && r.status === 201);
    expect(mounts).toEqual([]);
    const uploads = during.filter(
      (r) => r.method === "PUT" && r.path.startsWith(`/v2/${privateRepo}/blobs/uploads/`),
    );
    expect(uploads.length).toBe(aliceImage.layers.length + 1); // every layer and the config
    expect(await tagsOf(aliceRepo, aliceCreds)).toEqual(["v1"]);
    // Out of the way of the checks below, which expect only the robot's v1 here.
    const deleted = await skopeo.run(
      "delete",
      ...skopeo.flags(adminCreds),
      ref(privateRepo, ":from-alice"),
    );
    expect(deleted.code, deleted.stderr).toBe(0);
  });

  it("the robot pushes to the organization's private and public repositories with its token", async () => {
    const priv = await image("robot-private", [1024 * KiB, 64 * KiB]);
    const pushed = await push(priv, privateRepo, "v1", robotCreds);
    expect(pushed.code, pushed.stderr).toBe(0);
    timings.push(`robot push ${pushed.ms} ms`);
    const inspected = await inspectDigest(privateRepo, ":v1", robotCreds);
    expect(inspected.code, inspected.stderr).toBe(0);
    expect(inspected.digest).toBe(priv.manifest.digest);
    robotPrivateDigest = priv.manifest.digest;

    const pub = await image("robot-public", [128 * KiB]);
    const toPublic = await push(pub, publicRepo, "v1", robotCreds);
    expect(toPublic.code, toPublic.stderr).toBe(0);
    publicDigest = pub.manifest.digest;
    expect((await inspectDigest(publicRepo, ":v1", robotCreds)).digest).toBe(publicDigest);
  });

  it("bob (read) pulls the private repository, but his push is refused and changes nothing", async () => {
    const inspected = await inspectDigest(privateRepo, ":v1", bobCreds);
    expect(inspected.code, inspected.stderr).toBe(0);
    expect(inspected.digest).toBe(robotPrivateDigest);
    expect(await pull(privateRepo, "v1", bobCreds)).toBe(robotPrivateDigest);

    const img = await image("bob", [64 * KiB]);
    for (const tag of ["v1", "bob"]) {
      const refused = await push(img, privateRepo, tag, bobCreds);
      expect(refused.code, `bob's push to :${tag} must fail`).not.toBe(0);
      expect(refused.stderr).toMatch(REFUSED);
    }
    // The admin sees the repository exactly as the robot left it.
    expect((await inspectDigest(privateRepo, ":v1", adminCreds)).digest).toBe(robotPrivateDigest);
    expect(await tagsOf(privateRepo, adminCreds)).toEqual(["v1"]);
    const bobsManifest = await inspectDigest(privateRepo, `@${img.manifest.digest}`, adminCreds);
    expect(bobsManifest.code).not.toBe(0);
    expect(bobsManifest.stderr).toMatch(/manifest unknown/i);
  });

  it("anonymous pulls the public repository, not the private one, and cannot push", async () => {
    const inspected = await inspectDigest(publicRepo, ":v1", null);
    expect(inspected.code, inspected.stderr).toBe(0);
    expect(inspected.digest).toBe(publicDigest);
    expect(await tagsOf(publicRepo, null)).toEqual(["v1"]);
    expect(await pull(publicRepo, "v1", null)).toBe(publicDigest);

    const secret = await inspectDigest(privateRepo, ":v1", null);
    expect(secret.code).not.toBe(0);
    expect(secret.stderr).toMatch(REFUSED);
    const dest = await mkdtemp(join(workDir, "anon-private-"));
    const copy = await skopeo.run(
      "copy",
      ...skopeo.srcFlags(null),
      ref(privateRepo, ":v1"),
      `oci:${dest}:v1`,
    );
    expect(copy.code).not.toBe(0);
    expect(copy.stderr).toMatch(REFUSED);

    const img = await image("anonymous", [64 * KiB]);
    for (const tag of ["v1", "anon"]) {
      const refused = await push(img, publicRepo, tag, null);
      expect(refused.code, `anonymous push to :${tag} must fail`).not.toBe(0);
      expect(refused.stderr).toMatch(REFUSED);
    }
    expect((await inspectDigest(publicRepo, ":v1", adminCreds)).digest).toBe(publicDigest);
    expect(await tagsOf(publicRepo, adminCreds)).toEqual(["v1"]);
  });

  it("alice cannot see or pull the organization's private repository", async () => {
    const inspected = await inspectDigest(privateRepo, ":v1", aliceCreds);
    expect(inspected.code).not.toBe(0);
    expect(inspected.stderr).toMatch(REFUSED);
    const tags = await skopeo.run("list-tags", ...skopeo.flags(aliceCreds), ref(privateRepo));
    expect(tags.code).not.toBe(0);
    expect(tags.stderr).toMatch(REFUSED);
    const dest = await mkdtemp(join(workDir, "alice-private-"));
    const copy = await skopeo.run(
      "copy",
      ...skopeo.srcFlags(aliceCreds),
      ref(privateRepo, ":v1"),
      `oci:${dest}:v1`,
    );
    expect(copy.code).not.toBe(0);
    expect(copy.stderr).toMatch(REFUSED);
    // Nor can she push to it.
    const img = await image("alice-private", [64 * KiB]);
    const refused = await push(img, privateRepo, "alice", aliceCreds);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(REFUSED);

    // The management API and the catalog do not even admit the name exists.
    const described = await api("GET", `/repositories/${privateRepo}`, undefined, aliceCreds);
    expect(described.status).toBe(404);
    const catalog = await fetch(`${registry.url}/v2/_catalog`, {
      headers: { Authorization: basic(aliceCreds) },
    });
    expect(catalog.status).toBe(200);
    const { repositories } = (await catalog.json()) as { repositories: string[] };
    expect(repositories).toContain(aliceRepo);
    expect(repositories).not.toContain(privateRepo);
    // The robot's push still stands.
    expect((await inspectDigest(privateRepo, ":v1", adminCreds)).digest).toBe(robotPrivateDigest);
    expect(await tagsOf(privateRepo, adminCreds)).toEqual(["v1"]);
  });

  it("an app token from POST /api/v1/user/tokens works as alice's skopeo password", async () => {
    const token = await apiOk<{ token: string }>(
      "POST",
      "/user/tokens",
      { name: "skopeo e2e" },
      201,
      aliceCreds,
    );
    const tokenCreds = `${alice.name}:${token.token}`;
    const img = await image("alice-token", [64 * KiB]);
    const pushed = await push(img, aliceRepo, "v2", tokenCreds);
    expect(pushed.code, pushed.stderr).toBe(0);
    expect((await inspectDigest(aliceRepo, ":v2", tokenCreds)).digest).toBe(img.manifest.digest);
    expect(await tagsOf(aliceRepo, tokenCreds)).toEqual(["v1", "v2"]);
    // The token is alice's, no more: the private repository stays closed to it.
    const secret = await inspectDigest(privateRepo, ":v1", tokenCreds);
    expect(secret.code).not.toBe(0);
    expect(secret.stderr).toMatch(REFUSED);
  });
});
