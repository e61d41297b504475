// The namespace driver with the real agent and buildah: a real build, a hostile build, and a
// hostile program running as the sandbox's own root (stronger than a RUN step, which runc confines
// further). Needs root or a subordinate id range, bwrap, buildah, runc and Debian's static busybox.
import { spawnSync } from "node:child_process";
import { access, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { writeJobEnv } from "../agent/job-dir.ts";
import { busyboxRun, makeJobDir } from "../testing/job-fixtures.ts";
import type { SandboxLogLine, SandboxResult } from "./driver.ts";
import { NamespaceDriver } from "./namespace.ts";

const driver = new NamespaceDriver();
const availability = await driver.available();
const busybox = await readFile("/bin/busybox").catch(() => undefined);
const skip = !availability.ok
  ? `namespace driver unavailable: ${availability.reason}`
  : busybox === undefined
    ? "no /bin/busybox (apt-get install busybox-static)"
    : undefined;
if (skip) console.warn(`skipping namespace driver tests: ${skip}`);

const SECRET = "erf_fleet-credential-that-must-never-leak-7f3a";

let workDir: string;
let loopback: Server;
let loopbackPort: number;
let loopbackConnections = 0;
let markerDir: string;

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), "fleet-work-"));
  // What a daemon keeps beside its jobs: the credential, in a file and in its environment.
  await writeFile(join(workDir, "credential"), `${SECRET}\n`, { mode: 0o600 });
  process.env.BUILD_FLEET_CREDENTIAL = SECRET;
  markerDir = await mkdtemp(join(tmpdir(), "fleet-marker-"));
  loopback = createServer((socket) => {
    loopbackConnections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => loopback.listen(0, "127.0.0.1", resolve));
  loopbackPort = (loopback.address() as { port: number }).port;
});

afterAll(async () => {
  delete process.env.BUILD_FLEET_CREDENTIAL;
  await new Promise((resolve) => loopback.close(resolve));
  await rm(workDir, { recursive: true, force: true });
  await rm(markerDir, { recursive: true, force: true });
});

async function build(
  context: Record<string, string | Buffer>,
  options: { timeoutMs?: number; signal?: AbortSignal; agentPath?: string } = {},
): Promise<{ result: SandboxResult; logs: SandboxLogLine[]; phases: string[]; jobDir: string }> {
  const { jobDir } = await makeJobDir(workDir, context);
  const logs: SandboxLogLine[] = [];
  const phases: string[] = [];
  const sandbox = options.agentPath
    ? new NamespaceDriver({ agentPath: options.agentPath })
    : driver;
  const result = await sandbox.run(
    { buildId: "b1", attempt: 1, jobDir, timeoutMs: options.timeoutMs ?? 120_000 },
    {
      onLog: (line) => logs.push(line),
      onControl: (control) => {
        if (control.kind === "phase") phases.push(control.phase);
      },
      signal: options.signal ?? new AbortController().signal,
    },
  );
  return { result, logs, phases, jobDir };
}

function text(logs: SandboxLogLine[]): string {
  return logs.map((line) => line.text).join("\n");
}

/** The files of every layer of an oci-archive, by listing its tarballs. */
function layerFiles(archive: string, scratch: string): string[] {
  spawnSync("tar", ["-xf", archive, "-C", scratch]);
  const index = JSON.parse(spawnSync("cat", [join(scratch, "index.json")]).stdout.toString());
  const manifestDigest: string = index.manifests[0].digest;
  const manifest = JSON.parse(
    spawnSync("cat", [join(scratch, "blobs", "sha256", manifestDigest.slice(7))]).stdout.toString(),
  );
  return manifest.layers.flatMap((layer: { digest: string }) =>
    spawnSync("tar", ["-tf", join(scratch, "blobs", "sha256", layer.digest.slice(7))])
      .stdout.toString()
      .split("\n")
      .filter(Boolean),
  );
}

/** Processes of this host whose command line contains `needle`. */
async function processesWith(needle: string): Promise<number> {
  let count = 0;
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).replaceAll(
      "\0",
      " ",
    );
    if (cmdline.includes(needle)) count++;
  }
  return count;
}

describe.skipIf(skip !== undefined)("namespace driver", () => {
  it("builds FROM scratch with a COPY and RUN steps into an oci-archive", async () => {
    const { result, logs, phases } = await build({
      busybox: busybox!,
      Dockerfile: [
        "FROM scratch",
        "COPY busybox /bin/busybox",
        busyboxRun("/bin/busybox mkdir -p /usr/bin && /bin/busybox --install -s /usr/bin"),
        'RUN ["/bin/busybox", "sh", "-c", "echo built-in-sandbox > /built && id -u"]',
        'CMD ["/bin/busybox", "sh"]',
      ].join("\n"),
    });
    expect(result, text(logs)).toMatchObject({ ok: true });
    expect(phases).toEqual(["loading", "building"]);
    expect(text(logs)).toContain("STEP 4/5");
    const scratch = await mkdtemp(join(tmpdir(), "archive-"));
    try {
      const files = layerFiles((result as { imageArchive: string }).imageArchive, scratch);
      expect(files).toContain("bin/busybox");
      expect(files).toContain("built");
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });

  it("builds with buildah's chroot isolation too (the agent's fallback without cgroups)", async () => {
    const { folder, jobDir, nonce } = await makeJobDir(workDir, {
      busybox: busybox!,
      Dockerfile: [
        "FROM scratch",
        "COPY busybox /bin/busybox",
        busyboxRun("echo chrooted > /chrooted"),
      ].join("\n"),
    });
    await writeJobEnv(jobDir, { nonce, dockerfile: "Dockerfile", isolation: "chroot" });
    const logs: SandboxLogLine[] = [];
    const result = await driver.run(
      { buildId: "b1", attempt: 1, jobDir, timeoutMs: 120_000 },
      { onLog: (line) => logs.push(line), signal: new AbortController().signal },
    );
    expect(result, text(logs)).toMatchObject({ ok: true });
    expect(text(logs)).toContain("isolation chroot");
    await rm(folder, { recursive: true, force: true });
  });

  it("reports a failing RUN step as a build error with the agent's message", async () => {
    const { result, logs } = await build({
      busybox: busybox!,
      Dockerfile: [
        "FROM scratch",
        "COPY busybox /bin/busybox",
        busyboxRun("echo about to fail; exit 3"),
      ].join("\n"),
    });
    expect(result).toEqual({
      ok: false,
      reason: "build",
      error: "the build failed (buildah exit status 3)",
    });
    expect(text(logs)).toContain("about to fail");
  });

  it("confines a hostile Dockerfile: no credential, no host loopback, no writes outside", async () => {
    const marker = join(markerDir, "from-run-step");
    const probe = [
      "B=/bin/busybox",
      `for f in ${join(workDir, "credential")} /proc/*/environ /proc/1/root${join(workDir, "credential")}; do`,
      `  if $B cat "$f" 2>/dev/null | $B grep -q "${SECRET.slice(0, 20)}"; then echo "LEAK $f"; fi`,
      "done",
      `if $B env | $B grep -q "${SECRET.slice(0, 20)}"; then echo LEAK-ENV; fi`,
      `if echo probe | $B nc -w 2 127.0.0.1 ${loopbackPort}; then echo REACHED-LOOPBACK; else echo loopback-refused; fi`,
      `if $B wget -q -T 2 -O - http://127.0.0.1:${loopbackPort}/ ; then echo REACHED-LOOPBACK-HTTP; fi`,
      `$B mkdir -p ${markerDir} && echo pwned > ${marker} && echo wrote-inside-container-only`,
      "echo HOSTILE-DONE",
    ].join("\n");
    const { result, logs } = await build({
      busybox: busybox!,
      "probe.sh": probe,
      Dockerfile: [
        "FROM scratch",
        "COPY busybox /bin/busybox",
        "COPY probe.sh /probe.sh",
        'RUN ["/bin/busybox", "sh", "/probe.sh"]',
      ].join("\n"),
    });
    const output = text(logs);
    expect(result, output).toMatchObject({ ok: true });
    expect(output).toContain("HOSTILE-DONE");
    expect(output).toContain("loopback-refused");
    expect(output).not.toMatch(/LEAK|REACHED-LOOPBACK/);
    expect(output).not.toContain(SECRET.slice(0, 20).replace("erf_", ""));
    expect(loopbackConnections).toBe(0);
    await expect(access(marker)).rejects.toThrow();
  });

  it("confines a hostile program running as the sandbox's root itself", async () => {
    const hostMarker = join(markerDir, "from-sandbox-root");
    const probePath = join(workDir, "root-probe.sh");
    await writeFile(
      probePath,
      [
        "#!/bin/sh",
        `echo "uid $(id -u) in the sandbox"`,
        `for f in ${join(workDir, "credential")} /proc/*/environ; do`,
        `  if grep -q "${SECRET.slice(0, 20)}" "$f" 2>/dev/null; then echo "LEAK $f"; fi`,
        "done",
        `if env | grep -q "${SECRET.slice(0, 20)}"; then echo LEAK-ENV; fi`,
        // bash's /dev/tcp is not in dash; busybox nc is the host's static binary under /usr/bin.
        `if echo probe | busybox nc -w 2 127.0.0.1 ${loopbackPort}; then echo REACHED-LOOPBACK; else echo loopback-refused; fi`,
        `mkdir -p ${markerDir} 2>/dev/null; echo pwned > ${hostMarker} 2>/dev/null && echo "wrote ${hostMarker} (a sandbox path)"`,
        "if echo pwned > /usr/pwned 2>/dev/null; then echo WROTE-USR; fi",
        "mount -o remount,rw,bind /usr 2>/dev/null && echo remounted-usr-rw",
        "if echo pwned > /usr/pwned 2>/dev/null; then echo WROTE-USR-AFTER-REMOUNT; fi",
        "if echo pwned > /job/context/pwned 2>/dev/null; then echo WROTE-CONTEXT; fi",
        "ls /proc | grep -c '^[0-9]' | sed 's/^/visible processes: /'",
        "echo ROOT-PROBE-DONE",
      ].join("\n"),
      { mode: 0o755 },
    );
    const { result, logs } = await build(
      { Dockerfile: "FROM scratch\n" },
      { agentPath: probePath },
    );
    const output = text(logs);
    expect(output).toContain("ROOT-PROBE-DONE");
    expect(output).toContain("uid 0 in the sandbox");
    expect(output).toContain("loopback-refused");
    expect(output).not.toMatch(/LEAK|REACHED-LOOPBACK|WROTE-USR|WROTE-CONTEXT/);
    // The pid namespace shows the sandbox's own few processes, not the host's.
    expect(Number(/visible processes: (\d+)/.exec(output)?.[1])).toBeLessThan(10);
    expect(loopbackConnections).toBe(0);
    await expect(access(hostMarker)).rejects.toThrow();
    await expect(access("/usr/pwned")).rejects.toThrow();
    // The probe printed no result line: a sandbox failure, not a success.
    expect(result).toMatchObject({ ok: false, reason: "sandbox" });
  });

  it("kills the whole sandbox when cancelled, and on timeout", async () => {
    const context = {
      busybox: busybox!,
      Dockerfile: [
        "FROM scratch",
        "COPY busybox /bin/busybox",
        busyboxRun("echo sleeping; /bin/busybox sleep 4711"),
      ].join("\n"),
    };
    const controller = new AbortController();
    const started = Date.now();
    const cancelled = build(context, { signal: controller.signal });
    // Cancel once the RUN step is sleeping.
    while ((await processesWith("sleep 4711")) === 0 && Date.now() - started < 60_000) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    controller.abort();
    const { result } = await cancelled;
    expect(result).toEqual({ ok: false, reason: "cancelled", error: "cancelled" });
    expect(await processesWith("sleep 4711")).toBe(0);

    const timedOut = await build(context, { timeoutMs: 1_500 });
    expect(timedOut.result).toMatchObject({ ok: false, reason: "timeout" });
    expect(await processesWith("sleep 4711")).toBe(0);
  });

  it("cleans its scratch space after the run", async () => {
    const { jobDir } = await build({ Dockerfile: "FROM scratch\nLABEL a=b\n" });
    const folder = join(jobDir, "..");
    const leftovers = (await readdir(folder)).filter((name) => name.startsWith("sandbox-scratch-"));
    expect(leftovers).toEqual([]);
    expect((await stat(join(jobDir, "out", "image.tar"))).size).toBeGreaterThan(0);
  });
});
