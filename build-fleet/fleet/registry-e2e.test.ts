// The fleet with the real registry (`npm start`'s runner, its coordinator and build tokens): the
// daemon as its CLI runs it, a manual build from an uploaded context whose FROM is a base image of
// this registry by digest, a build whose host is killed mid-build (retried on another host), one
// handed back by a host shutting down, and one cancelled through the API.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseEnv, promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { buildBusyboxBaseImage } from "../../test/support/base-image.ts";
import { type RunningRegistry, startRegistry } from "../../test/support/registry-process.ts";
import { NamespaceDriver } from "../drivers/namespace.ts";

const run = promisify(execFile);
const DAEMON = fileURLToPath(new URL("../bin/build-fleet.ts", import.meta.url));

const availability = await new NamespaceDriver().available();
const skopeo = await run("sh", ["-c", "command -v skopeo"]).then(
  () => true,
  () => false,
);
const skip = !availability.ok
  ? `namespace driver unavailable: ${availability.reason}`
  : !skopeo
    ? "skopeo is missing (apt-get install skopeo)"
    : undefined;
if (skip) console.warn(`skipping fleet end-to-end tests: ${skip}`);

interface Build {
  phase: string;
  phases: { phase: string; attempt: number; detail?: string }[];
  attempts: number;
  host: string | null;
  digest: string | null;
  error: string | null;
}

interface FleetProcess {
  child: ChildProcess;
  workDir: string;
  output(): string;
  exited: Promise<number | null>;
}

let registry: RunningRegistry;
let scratch: string;
let credentialFile: string;
let host: string;
let baseDigest: string;
const fleets: FleetProcess[] = [];

beforeAll(async () => {
  if (skip) return;
  registry = await startRegistry({ env: { REGISTRY_FLEET: "off" } });
  host = new URL(registry.url).host;
  scratch = await mkdtemp(join(tmpdir(), "fleet-e2e-"));
  await chmod(scratch, 0o711);
  const secrets = parseEnv(await readFile(join(registry.stateDir, ".dev.vars"), "utf8"));
  credentialFile = join(scratch, "fleet-credential");
  await writeFile(credentialFile, `${secrets.FLEET_CREDENTIAL}\n`, { mode: 0o600 });
  const base = await buildBusyboxBaseImage();
  try {
    const digestFile = join(scratch, "base-digest");
    await run("skopeo", [
      "copy",
      "--dest-tls-verify=false",
      `--dest-creds=${registry.adminUser}:${registry.adminPassword}`,
      `--digestfile=${digestFile}`,
      `oci-archive:${base.archive}`,
      `docker://${host}/admin/base:1`,
    ]);
    baseDigest = (await readFile(digestFile, "utf8")).trim();
  } finally {
    await base.cleanup();
  }
  await api(
    "POST",
    "/api/v1/repositories",
    JSON.stringify({ name: "admin/app" }),
    "application/json",
  );
});

afterAll(async () => {
  if (skip) return;
  for (const fleet of fleets) fleet.child.kill("SIGKILL");
  await Promise.all(fleets.map((fleet) => fleet.exited));
  await registry.stop();
  await rm(scratch, { recursive: true, force: true });
});

async function api(
  method: string,
  path: string,
  body?: string | Uint8Array,
  type?: string,
): Promise<unknown> {
  const response = await fetch(`${registry.url}${path}`, {
    method,
    headers: {
      Authorization: `Basic ${btoa(`${registry.adminUser}:${registry.adminPassword}`)}`,
      ...(type ? { "Content-Type": type } : {}),
    },
    body,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text === "" ? undefined : JSON.parse(text);
}

async function startFleet(hostId: string, grace = 60): Promise<FleetProcess> {
  const workDir = join(scratch, `work-${hostId}`);
  const child = spawn(
    process.execPath,
    [
      DAEMON,
      "--registry",
      registry.url,
      "--credential-file",
      credentialFile,
      "--driver",
      "namespace",
      "--work-dir",
      workDir,
      "--host-id",
      hostId,
      "--shutdown-grace",
      String(grace),
    ],
    { env: { PATH: process.env.PATH, HOME: process.env.HOME }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk));
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  const fleet = { child, workDir, output: () => output, exited };
  fleets.push(fleet);
  await until(
    () => output.includes("fleet: connected"),
    30_000,
    () => `fleet ${hostId}:\n${output}`,
  );
  return fleet;
}

/** Stops every running fleet host (each drains: nothing is running between tests). */
async function stopFleets(): Promise<void> {
  for (const fleet of fleets) if (fleet.child.exitCode === null) fleet.child.kill("SIGTERM");
  await Promise.all(fleets.map((fleet) => fleet.exited));
}

async function until(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function startBuild(
  files: Record<string, string>,
  tags: string[],
  query = "",
): Promise<string> {
  const dir = await mkdtemp(join(scratch, "context-"));
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(dir, path, ".."), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  const archive = `${dir}.tar.gz`;
  await run("tar", ["-czf", archive, "-C", dir, "."]);
  const body = await readFile(archive);
  const started = (await api(
    "POST",
    `/api/v1/repositories/admin/app/builds?tags=${tags.join(",")}${query}`,
    body,
    "application/gzip",
  )) as { buildId: string };
  return started.buildId;
}

function build(id: string): Promise<Build> {
  return api("GET", `/api/v1/repositories/admin/app/builds/${id}`) as Promise<Build>;
}

async function untilPhase(id: string, phases: string[], timeoutMs = 120_000): Promise<Build> {
  let last: Build | undefined;
  await until(
    async () => {
      last = await build(id);
      return phases.includes(last.phase);
    },
    timeoutMs,
    () => `build ${id} never reached ${phases.join("/")}: ${JSON.stringify(last)}`,
  );
  return last!;
}

async function logText(id: string): Promise<string> {
  const page = (await api(
    "GET",
    `/api/v1/repositories/admin/app/builds/${id}/logs?limit=1000`,
  )) as {
    lines: { text: string }[];
  };
  return page.lines.map((line) => line.text).join("\n");
}

/** Host processes whose command line names `path` (a fleet's sandboxes name its work dir). */
async function processesUnder(path: string): Promise<number> {
  let count = 0;
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes(path) && !cmdline.includes(DAEMON)) count++;
  }
  return count;
}

describe.skipIf(skip !== undefined)("fleet with the registry", () => {
  it("builds an uploaded context FROM a base of this registry by digest and pushes every tag", async () => {
    await startFleet("e2e-a");
    const id = await startBuild(
      {
        "app/Dockerfile": `FROM ${host}/admin/base@${baseDigest}\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt && echo ran > /ran\n`,
        "app/hello.txt": "hello from an uploaded context\n",
      },
      ["e2e-1", "e2e-2"],
      "&context=app",
    );
    const done = await untilPhase(id, ["complete", "error", "cancelled"]);
    const logs = await logText(id);
    expect(done.phase, `${done.error}\n${logs}`).toBe("complete");
    expect(done.phases.map((p) => p.phase)).toEqual([
      "queued",
      "waiting",
      "pulling",
      "building",
      "pushing",
      "complete",
    ]);
    expect(done.host).toBe("e2e-a");
    expect(logs).toContain("hello from an uploaded context");
    expect(logs).toContain(`pulling base image ${host}/admin/base@${baseDigest}`);
    for (const tag of ["e2e-1", "e2e-2"]) {
      const { stdout } = await run("skopeo", [
        "inspect",
        "--tls-verify=false",
        `--creds=${registry.adminUser}:${registry.adminPassword}`,
        `docker://${host}/admin/app:${tag}`,
      ]);
      expect(JSON.parse(stdout).Digest).toBe(done.digest);
    }
  });

  it("cancels a running build through the API and stops its sandbox", async () => {
    await stopFleets();
    const fleet = await startFleet("e2e-cancel");
    const id = await startBuild({ Dockerfile: `FROM ${host}/admin/base:1\nRUN sleep 600\n` }, [
      "never",
    ]);
    await untilPhase(id, ["building"]);
    await until(
      async () => (await processesUnder(fleet.workDir)) > 0,
      30_000,
      () => "no sandbox",
    );
    await api("POST", `/api/v1/repositories/admin/app/builds/${id}/cancel`);
    expect((await build(id)).phase).toBe("cancelled");
    await until(
      async () => (await processesUnder(fleet.workDir)) === 0,
      15_000,
      () => "the sandbox outlived its cancel",
    );
  });

  it("retries a build on another host when its host dies mid-build", async () => {
    // Only the doomed host may take it.
    await stopFleets();
    const doomed = await startFleet("e2e-doomed");
    const id = await startBuild(
      { Dockerfile: `FROM ${host}/admin/base:1\nRUN sleep 2 && echo survived\n` },
      ["retried"],
    );
    await untilPhase(id, ["building"]);
    doomed.child.kill("SIGKILL");
    await doomed.exited;
    // Its sandbox dies with it.
    await until(
      async () => (await processesUnder(doomed.workDir)) === 0,
      10_000,
      () => "an orphaned sandbox",
    );
    await startFleet("e2e-b");
    const done = await untilPhase(id, ["complete", "error"], 120_000);
    expect(done.phase, done.error ?? "").toBe("complete");
    expect(done.attempts).toBe(2);
    expect(done.host).toBe("e2e-b");
    expect(await logText(id)).toContain("survived");
  });

  it("hands a build back when its host shuts down, and another host finishes it", async () => {
    await stopFleets();
    // A grace period of 1 s: the 4 s RUN step cannot finish in it.
    const leaving = await startFleet("e2e-leaving", 1);
    const id = await startBuild(
      { Dockerfile: `FROM ${host}/admin/base:1\nRUN sleep 4 && echo finished\n` },
      ["handed"],
    );
    await untilPhase(id, ["building"]);
    leaving.child.kill("SIGTERM");
    expect(await leaving.exited).toBe(0);
    expect(await processesUnder(leaving.workDir)).toBe(0);
    expect(leaving.output()).toContain("handed back");
    await startFleet("e2e-c");
    const done = await untilPhase(id, ["complete", "error"], 120_000);
    expect(done.phase, done.error ?? "").toBe("complete");
    expect(done.host).toBe("e2e-c");
    expect(done.attempts).toBe(2);
    expect(await logText(id)).toContain("finished");
  });
});
