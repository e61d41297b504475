// End-to-end builds from git webhooks (issue 6, "Tests"), everything real: the registry started as
// `npm start` does (its own fleet host switched off, REGISTRY_FLEET=off, so this file decides
// which hosts run), a busybox base image pushed with skopeo, a git repository made here and served
// by `git daemon` on loopback, a GitHub trigger made through the API, GitHub-style push webhooks
// signed with its secret, and the real fleet daemon (build-fleet/bin/build-fleet.ts, namespace
// driver) building with buildah and pushing with the build token.
//   1. a signed push → 202 → built on a fleet host → the image under every templated tag, pulled
//      back with skopeo (the RUN step's file is in a layer), every phase in the build's log;
//   2. a forged signature, a tampered body, a replayed delivery and a filtered branch change
//      nothing (no build, no tag), and the refused ones are audited;
//   3. a fleet host killed (SIGKILL) mid-build: its sandbox dies with it, the lease lapses and a
//      second host finishes the build as attempt 2.
// Skipped, saying why, only where buildah, bwrap or git are missing.
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BuildWatchMessage } from "../../schema/builds.ts";
import { buildBusyboxBaseImage } from "../support/base-image.ts";
import {
  type Api,
  adminApi,
  type CreatedTrigger,
  expectJson,
  fleetCredentialOf,
  githubPushBody,
  githubSignature,
  isFinished,
  listBuildIds,
  readBuildLog,
  type SentHook,
  sendGithubPush,
  waitForBuild,
} from "../support/builds.ts";
import { type FleetHost, isAlive, startFleetHost } from "../support/fleet-host.ts";
import { type GitServer, type GitWorkingCopy, startGitServer } from "../support/git-server.ts";
import { type RunningRegistry, startRegistry } from "../support/registry-process.ts";
import { assertSkopeoInstalled, Skopeo } from "../support/skopeo.ts";

const missingTools = ["buildah", "bwrap", "git"].filter(
  (tool) => spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0,
);
if (missingTools.length > 0) {
  console.warn(
    `builds-webhook: skipped: ${missingTools.join(", ")} not installed ` +
      "(apt-get install buildah bubblewrap git runc uidmap)",
  );
}

const TEMPLATES = ["latest@default", "{branch}", "{sha:7}"];

let registry: RunningRegistry;
let api: Api;
let work: string;
let skopeo: Skopeo;
let gitServer: GitServer;
let source: GitWorkingCopy;
let trigger: CreatedTrigger;
let credential: string;
/** `127.0.0.1:<port>`: how image references name the registry. */
let registryHost: string;
let repository: string;
let baseImage: string;
/** Every fleet host started here, stopped (or found dead) in afterAll. */
const hosts: FleetHost[] = [];
/** Processes of killed hosts that outlived them: ended in afterAll. */
const leftovers = new Set<number>();
/** Test 1's accepted hook: test 2 replays it byte for byte. */
let firstHook: SentHook | undefined;

describe.skipIf(missingTools.length > 0)("builds from git webhooks, end to end", () => {
  beforeAll(async () => {
    await assertSkopeoInstalled();
    work = await mkdtemp(path.join(os.tmpdir(), "builds-webhook-"));
    // Assigned as each comes up, so afterAll stops whatever started if another failed.
    const [, , base] = await Promise.all([
      startRegistry({ env: { REGISTRY_FLEET: "off" } }).then((started) => (registry = started)),
      startGitServer().then((git) => (gitServer = git)),
      buildBusyboxBaseImage(),
    ]);
    api = adminApi(registry);
    credential = fleetCredentialOf(registry);
    registryHost = new URL(registry.url).host;
    repository = `${registry.adminUser}/app`;
    baseImage = `${registryHost}/${registry.adminUser}/base:latest`;
    skopeo = await Skopeo.create(work, {
      creds: `${registry.adminUser}:${registry.adminPassword}`,
    });
    try {
      await skopeo.ok(
        "copy",
        ...skopeo.destFlags(),
        `oci-archive:${base.archive}`,
        `docker://${baseImage}`,
      );
    } finally {
      await base.cleanup();
    }
    await expectJson(
      api("/repositories", { method: "POST", body: JSON.stringify({ name: repository }) }),
      201,
    );
    source = await gitServer.createRepository("app", "main");
    trigger = await expectJson<CreatedTrigger>(
      api(`/repositories/${repository}/triggers`, {
        method: "POST",
        body: JSON.stringify({
          provider: "github",
          cloneUrl: gitServer.url("app"),
          dockerfilePath: "Dockerfile",
          contextDir: ".",
          refFilter: { branches: ["main", "release/*"] },
          tagTemplates: TEMPLATES,
        }),
      }),
      201,
    );
  });

  afterAll(async () => {
    // Leftovers first: they may still write into a killed host's work directory.
    for (const pid of leftovers) {
      try {
        if (isAlive(pid)) process.kill(pid, "SIGKILL");
      } catch {
        // Gone meanwhile.
      }
    }
    await Promise.all(hosts.map((host) => host.stop().then(() => host.cleanup())));
    await gitServer?.stop();
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function startHost(hostId: string): Promise<FleetHost> {
    const host = await startFleetHost({ registryUrl: registry.url, credential, hostId });
    hosts.push(host);
    return host;
  }

  async function tagsOf(repo: string): Promise<string[]> {
    const listed = await skopeo.run(
      "list-tags",
      ...skopeo.flags(),
      `docker://${registryHost}/${repo}`,
    );
    if (listed.code !== 0) {
      // A repository with no tag yet.
      if (/unknown|not found|NAME_UNKNOWN/i.test(listed.stderr)) return [];
      throw new Error(listed.stderr);
    }
    return ((JSON.parse(listed.stdout) as { Tags: string[] }).Tags ?? []).sort();
  }

  async function digestOf(reference: string): Promise<string> {
    const inspected = await skopeo.ok("inspect", ...skopeo.flags(), `docker://${reference}`);
    return (JSON.parse(inspected.stdout) as { Digest: string }).Digest;
  }

  it("builds a signed GitHub push on a fleet host: templated tags, pullable image, every phase logged", async () => {
    const marker = randomUUID();
    const commit = await source.commit(
      {
        Dockerfile: [
          `FROM ${baseImage}`,
          `RUN echo "run step ${marker}" > /built-by-run.txt`,
          "COPY greeting.txt /greeting.txt",
          "",
        ].join("\n"),
        "greeting.txt": `hello ${marker}\n`,
      },
      "first build",
    );
    const host = await startHost("e2e-host-1");

    firstHook = await sendGithubPush(registry.hooksUrl, trigger, {
      ref: "refs/heads/main",
      commit,
      defaultBranch: "main",
    });
    const accepted = await expectJson<{ status: string; buildId: string; tags: string[] }>(
      firstHook.response,
      202,
    );
    const sha7 = commit.slice(0, 7);
    expect(accepted).toMatchObject({ status: "accepted", tags: ["latest", "main", sha7] });
    const { buildId } = accepted;

    const build = await waitForBuild(api, repository, buildId, isFinished);
    expect(build, host.output()).toMatchObject({
      phase: "complete",
      attempts: 1,
      host: "e2e-host-1",
      triggerId: trigger.id,
      source: { kind: "git", ref: "refs/heads/main", commit },
      tags: ["latest", "main", sha7],
      error: null,
    });
    expect(build.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(build.phases.map((p) => [p.phase, p.attempt])).toEqual([
      ["queued", 0],
      ["waiting", 1],
      ["pulling", 1],
      ["building", 1],
      ["pushing", 1],
      ["complete", 1],
    ]);

    // The image, under every templated tag, is the build's digest.
    expect(await tagsOf(repository)).toEqual(["latest", "main", sha7].sort());
    for (const tag of ["latest", "main", sha7]) {
      expect(await digestOf(`${registryHost}/${repository}:${tag}`)).toBe(build.digest);
    }

    // Pulled back: the RUN step's file and the COPY from the git context are in its layers.
    const pulled = path.join(work, "pulled");
    await skopeo.ok(
      "copy",
      ...skopeo.srcFlags(),
      `docker://${registryHost}/${repository}:${sha7}`,
      `oci:${pulled}:image`,
    );
    const layers = await layerFiles(pulled);
    const withRun = layers.filter((files) => files.includes("built-by-run.txt"));
    expect(withRun, JSON.stringify(layers)).toHaveLength(1);
    expect(layers.some((files) => files.includes("bin/busybox"))).toBe(true);
    const root = path.join(work, "rootfs");
    await extractLayers(pulled, root);
    expect(await readFile(path.join(root, "built-by-run.txt"), "utf8")).toBe(
      `run step ${marker}\n`,
    );
    expect(await readFile(path.join(root, "greeting.txt"), "utf8")).toBe(`hello ${marker}\n`);

    // The paged log, read in at least three pages, shows every phase, in order.
    const pageSize = Math.max(1, Math.floor(build.logLines / 3));
    const { lines, pages } = await readBuildLog(api, repository, buildId, pageSize);
    expect(pages).toBeGreaterThanOrEqual(3);
    expect(lines).toHaveLength(build.logLines);
    expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i + 1));
    const text = lines.map((l) => l.text);
    const at = (pattern: RegExp) => {
      const index = text.findIndex((t) => pattern.test(t));
      expect(index, `no ${pattern} in the log:\n${text.join("\n")}`).toBeGreaterThanOrEqual(0);
      return index;
    };
    const order = [
      at(/^attempt 1: dispatched to fleet host e2e-host-1$/), // waiting
      at(new RegExp(`^fetching ${commit} \\(refs/heads/main\\)`)), // pulling: the source
      at(new RegExp(`^pulling base image ${escapeRegExp(baseImage)}$`)), // pulling: the base
      at(/STEP 2\/3: RUN echo/), // building
      at(/STEP 3\/3: COPY greeting.txt/),
      at(
        new RegExp(`^pushed ${escapeRegExp(repository)}@${build.digest} as latest, main, ${sha7}$`),
      ), // pushing
      at(new RegExp(`^pushed ${build.digest}$`)), // complete
    ];
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(text.at(-1)).toBe(`pushed ${build.digest}`);

    // A watcher joining after the end gets the same history: every phase, the lines, the end.
    const watched = await watchLog(buildId);
    expect(watched.filter((m) => m.type === "phase").map((m) => m.phase)).toEqual([
      "queued",
      "waiting",
      "pulling",
      "building",
      "pushing",
      "complete",
    ]);
    expect(watched.flatMap((m) => (m.type === "lines" ? m.lines : [])).length).toBe(lines.length);
    expect(watched.at(-1)).toEqual({ type: "end", phase: "complete", digest: build.digest });

    expect(await host.stop()).toEqual({ code: 0, signal: null });
  });

  it("a forged, tampered, replayed or filtered push changes nothing; the refused ones are audited", async () => {
    expect(firstHook, "needs the first test's accepted hook").toBeDefined();
    // No fleet host runs now: anything wrongly queued would stay visible in the builds list.
    const since = new Date(Date.now() - 1000).toISOString();
    const buildsBefore = await listBuildIds(api, repository);
    const tagsBefore = await tagsOf(repository);
    const commit = await source.commit({ "greeting.txt": "not to be built\n" }, "second");

    const forged = await sendGithubPush(registry.hooksUrl, trigger, {
      ref: "refs/heads/main",
      commit,
      defaultBranch: "main",
      signWith: "erh_not-the-trigger-secret",
    });
    expect(await expectJson(forged.response, 401)).toMatchObject({ reason: "forged" });

    // Signed correctly, then changed on the way (another branch): the signature no longer holds.
    const tampered = await tamperedPush(commit);
    expect(await expectJson(tampered.response, 401)).toMatchObject({ reason: "forged" });

    const replayed = await fetch(`${registry.hooksUrl}/hooks/github/${trigger.id}`, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": firstHook!.delivery,
        "X-Hub-Signature-256": githubSignature(trigger.secret, firstHook!.body),
      },
      body: firstHook!.body,
    });
    expect(await expectJson(replayed, 409)).toMatchObject({ reason: "replayed" });

    await source.checkout("feature/x");
    const featureCommit = await source.commit({ "greeting.txt": "feature\n" }, "feature");
    await source.checkout("main");
    const filtered = await sendGithubPush(registry.hooksUrl, trigger, {
      ref: "refs/heads/feature/x",
      commit: featureCommit,
      defaultBranch: "main",
    });
    const ignored = await expectJson<{ status: string; reason: string }>(filtered.response, 200);
    expect(ignored.status).toBe("ignored");
    expect(ignored.reason).toMatch(/^ignored: .*feature\/x/);

    // The refused hooks are audited (the event queue delivers within about a second).
    const rejected = await waitForAudit(
      `?repository=${repository}&kind=hook.rejected&since=${since}`,
      (logs) => logs.length >= 3,
    );
    expect(
      rejected
        .map((e) => [e.actor.kind, e.metadata?.trigger, e.metadata?.reason, e.metadata?.delivery])
        .sort(),
    ).toEqual(
      [
        ["anonymous", trigger.id, "forged", undefined],
        ["anonymous", trigger.id, "forged", undefined],
        ["anonymous", trigger.id, "replayed", firstHook!.delivery],
      ].sort(),
    );

    // A barrier: a build requested after those hooks (a manual one) shows up in the list, and it
    // is the only new one. With no fleet host it stays queued; then it is cancelled.
    const sentinel = await expectJson<{ buildId: string }>(
      api(`/repositories/${repository}/builds?tags=sentinel`, {
        method: "POST",
        headers: { "Content-Type": "text/plain" },
        body: `FROM ${baseImage}\n`,
      }),
      202,
    );
    await waitForBuild(api, repository, sentinel.buildId, () => true, 30_000);
    expect(await listBuildIds(api, repository)).toEqual([sentinel.buildId, ...buildsBefore]);
    const cancelled = await expectJson<{ phase: string }>(
      api(`/repositories/${repository}/builds/${sentinel.buildId}/cancel`, { method: "POST" }),
      200,
    );
    expect(cancelled.phase).toBe("cancelled");
    expect(await tagsOf(repository)).toEqual(tagsBefore);
    const requested = await expectJson<{ logs: AuditEntry[] }>(
      api(`/logs?repository=${repository}&kind=build.requested&since=${since}`),
      200,
    );
    const refusedDeliveries = [forged.delivery, tampered.delivery, filtered.delivery];
    expect(
      requested.logs.filter((e) => refusedDeliveries.includes(String(e.metadata?.delivery))),
    ).toEqual([]);
  });

  it("a fleet host killed mid-build loses its lease; another host finishes the build as attempt 2", async () => {
    const marker = randomUUID();
    const commit = await source.commit(
      {
        Dockerfile: [
          `FROM ${baseImage}`,
          // Quiet for long enough to be killed in; short enough for the retry to finish soon.
          `RUN /bin/busybox sleep 6 && echo "slow ${marker}" > /slow.txt`,
          "",
        ].join("\n"),
      },
      "slow build",
    );
    const hostA = await startHost("e2e-host-a");
    const hook = await sendGithubPush(registry.hooksUrl, trigger, {
      ref: "refs/heads/main",
      commit,
      defaultBranch: "main",
    });
    const { buildId } = await expectJson<{ buildId: string }>(hook.response, 202);
    await waitForBuild(api, repository, buildId, (b) => b.phase === "building", 60_000);
    // Killed inside the RUN step: the sandbox is busy and silent (no write to notice the pipe).
    await waitForLogLine(buildId, /^STEP 2\/2: RUN /);

    const tree = hostA.processTree();
    expect(tree.length, "the sandbox runs below the daemon").toBeGreaterThan(1);
    hostA.kill("SIGKILL");
    expect(await hostA.exited()).toEqual({ code: null, signal: "SIGKILL" });
    const killedAt = Date.now();
    // The sandbox dies with its daemon (its RUN step would sleep on for seconds, writing nothing
    // that could notice the closed pipe); anything still running two seconds later is a leak.
    const survivors = await survivorsOf(tree.slice(1), 2_000);
    expect(survivors, "processes of the killed fleet host that outlived it").toEqual([]);
    const hostB = await startHost("e2e-host-b");

    const build = await waitForBuild(api, repository, buildId, isFinished, 90_000);
    const retryMs = Date.now() - killedAt;
    console.log(`host loss: killed → build complete on the second host in ${retryMs} ms`);
    expect(build, hostB.output()).toMatchObject({
      phase: "complete",
      attempts: 2,
      host: "e2e-host-b",
      error: null,
    });
    const phases = build.phases.map((p) => [p.phase, p.attempt]);
    expect(phases).toEqual([
      ["queued", 0],
      ["waiting", 1],
      ["pulling", 1],
      ["building", 1],
      ["queued", 1],
      ["waiting", 2],
      ["pulling", 2],
      ["building", 2],
      ["pushing", 2],
      ["complete", 2],
    ]);
    expect(build.phases[4]!.detail).toMatch(/^fleet host e2e-host-a stopped heartbeating/);
    const { lines } = await readBuildLog(api, repository, buildId);
    const text = lines.map((l) => l.text);
    expect(text).toContain("attempt 1: dispatched to fleet host e2e-host-a");
    expect(text).toContain("attempt 2: dispatched to fleet host e2e-host-b");
    expect(text.some((t) => /retrying on another host \(attempt 2 of 3\)/.test(t))).toBe(true);
    expect(await digestOf(`${registryHost}/${repository}:${commit.slice(0, 7)}`)).toBe(
      build.digest,
    );
    expect(await digestOf(`${registryHost}/${repository}:main`)).toBe(build.digest);
  });

  async function tamperedPush(commit: string): Promise<SentHook> {
    const body = githubPushBody({ ref: "refs/heads/main", commit, defaultBranch: "main" });
    const sentBody = body.replace("refs/heads/main", "refs/heads/release/1");
    const delivery = randomUUID();
    const response = await fetch(`${registry.hooksUrl}/hooks/github/${trigger.id}`, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": githubSignature(trigger.secret, body),
      },
      body: sentBody,
    });
    return { response, sentAt: Date.now(), delivery, body: sentBody };
  }

  async function waitForLogLine(buildId: string, pattern: RegExp, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const page = await expectJson<{ lines: { text: string }[] }>(
        api(`/repositories/${repository}/builds/${buildId}/logs?limit=1000`),
        200,
      );
      if (page.lines.some((line) => pattern.test(line.text))) return;
      if (Date.now() > deadline) throw new Error(`no ${pattern} in the log of ${buildId}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async function waitForAudit(
    query: string,
    until: (logs: AuditEntry[]) => boolean,
    timeoutMs = 15_000,
  ): Promise<AuditEntry[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { logs } = await expectJson<{ logs: AuditEntry[] }>(api(`/logs${query}`), 200);
      if (until(logs)) return logs;
      if (Date.now() > deadline) throw new Error(`audit log ${query}: ${JSON.stringify(logs)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** Follows the build's log over the WebSocket until its end message. */
  async function watchLog(buildId: string): Promise<BuildWatchMessage[]> {
    const url = `${registry.url.replace(/^http/, "ws")}/api/v1/repositories/${repository}/builds/${buildId}/logs?follow=1`;
    const auth = Buffer.from(`${registry.adminUser}:${registry.adminPassword}`).toString("base64");
    const ws = new (
      WebSocket as unknown as new (
        url: string,
        init: { headers: Record<string, string> },
      ) => WebSocket
    )(url, { headers: { Authorization: `Basic ${auth}` } });
    const messages: BuildWatchMessage[] = [];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the log watch did not end")), 15_000);
      ws.addEventListener("message", (event) => {
        const message = JSON.parse(String(event.data)) as BuildWatchMessage;
        messages.push(message);
        if (message.type === "end") {
          // The last message; closing from this side too, as the CLI does, saves the close
          // handshake's wait.
          clearTimeout(timer);
          resolve();
          ws.close(1000, "done");
        }
      });
      ws.addEventListener("close", () => {
        clearTimeout(timer);
        reject(
          new Error(`the log watch closed before its end message: ${JSON.stringify(messages)}`),
        );
      });
      ws.addEventListener("error", () => {
        clearTimeout(timer);
        reject(new Error("the log watch failed"));
      });
    });
    return messages;
  }
});

interface AuditEntry {
  kind: string;
  actor: { kind: string | null; name: string | null };
  metadata: Record<string, unknown> | null;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The processes of `pids` still running after `graceMs` (afterAll ends them). */
async function survivorsOf(
  pids: number[],
  graceMs: number,
): Promise<{ pid: number; command: string }[]> {
  const deadline = Date.now() + graceMs;
  while (pids.some(isAlive) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const alive = pids.filter(isAlive);
  for (const pid of alive) leftovers.add(pid);
  return alive.map((pid) => ({
    pid,
    command: spawnSync("ps", ["-o", "args=", "-p", String(pid)], { encoding: "utf8" })
      .stdout.trim()
      .slice(0, 160),
  }));
}

/** The files of each layer of the single image in an OCI layout, in layer order. */
async function layerFiles(layout: string): Promise<string[][]> {
  const layers = await layerBlobs(layout);
  return layers.map((blob) => {
    const listed = spawnSync("tar", ["-tf", blob], { encoding: "utf8" });
    if (listed.status !== 0) throw new Error(`tar -tf ${blob}: ${listed.stderr}`);
    return listed.stdout
      .split("\n")
      .filter(Boolean)
      .map((name) => name.replace(/^\.?\//, ""));
  });
}

async function extractLayers(layout: string, into: string): Promise<void> {
  await mkdir(into, { recursive: true });
  for (const blob of await layerBlobs(layout)) {
    const extracted = spawnSync("tar", ["-xf", blob, "-C", into, "--no-same-owner"], {
      encoding: "utf8",
    });
    if (extracted.status !== 0) throw new Error(`tar -xf ${blob}: ${extracted.stderr}`);
  }
}

async function layerBlobs(layout: string): Promise<string[]> {
  const blob = (digest: string) => path.join(layout, "blobs", ...digest.split(":"));
  const index = JSON.parse(await readFile(path.join(layout, "index.json"), "utf8")) as {
    manifests: { digest: string }[];
  };
  expect(index.manifests).toHaveLength(1);
  const manifest = JSON.parse(await readFile(blob(index.manifests[0]!.digest), "utf8")) as {
    layers: { digest: string }[];
  };
  return manifest.layers.map((layer) => blob(layer.digest));
}
