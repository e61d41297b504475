// The fleet daemon end to end on its side of the protocol: jobs pushed over a real WebSocket, the
// source fetched from a git daemon on loopback, the build in the namespace sandbox, the image
// pushed to a real registry (the CNCF reference registry, which ignores the bearer token), and
// graceful shutdown: finishing within the grace period, else handing the build back.
import { execFile } from "node:child_process";
import { chmod, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import type { BuildJob, FleetHostMessage } from "../../schema/builds.ts";
import { type GitServer, startGitServer } from "../../test/support/git-server.ts";
import {
  type ReferenceRegistry,
  startReferenceRegistry,
} from "../../test/support/reference-registry.ts";
import { NamespaceDriver } from "../drivers/namespace.ts";
import { type CoordinatorDouble, startCoordinatorDouble } from "../testing/coordinator-double.ts";
import { FleetDaemon } from "./daemon.ts";
import { RegistryClient } from "./registry-client.ts";

const run = promisify(execFile);
const driver = new NamespaceDriver();
const availability = await driver.available();
const busybox = await readFile("/bin/busybox").catch(() => undefined);
const missing = (
  await Promise.all(
    ["skopeo", "docker-registry", "git"].map(async (tool) =>
      (await run("sh", ["-c", `command -v ${tool}`]).then(
        () => true,
        () => false,
      ))
        ? undefined
        : tool,
    ),
  )
).filter(Boolean);
const skip = !availability.ok
  ? `namespace driver unavailable: ${availability.reason}`
  : busybox === undefined
    ? "no /bin/busybox (apt-get install busybox-static)"
    : missing.length > 0
      ? `missing ${missing.join(", ")} (apt-get install skopeo docker-registry git)`
      : undefined;
if (skip) console.warn(`skipping fleet daemon tests: ${skip}`);

const CREDENTIAL = "erf_daemon-test-credential";
const TOKEN = `eyJhbGciOiJFUzI1NiJ9.build-token-${Math.random().toString(36).slice(2)}.signature`;

let git: GitServer;
let registry: ReferenceRegistry;
let coordinator: CoordinatorDouble | undefined;
let daemon: FleetDaemon | undefined;
let workDir: string;
let commits: { quick: string; sleepy: string; hostile: string; foreign: string };

beforeAll(async () => {
  if (skip) return;
  git = await startGitServer();
  registry = await startReferenceRegistry();
  const repo = await git.createRepository("app");
  const dockerfile = (...steps: string[]) =>
    ["FROM scratch", "COPY busybox /bin/busybox", ...steps].join("\n");
  const exec = (script: string) => `RUN ["/bin/busybox", "sh", "-c", ${JSON.stringify(script)}]`;
  const quick = await repo.commit({
    "docker/busybox": busybox!,
    "docker/Dockerfile": dockerfile(
      exec("echo built > /built"),
      'CMD ["/bin/busybox", "cat", "/built"]',
    ),
  });
  const sleepy = await repo.commit({
    "docker/Dockerfile": dockerfile(exec("echo sleeping; /bin/busybox sleep 4712")),
  });
  const hostile = await repo.commit({
    "docker/Dockerfile": dockerfile(
      exec(
        // The needle is put together at run time, so this script's own command line lacks it.
        `B=/bin/busybox; N=build-tok; N="\${N}en-"; for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do ` +
          `if $B grep -q "$N" $f 2>/dev/null; then echo "LEAK $f"; fi; done; ` +
          `if $B env | $B grep -q "$N"; then echo LEAK-ENV; fi; echo PROBED`,
      ),
    ),
  });
  const foreign = await repo.commit({ "docker/Dockerfile": "FROM debian:12\nRUN true\n" });
  commits = { quick, sleepy, hostile, foreign };
});

afterAll(async () => {
  if (skip) return;
  await git.stop();
  await registry.stop();
});

afterEach(async () => {
  await daemon?.shutdown(0);
  await coordinator?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
  daemon = undefined;
  coordinator = undefined;
});

async function startDaemon(
  concurrency = 2,
): Promise<{ coordinator: CoordinatorDouble; daemon: FleetDaemon }> {
  coordinator = await startCoordinatorDouble({ credential: CREDENTIAL, heartbeatMs: 200 });
  workDir = await mkdtemp(join(tmpdir(), "fleet-daemon-"));
  // As the CLI leaves its work directory: traversable, not listable.
  await chmod(workDir, 0o711);
  const env = { PATH: process.env.PATH, LANG: "C.UTF-8" };
  daemon = new FleetDaemon({
    registry: new RegistryClient({ url: new URL(registry.url), env }),
    // The daemon talks to the coordinator double; pushes go to the reference registry.
    coordinatorUrl: coordinator.url,
    credential: CREDENTIAL,
    hostId: "test-host",
    concurrency,
    driver,
    workDir,
    env,
    allowLocalGit: false,
    jobTimeoutMs: 120_000,
    log: () => {},
    initialBackoffMs: 20,
  });
  return { coordinator, daemon };
}

function job(buildId: string, commit: string, tags = ["latest"]): BuildJob {
  return {
    buildId,
    attempt: 1,
    repository: "team/app",
    source: { kind: "git", cloneUrl: git.url("app"), ref: "refs/heads/main", commit },
    dockerfilePath: "Dockerfile",
    contextDir: "docker",
    tags,
    token: TOKEN,
    tokenExpiresAt: Date.now() + 3_600_000,
  };
}

const of = (buildId: string) => (m: FleetHostMessage) => "buildId" in m && m.buildId === buildId;

function logText(messages: FleetHostMessage[], buildId: string): string {
  return messages
    .filter(
      (m): m is Extract<FleetHostMessage, { type: "log" }> =>
        m.type === "log" && m.buildId === buildId,
    )
    .flatMap((m) => m.lines.map((line) => line.text))
    .join("\n");
}

/** Waits until the sleepy build's RUN step runs (its `sleep 4712` is on the host's process list). */
async function untilSleeping(): Promise<void> {
  const deadline = Date.now() + 60_000;
  while ((await sleepers()) === 0) {
    if (Date.now() > deadline) throw new Error("the sleepy build never reached its RUN step");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function sleepers(): Promise<number> {
  let count = 0;
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmdline.replaceAll("\0", " ").includes("sleep 4712")) count++;
  }
  return count;
}

describe.skipIf(skip !== undefined)("fleet daemon", () => {
  it("builds a pushed job and reports phases, logs and the pushed digest under every tag", async () => {
    const { coordinator, daemon } = await startDaemon();
    daemon.start();
    const host = await coordinator.waitForConnection(1);
    expect(host.headers.authorization).toBe(`Bearer ${CREDENTIAL}`);
    await coordinator.waitFor((m) => m.type === "hello");
    host.send({ type: "job", job: job("b-quick", commits.quick, ["1.0", "latest"]) });
    const result = await coordinator.waitFor(
      (m) => m.type === "result" && m.buildId === "b-quick",
      120_000,
    );
    const mine = coordinator.messages.filter(of("b-quick"));
    expect(
      mine.filter((m) => m.type === "phase").map((m) => (m as { phase: string }).phase),
    ).toEqual(["pulling", "building", "pushing"]);
    expect(result, logText(coordinator.messages, "b-quick")).toMatchObject({
      ok: true,
      tags: ["1.0", "latest"],
    });
    const digest = (result as { digest: string }).digest;
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    for (const tag of ["1.0", "latest"]) {
      const { stdout } = await run("skopeo", [
        "inspect",
        "--tls-verify=false",
        `docker://${registry.host}/team/app:${tag}`,
      ]);
      expect(JSON.parse(stdout).Digest).toBe(digest);
    }
    const logs = logText(coordinator.messages, "b-quick");
    expect(logs).toContain(`fetching ${commits.quick}`);
    expect(logs).toContain("STEP 3/4");
    expect(logs).not.toContain(TOKEN);
    // The job folder is gone once the build is over.
    expect(await readdir(join(workDir, "jobs"))).toEqual([]);
    // Heartbeats list running builds while they run and none after.
    const heartbeats = coordinator.messages.filter((m) => m.type === "heartbeat");
    expect(
      heartbeats.some(
        (m) => m.type === "heartbeat" && m.running.some((r) => r.buildId === "b-quick"),
      ),
    ).toBe(true);
  });

  it("keeps the build token out of the sandbox", async () => {
    const { coordinator, daemon } = await startDaemon();
    daemon.start();
    const host = await coordinator.waitForConnection(1);
    await coordinator.waitFor((m) => m.type === "hello");
    host.send({ type: "job", job: job("b-hostile", commits.hostile) });
    const result = await coordinator.waitFor(
      (m) => m.type === "result" && m.buildId === "b-hostile",
      120_000,
    );
    const logs = logText(coordinator.messages, "b-hostile");
    expect(result, logs).toMatchObject({ ok: true });
    expect(logs).toContain("PROBED");
    expect(logs.split("\n").filter((line) => line.startsWith("LEAK"))).toEqual([]);
    expect(logs).not.toContain(TOKEN);
  });

  it("fails a build whose FROM is not in this registry, with the reason", async () => {
    const { coordinator, daemon } = await startDaemon();
    daemon.start();
    const host = await coordinator.waitForConnection(1);
    await coordinator.waitFor((m) => m.type === "hello");
    host.send({ type: "job", job: job("b-foreign", commits.foreign) });
    const result = await coordinator.waitFor(
      (m) => m.type === "result" && m.buildId === "b-foreign",
      60_000,
    );
    expect(result).toMatchObject({ ok: false });
    expect((result as { error: string }).error).toMatch(
      /debian:12 is not in this registry.*no internet access/,
    );
    expect(logText(coordinator.messages, "b-foreign")).toContain(
      "build failed: base image debian:12",
    );
  });

  it("stops a cancelled build at once and reports nothing more for it", async () => {
    const { coordinator, daemon } = await startDaemon();
    daemon.start();
    const host = await coordinator.waitForConnection(1);
    await coordinator.waitFor((m) => m.type === "hello");
    host.send({ type: "job", job: job("b-cancel", commits.sleepy) });
    await coordinator.waitFor(
      (m) => m.type === "phase" && m.buildId === "b-cancel" && m.phase === "building",
      120_000,
    );
    await untilSleeping();
    host.send({ type: "cancel", buildId: "b-cancel", attempt: 1, reason: "cancelled by a test" });
    while (daemon.running.length > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await sleepers()).toBe(0);
    expect(
      coordinator.messages.filter(
        (m) => of("b-cancel")(m) && (m.type === "result" || m.type === "release"),
      ),
    ).toEqual([]);
  });

  it("on shutdown takes no new jobs and lets a running build finish within the grace period", async () => {
    const { coordinator, daemon } = await startDaemon();
    daemon.start();
    const host = await coordinator.waitForConnection(1);
    await coordinator.waitFor((m) => m.type === "hello");
    host.send({ type: "job", job: job("b-finish", commits.quick, ["drained"]) });
    await coordinator.waitFor((m) => m.type === "phase" && m.buildId === "b-finish");
    const stopped = daemon.shutdown(120_000);
    // Draining: it says so (concurrency 0) and hands back anything new at once.
    await coordinator.waitFor((m) => m.type === "hello" && m.concurrency === 0);
    host.send({ type: "job", job: job("b-late", commits.quick) });
    const late = await coordinator.waitFor((m) => m.type === "release" && m.buildId === "b-late");
    expect(late).toMatchObject({ reason: "the fleet host is shutting down" });
    await stopped;
    const result = coordinator.messages.find(
      (m) => m.type === "result" && m.buildId === "b-finish",
    );
    expect(result).toMatchObject({ ok: true, tags: ["drained"] });
    expect(host.closed).toBe(true);
  });

  it("on shutdown hands back a build that does not finish in time, killing its sandbox", async () => {
    const { coordinator, daemon } = await startDaemon();
    daemon.start();
    const host = await coordinator.waitForConnection(1);
    await coordinator.waitFor((m) => m.type === "hello");
    host.send({ type: "job", job: job("b-release", commits.sleepy) });
    await coordinator.waitFor(
      (m) => m.type === "phase" && m.buildId === "b-release" && m.phase === "building",
      120_000,
    );
    await untilSleeping();
    const started = Date.now();
    await daemon.shutdown(300);
    expect(Date.now() - started).toBeLessThan(10_000);
    const release = coordinator.messages.find(
      (m) => m.type === "release" && m.buildId === "b-release",
    );
    expect(release).toEqual({
      type: "release",
      buildId: "b-release",
      attempt: 1,
      reason: "the fleet host is shutting down",
    });
    expect(coordinator.messages.some((m) => m.type === "result" && m.buildId === "b-release")).toBe(
      false,
    );
    expect(await sleepers()).toBe(0);
    expect(await readdir(join(workDir, "jobs"))).toEqual([]);
    expect(host.closed).toBe(true);
  });
});
