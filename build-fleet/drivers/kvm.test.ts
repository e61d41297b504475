// The kvm driver with a real VM: the builder image (made first if missing, about 1.5 minutes),
// qemu under TCG on hosts without a working KVM (this one), the real agent and buildah inside.
// A real build, a failing one, a hostile one, cancel and timeout. Needs root (to make the image),
// qemu-system-x86, debootstrap and Debian's static busybox.
import { spawnSync } from "node:child_process";
import {
  access,
  chmod,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { busyboxRun, makeJobDir } from "../testing/job-fixtures.ts";
import { probeAccel } from "../vm/accel-probe.ts";
import {
  DEFAULT_IMAGE_DIR,
  ensureBuilderImage,
  expectedImageStamp,
  findBuilderImage,
} from "../vm/builder-image.ts";
import type { SandboxLogLine, SandboxResult } from "./driver.ts";
import { KvmDriver, TCG_WARNING } from "./kvm.ts";

const ENV = { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin" };
const have = (tool: string) =>
  spawnSync("sh", ["-c", `command -v ${tool}`], { env: ENV }).status === 0;
const imageDir = process.env.EDGE_BUILDER_IMAGE_DIR ?? DEFAULT_IMAGE_DIR;
const imageReady = (await findBuilderImage(imageDir)).ok;
const busybox = await readFile("/bin/busybox").catch(() => undefined);
const skip = !have("qemu-system-x86_64")
  ? "qemu-system-x86_64 is missing (apt-get install qemu-system-x86)"
  : busybox === undefined
    ? "no /bin/busybox (apt-get install busybox-static)"
    : imageReady
      ? undefined
      : !have("debootstrap")
        ? "no builder image and debootstrap is missing (apt-get install debootstrap)"
        : process.getuid?.() !== 0
          ? `no builder image in ${imageDir} and making one needs root`
          : undefined;
if (skip) console.warn(`skipping kvm driver tests: ${skip}`);

const SECRET = "erf_fleet-credential-that-must-never-leak-9c41";
/** KVM where it really works, else TCG: the tests run the VM either way, never silently slower. */
const kvmWorks = skip === undefined && (await probeAccel("qemu-system-x86_64", "kvm", ENV)).ok;
const accel = kvmWorks ? "kvm" : "tcg";

let driver: KvmDriver;
let workDir: string;
let vmDir: string;
let loopback: Server;
let loopbackPort: number;
let loopbackConnections = 0;
let markerDir: string;

beforeAll(async () => {
  if (skip) return;
  const started = Date.now();
  // Security updates are for production images (the script's default); CI keeps to the release.
  await ensureBuilderImage(imageDir, (line) => console.log(line), ["--security-mirror", "none"]);
  if (!imageReady)
    console.log(`builder image made in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  workDir = await mkdtemp(join(tmpdir(), "kvm-fleet-work-"));
  vmDir = await mkdtemp(join(tmpdir(), "kvm-vms-"));
  // A root daemon runs qemu as a uid of its own, which must be able to reach its VM directory.
  await chmod(vmDir, 0o711);
  driver = new KvmDriver({ accel, imageDir, workDir: vmDir, memoryMiB: 1024 });
  // What a daemon keeps beside its jobs: the credential, in a file and in its environment.
  await writeFile(join(workDir, "credential"), `${SECRET}\n`, { mode: 0o600 });
  process.env.BUILD_FLEET_CREDENTIAL = SECRET;
  markerDir = await mkdtemp(join(tmpdir(), "kvm-marker-"));
  // On every address: a VM that reached the host by any route would be counted.
  loopback = createServer((socket) => {
    loopbackConnections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => loopback.listen(0, "0.0.0.0", resolve));
  loopbackPort = (loopback.address() as { port: number }).port;
}, 600_000);

afterAll(async () => {
  if (skip) return;
  delete process.env.BUILD_FLEET_CREDENTIAL;
  await new Promise((resolve) => loopback.close(resolve));
  await rm(workDir, { recursive: true, force: true });
  await rm(vmDir, { recursive: true, force: true });
  await rm(markerDir, { recursive: true, force: true });
});

interface Built {
  result: SandboxResult;
  logs: SandboxLogLine[];
  phases: string[];
  jobDir: string;
  /** Whether out/image.tar already existed on the host when the first log line arrived. */
  archiveAtFirstLine: boolean | undefined;
  seconds: number;
  /** When each log line arrived, in seconds since run() was called. */
  arrivals: number[];
}

async function build(
  context: Record<string, string | Buffer>,
  options: { timeoutMs?: number; signal?: AbortSignal; onLog?(line: SandboxLogLine): void } = {},
): Promise<Built> {
  const { jobDir } = await makeJobDir(workDir, context);
  const logs: SandboxLogLine[] = [];
  const phases: string[] = [];
  let archiveAtFirstLine: boolean | undefined;
  const arrivals: number[] = [];
  const started = Date.now();
  const result = await driver.run(
    { buildId: "b1", attempt: 1, jobDir, timeoutMs: options.timeoutMs ?? 240_000 },
    {
      onLog: (line) => {
        if (logs.length === 0) {
          archiveAtFirstLine =
            spawnSync("test", ["-e", join(jobDir, "out", "image.tar")]).status === 0;
        }
        logs.push(line);
        arrivals.push((Date.now() - started) / 1000);
        options.onLog?.(line);
      },
      onControl: (control) => {
        if (control.kind === "phase") phases.push(control.phase);
      },
      signal: options.signal ?? new AbortController().signal,
    },
  );
  return {
    result,
    logs,
    phases,
    jobDir,
    archiveAtFirstLine,
    seconds: (Date.now() - started) / 1000,
    arrivals,
  };
}

function text(logs: SandboxLogLine[]): string {
  return logs.map((line) => line.text).join("\n");
}

/** The files of every layer of an oci-archive, by listing its tarballs. */
function layerFiles(archive: string, scratch: string): string[] {
  spawnSync("tar", ["-xf", archive, "-C", scratch]);
  const blob = (digest: string) => join(scratch, "blobs", "sha256", digest.slice("sha256:".length));
  const index = JSON.parse(spawnSync("cat", [join(scratch, "index.json")]).stdout.toString());
  const manifest = JSON.parse(
    spawnSync("cat", [blob(index.manifests[0].digest)]).stdout.toString(),
  );
  return manifest.layers.flatMap((layer: { digest: string }) =>
    spawnSync("tar", ["-tf", blob(layer.digest)])
      .stdout.toString()
      .split("\n")
      .filter(Boolean),
  );
}

/** Processes of this host whose command line contains `needle`. */
async function processesWith(needle: string): Promise<number> {
  let count = 0;
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes(needle)) count++;
  }
  return count;
}

/** The qemu processes of VMs under `dir` (setpriv execs qemu in place, so the name is qemu's). */
function qemuPids(dir: string): number[] {
  const found = spawnSync("pgrep", ["-f", `qemu-system-x86_64 .*${dir}`], { env: ENV });
  return found.stdout.toString().split("\n").filter(Boolean).map(Number);
}

function hostAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((address) => address !== undefined && address.family === "IPv4" && !address.internal)
    .map((address) => address!.address);
}

describe.skipIf(skip !== undefined)("kvm driver", () => {
  it("uses KVM only where it runs guests, refusing to emulate unless told to", async () => {
    const strict = new KvmDriver({ accel: "kvm", imageDir });
    const auto = new KvmDriver({ accel: "auto", imageDir });
    expect(await auto.available()).toEqual({ ok: true });
    if (kvmWorks) {
      expect(await strict.available()).toEqual({ ok: true });
      expect(strict.startupWarning).toBeUndefined();
      expect(auto.accel).toBe("kvm");
    } else {
      const refused = await strict.available();
      expect(refused.ok).toBe(false);
      expect(refused.reason).toMatch(/kvm cannot run a guest here .*refusing to fall back to TCG/);
      expect(auto.accel).toBe("tcg");
      expect(auto.startupWarning).toMatch(/^!!! kvm driver: builder VMs run under TCG/);
      expect(auto.startupWarning).toContain("kvm cannot run a guest here");
      expect(new KvmDriver({ accel: "tcg" }).startupWarning).toBe(TCG_WARNING);
    }
    // A root daemon's qemu runs as its own uid: an image it cannot read is refused up front.
    if (process.getuid?.() === 0) {
      const hidden = join(markerDir, "private", "image");
      await mkdir(join(hidden, "v1"), { recursive: true });
      await chmod(join(markerDir, "private"), 0o700);
      await writeFile(join(hidden, "v1", "manifest"), `stamp=${await expectedImageStamp()}\n`);
      await writeFile(join(hidden, "v1", "vmlinux"), "kernel");
      await writeFile(join(hidden, "v1", "root.ext4"), "root");
      await symlink("v1", join(hidden, "current"));
      const unreadable = await new KvmDriver({ accel: "tcg", imageDir: hidden }).available();
      expect(unreadable.reason).toMatch(
        /qemu runs as uid \d+, which cannot read the builder image/,
      );
    }
    const missing = await new KvmDriver({
      accel: "tcg",
      imageDir: join(markerDir, "none"),
    }).available();
    expect(missing).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/no builder VM image.*make-builder-image/),
    });
  });

  it("builds FROM scratch with COPY and RUN steps inside the VM, streaming the log live", async () => {
    const built = await build({
      busybox: busybox!,
      Dockerfile: [
        "FROM scratch",
        "COPY busybox /bin/busybox",
        busyboxRun("echo hello from the VM; /bin/busybox uname -r; echo built > /built"),
        'CMD ["/bin/busybox", "sh"]',
      ].join("\n"),
    });
    const { result, logs, phases } = built;
    const output = text(logs);
    expect(result, output).toEqual({
      ok: true,
      imageArchive: join(built.jobDir, "out", "image.tar"),
    });
    expect(phases).toEqual(["loading", "building"]);
    expect(output).toContain("hello from the VM");
    // The RUN step ran on the builder VM's kernel, not the host's.
    expect(output).toMatch(/-cloud-amd64/);
    expect(logs[0]?.text).toMatch(/^vm: kernel .* accel (kvm|tcg)/);
    // Live: the first lines arrived while the VM ran, before its image came back to the host.
    expect(built.archiveAtFirstLine).toBe(false);
    const boot = /vm: first guest command after ([\d.]+) s, job unpacked after ([\d.]+) s/.exec(
      output,
    );
    expect(boot, output).not.toBeNull();
    const guestUp = logs.findIndex((line) => line.text.startsWith("vm: first guest command"));
    const building = logs.findIndex((line) => line.text.startsWith("STEP 1/"));
    console.log(
      `kvm driver (${accel}): first guest command ${boot?.[1]} s after the kernel started, job unpacked ${boot?.[2]} s; ` +
        `on the host: guest log ${built.arrivals[guestUp]?.toFixed(1)} s, first build step ${built.arrivals[building]?.toFixed(1)} s, ` +
        `whole build ${built.seconds.toFixed(1)} s`,
    );

    const scratch = await mkdtemp(join(tmpdir(), "kvm-archive-"));
    try {
      const files = layerFiles((result as { imageArchive: string }).imageArchive, scratch);
      expect(files).toContain("bin/busybox");
      expect(files).toContain("built");
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
    // The VM's directory (overlay, disks, sockets) is gone.
    expect(await readdir(vmDir)).toEqual([]);
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
    expect(result).toMatchObject({
      ok: false,
      reason: "build",
      error: expect.stringMatching(/^the build failed \(buildah exit status [1-9]\d*\)$/),
    });
    expect(text(logs)).toContain("about to fail");
  });

  it("confines a hostile Dockerfile: no credential, no host loopback, no writes outside", async () => {
    const image = await findBuilderImage(imageDir);
    if (!image.ok) throw new Error(image.reason);
    const rootBefore = await stat(image.image.root);
    const marker = join(markerDir, "from-run-step");
    const targets = ["127.0.0.1", "10.0.2.2", ...hostAddresses()];
    const probe = [
      "B=/bin/busybox",
      `for f in ${join(workDir, "credential")} /proc/*/environ /job/job.env /proc/1/root/job/job.env; do`,
      `  if $B cat "$f" 2>/dev/null | $B grep -q "${SECRET.slice(0, 20)}"; then echo "LEAK $f"; fi`,
      `  if $B cat "$f" 2>/dev/null | $B grep -q AGENT_NONCE; then echo "NONCE $f"; fi`,
      "done",
      `if $B env | $B grep -q "${SECRET.slice(0, 20)}"; then echo LEAK-ENV; fi`,
      `for ip in ${targets.join(" ")}; do`,
      `  if echo probe | $B nc -w 2 $ip ${loopbackPort}; then echo "REACHED $ip"; else echo "refused $ip"; fi`,
      "done",
      `if $B wget -q -T 2 -O - http://127.0.0.1:${loopbackPort}/ ; then echo REACHED-HTTP; fi`,
      `$B mkdir -p ${markerDir} && echo pwned > ${marker} && echo wrote-inside-container-only`,
      "if $B ls /dev/vd* /dev/nvme* 2>/dev/null; then echo SEES-DISKS; fi",
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
    expect(output).toContain("refused 127.0.0.1");
    expect(output).toContain("wrote-inside-container-only");
    expect(output).not.toMatch(/LEAK|NONCE|REACHED|SEES-DISKS/);
    expect(loopbackConnections).toBe(0);
    await expect(access(marker)).rejects.toThrow();
    // Nothing of the host's secret in the image either, and the shared root image is untouched.
    const archive = await readFile((result as { imageArchive: string }).imageArchive);
    expect(archive.includes(SECRET.slice(4))).toBe(false);
    const rootAfter = await stat(image.image.root);
    expect(rootAfter.mtimeMs).toBe(rootBefore.mtimeMs);
    expect(rootAfter.size).toBe(rootBefore.size);
  });

  it("kills the VM when cancelled, and on timeout, leaving nothing behind", async () => {
    const context = {
      busybox: busybox!,
      Dockerfile: [
        "FROM scratch",
        "COPY busybox /bin/busybox",
        busyboxRun("echo sleeping; /bin/busybox sleep 4711"),
      ].join("\n"),
    };
    const controller = new AbortController();
    // Cancel as soon as the guest speaks: the VM is up and qemu is running.
    const cancelled = await build(context, {
      signal: controller.signal,
      onLog: (line) => {
        if (line.text.startsWith("vm: first guest command")) controller.abort();
      },
    });
    expect(text(cancelled.logs)).toContain("vm: first guest command");
    expect(cancelled.result).toEqual({ ok: false, reason: "cancelled", error: "cancelled" });
    expect(await processesWith(vmDir)).toBe(0);
    expect(await readdir(vmDir)).toEqual([]);

    const timedOut = await build(context, { timeoutMs: 1_500 });
    expect(timedOut.result).toMatchObject({ ok: false, reason: "timeout" });
    expect(timedOut.seconds).toBeLessThan(10);
    expect(await processesWith(vmDir)).toBe(0);
    expect(await readdir(vmDir)).toEqual([]);
  });

  it("kills a VM that goes silent past stallTimeoutMs, showing and keeping its console", async () => {
    // A wedged VM: qemu stopped (SIGSTOP) once the step runs, so no log line and no heartbeat.
    const stallTimeoutMs = 12_000;
    const watched = new KvmDriver({
      accel,
      imageDir,
      workDir: vmDir,
      memoryMiB: 1024,
      stallTimeoutMs,
    });
    const { jobDir } = await makeJobDir(workDir, {
      busybox: busybox!,
      Dockerfile: [
        "FROM scratch",
        "COPY busybox /bin/busybox",
        busyboxRun("echo going quiet; /bin/busybox sleep 4711"),
      ].join("\n"),
    });
    const logs: SandboxLogLine[] = [];
    let frozenAt = 0;
    const result = await watched.run(
      { buildId: "stall-1", attempt: 2, jobDir, timeoutMs: 240_000 },
      {
        onLog: (line) => {
          logs.push(line);
          if (line.text === "going quiet") {
            frozenAt = Date.now();
            for (const pid of qemuPids(vmDir)) process.kill(pid, "SIGSTOP");
          }
        },
        signal: new AbortController().signal,
      },
    );
    const output = text(logs);
    expect(result, output).toMatchObject({
      ok: false,
      reason: "sandbox",
      error: expect.stringMatching(/^no output for 1[2-4] s; VM stalled/),
    });
    expect(frozenAt).toBeGreaterThan(0);
    // Killed at the limit, not at the job's timeout.
    const killedAfter = (Date.now() - frozenAt) / 1000;
    expect(killedAfter).toBeGreaterThanOrEqual(stallTimeoutMs / 1000 - 1);
    expect(killedAfter).toBeLessThan(stallTimeoutMs / 1000 + 5);
    // The console's tail is in the build log, and the whole console kept beside the jobs.
    expect(output).toMatch(/^vm: the guest console's last \d+ lines:$/m);
    expect(output).toMatch(/^vm console: edge-run-job: agent starting/m);
    const failures = await readdir(join(workDir, "failures"));
    const record = failures.find((name) => name.endsWith("-stall-1-2.log"));
    expect(record, failures.join()).toBeDefined();
    const kept = await readFile(join(workDir, "failures", record!), "utf8");
    expect(kept).toMatch(/^build stall-1 attempt 2: sandbox: no output for \d+ s; VM stalled/);
    expect(kept).toContain("edge-run-job: agent starting");
    expect(output).toContain(`vm: console kept on the build host in ${join(workDir, "failures")}`);
    expect(await processesWith(vmDir)).toBe(0);
    expect(await readdir(vmDir)).toEqual([]);
  });

  it("keeps a long silent step alive through the guest's heartbeats", async () => {
    const watched = new KvmDriver({
      accel,
      imageDir,
      workDir: vmDir,
      memoryMiB: 1024,
      stallTimeoutMs: 20_000,
    });
    const { jobDir } = await makeJobDir(workDir, {
      busybox: busybox!,
      Dockerfile: [
        "FROM scratch",
        "COPY busybox /bin/busybox",
        busyboxRun("/bin/busybox sleep 25; echo done waiting"),
      ].join("\n"),
    });
    const logs: SandboxLogLine[] = [];
    const result = await watched.run(
      { buildId: "quiet-1", attempt: 1, jobDir, timeoutMs: 240_000 },
      { onLog: (line) => logs.push(line), signal: new AbortController().signal },
    );
    expect(result, `${JSON.stringify(result)}\n${text(logs)}`).toMatchObject({ ok: true });
    expect(text(logs)).toContain("done waiting");
  });
});
