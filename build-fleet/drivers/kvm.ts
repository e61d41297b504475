// The `kvm` sandbox driver: one ephemeral VM per build (qemu, q35, the builder image of
// vm/make-builder-image.sh), running the same build agent as every driver. The job goes in on a
// read-only disk, logs come out live over virtio-serial, the image comes back on an out disk; the
// VM has no network device and shares no host directory. Its directory (overlay, disks, sockets)
// is deleted when it ends. Under KVM this is the production boundary for untrusted Dockerfiles.
import { type ChildProcess, spawn } from "node:child_process";
import { constants } from "node:fs";
import { access, mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { dirname, join } from "node:path";

import { readJobNonce } from "../agent/job-dir.ts";
import { AgentOutputReader } from "../agent/protocol.ts";
import { findTool } from "../lib/find-tool.ts";
import { run } from "../lib/process.ts";
import { probeAccel } from "../vm/accel-probe.ts";
import { type BuilderImage, DEFAULT_IMAGE_DIR, findBuilderImage } from "../vm/builder-image.ts";
import { defaultFailuresDir, keepFailure, lastLines, readTail } from "../vm/failure-log.ts";
import { createOutDisk, readOutDisk, writeJobDisk } from "../vm/job-disks.ts";
import { type Accel, qemuArgs } from "../vm/qemu-args.ts";
import {
  DEFAULT_QEMU_ID_BASE,
  handOver,
  launcherArgs,
  type QemuIdentity,
  qemuIdentity,
} from "../vm/qemu-identity.ts";
import { StallWatchdog } from "../vm/stall-watchdog.ts";
import type {
  DriverAvailability,
  SandboxDriver,
  SandboxJob,
  SandboxResult,
  SandboxRunOptions,
} from "./driver.ts";

/**
 * `kvm` (the default) refuses to run where KVM does not really work, rather than silently
 * emulating at a tenth of the speed; `tcg` emulates on purpose (development, CI); `auto` takes
 * KVM when the probe succeeds and TCG otherwise, and says so loudly at startup.
 */
export type KvmAccelChoice = Accel | "auto";

export interface KvmDriverOptions {
  accel?: KvmAccelChoice;
  /** Where make-builder-image.sh put the image (its `--out`). */
  imageDir?: string;
  memoryMiB?: number;
  cpus?: number;
  /** The largest image archive a build may return (the out disk's size; sparse until used). */
  maxImageBytes?: number;
  /** Parent of the per-VM directories; defaults to the job directory's parent. */
  workDir?: string;
  qemuBinary?: string;
  /** Firmware for the PVH boot; qboot when installed, else qemu's default SeaBIOS. */
  firmware?: string;
  /**
   * A root daemon runs each VM's qemu as uid and gid `qemuIdBase + slot`: the job's work
   * directory must be traversable (o+x) for them, as the fleet's job folders (0711) are.
   */
  qemuIdBase?: number;
  /**
   * The no-progress watchdog: a VM whose guest printed nothing and used no CPU (its heartbeats
   * say) for this long is killed and the build fails as stalled. Default 120 s; raise it for
   * Dockerfiles with steps that wait silently longer (a busy silent step is never cut short).
   */
  stallTimeoutMs?: number;
  /**
   * Where the console of each failed VM is kept (the newest 10). Default: `<work dir>/failures`
   * when the job directory is the daemon's `<work dir>/jobs/<folder>/job`, else none.
   */
  failuresDir?: string;
}

export const TCG_WARNING = [
  "!!! kvm driver: builder VMs run under TCG, qemu's CPU emulator, not KVM. They are isolated just",
  "!!! the same but several times slower: fine for development and CI, not for a production fleet",
  "!!! host, which needs a working /dev/kvm (and accel kvm, the default, which refuses to emulate).",
].join("\n");

const QBOOT = "/usr/share/qemu/qboot.rom";
const DEFAULT_MEMORY_MIB = 2048;
const DEFAULT_CPUS = 2;
const DEFAULT_MAX_IMAGE_BYTES = 8 * 1024 * 1024 * 1024;
/** After qemu exits, how long the log sockets may take to deliver their last bytes. */
const LOG_DRAIN_MS = 2_000;
const DIAGNOSTIC_LINES = 8;
const DEFAULT_STALL_TIMEOUT_MS = 120_000;
const STALL_CHECK_MS = 500;

export class KvmDriver implements SandboxDriver {
  readonly name = "kvm";
  readonly #options: KvmDriverOptions;
  /** The accelerator runs use, once available() has decided it. */
  #accel: Accel | undefined;
  /** available() succeeded: qemu, the image and the accelerator are there. */
  #ready = false;
  /** Why `auto` did not get KVM. */
  #kvmFailure: string | undefined;
  readonly #slotsInUse = new Set<number>();

  constructor(options: KvmDriverOptions = {}) {
    this.#options = options;
    if (options.accel === "tcg") this.#accel = "tcg";
  }

  /** Set when builds will be emulated: chosen with `tcg`, or what `auto` fell back to (and why). */
  get startupWarning(): string | undefined {
    if (this.#accel !== "tcg") return undefined;
    return this.#kvmFailure === undefined
      ? TCG_WARNING
      : `${TCG_WARNING}\n!!! (${this.#kvmFailure})`;
  }

  /** The accelerator builds run with; undefined until available() succeeded. */
  get accel(): Accel | undefined {
    return this.#accel;
  }

  async available(): Promise<DriverAvailability> {
    try {
      const qemu = this.#qemu();
      if ((await findTool(qemu, this.#env().PATH ?? "")) === undefined) {
        return { ok: false, reason: `${qemu} is missing: apt-get install qemu-system-x86` };
      }
      if ((await findTool("setpriv", this.#env().PATH ?? "")) === undefined) {
        return { ok: false, reason: "setpriv is missing: apt-get install util-linux" };
      }
      const found = await findBuilderImage(this.#imageDir());
      if (!found.ok) return { ok: false, reason: found.reason };
      const unreadable = await this.#unreadableImage(found.image);
      if (unreadable !== undefined) return { ok: false, reason: unreadable };
      const choice = this.#options.accel ?? "kvm";
      if (choice === "tcg") {
        const tcg = await probeAccel(qemu, "tcg", this.#env(), await this.#identity(0, "tcg"));
        if (!tcg.ok) return { ok: false, reason: tcg.reason };
        this.#accel = "tcg";
      } else {
        const kvm = await probeAccel(qemu, "kvm", this.#env(), await this.#identity(0, "kvm"));
        if (kvm.ok) this.#accel = "kvm";
        else if (choice === "auto") {
          this.#accel = "tcg";
          this.#kvmFailure = kvm.reason;
        } else {
          return {
            ok: false,
            reason: `${kvm.reason}; refusing to fall back to TCG emulation (choose accel tcg, --kvm-accel tcg, to emulate on purpose)`,
          };
        }
      }
      this.#ready = true;
      return { ok: true };
    } catch (error) {
      return { ok: false, reason: `kvm driver check failed: ${(error as Error).message}` };
    }
  }

  async run(job: SandboxJob, options: SandboxRunOptions): Promise<SandboxResult> {
    // The limit covers preparing the disks too, not only the VM's own run.
    const deadline = Date.now() + job.timeoutMs;
    if (options.signal.aborted) return { ok: false, reason: "cancelled", error: "cancelled" };
    if (!this.#ready) {
      const availability = await this.available();
      if (!availability.ok)
        return { ok: false, reason: "sandbox", error: availability.reason ?? "unavailable" };
    }
    const accel = this.#accel ?? "kvm";
    // Re-resolved per VM: an image remade meanwhile is used by the next VM, never half by this one.
    const found = await findBuilderImage(this.#imageDir());
    if (!found.ok) return { ok: false, reason: "sandbox", error: found.reason };
    const image = found.image;
    const slot = this.#takeSlot();
    let vmDir: string | undefined;
    // Set when the VM itself failed (not the build): its console is shown before it is deleted.
    let vmFailed: { qemuErrors: string[]; summary?: string } | undefined;
    const failVm = (reason: "sandbox" | "timeout" | "cancelled", error: string): SandboxResult => {
      if (vmFailed !== undefined) vmFailed.summary = `${reason}: ${error}`;
      return { ok: false, reason, error };
    };
    try {
      const identity = await this.#identity(slot, accel);
      const nonce = await readJobNonce(job.jobDir);
      const workDir = this.#options.workDir ?? dirname(job.jobDir);
      await mkdir(workDir, { recursive: true });
      vmDir = await mkdtemp(join(workDir, "vm-"));
      const jobDisk = join(vmDir, "job.tar");
      const outDisk = join(vmDir, "out.img");
      await writeJobDisk(job.jobDir, jobDisk);
      await createOutDisk(outDisk, this.#options.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES);
      const cpus = this.#options.cpus ?? DEFAULT_CPUS;
      const memoryMiB = this.#options.memoryMiB ?? DEFAULT_MEMORY_MIB;
      options.onLog({
        stream: "stdout",
        text: `vm: kernel ${image.kernelVersion}, buildah ${image.buildah}, ${cpus} vCPUs, ${memoryMiB} MiB, accel ${accel}${accel === "tcg" ? " (emulated: slow)" : ""}`,
      });
      const firmware = this.#options.firmware ?? ((await isReadable(QBOOT)) ? QBOOT : undefined);
      const args = qemuArgs({
        accel,
        memoryMiB,
        cpus,
        kernel: image.kernel,
        rootImage: image.root,
        jobDisk,
        outDisk,
        stdoutSocket: join(vmDir, "stdout.sock"),
        stderrSocket: join(vmDir, "stderr.sock"),
        heartbeatSocket: join(vmDir, "heartbeat.sock"),
        consoleLog: join(vmDir, "console.log"),
        firmware,
        name: `edge-build-${job.buildId.replace(/[^A-Za-z0-9_-]/g, "").slice(0, 32)}`,
      });
      const ended = await this.#runVm(args, vmDir, identity, nonce, deadline, options);
      if (ended.kind !== "exited" || ended.result?.ok !== true)
        vmFailed = { qemuErrors: ended.qemuErrors };
      if (ended.kind === "cancelled") return failVm("cancelled", "cancelled");
      if (ended.kind === "timeout")
        return failVm("timeout", `the build ran longer than ${Math.round(job.timeoutMs / 1000)} s`);
      if (ended.kind === "stalled") {
        return failVm(
          "sandbox",
          `no output for ${Math.round(ended.silentMs / 1000)} s; VM stalled (killed; the limit is the kvm driver's stallTimeoutMs)`,
        );
      }
      const { result } = ended;
      // The agent explained a failed build itself: the console has nothing to add.
      if (result !== undefined && !result.ok) {
        vmFailed = undefined;
        return { ok: false, reason: "build", error: result.error };
      }
      if (result?.ok) {
        await mkdir(join(job.jobDir, "out"), { recursive: true });
        const imageArchive = join(job.jobDir, "out", "image.tar");
        const copied = await readOutDisk(outDisk, imageArchive);
        if (copied.ok) return { ok: true, imageArchive };
        vmFailed = { qemuErrors: ended.qemuErrors };
        return failVm("sandbox", `the agent reported success but ${copied.error}`);
      }
      const consoleTail = lastLines(await readTail(join(vmDir, "console.log")), DIAGNOSTIC_LINES);
      const details = [...ended.stderrTail, ...ended.qemuErrors, ...consoleTail].join(" | ");
      return failVm(
        "sandbox",
        `the VM ended without a result (${ended.how})${details === "" ? "" : `: ${details}`}`,
      );
    } catch (error) {
      vmFailed ??= { qemuErrors: [] };
      return failVm("sandbox", `kvm sandbox: ${(error as Error).message}`);
    } finally {
      if (vmDir !== undefined) {
        if (vmFailed !== undefined) await this.#diagnose(job, vmDir, vmFailed, options);
        await rm(vmDir, { recursive: true, force: true }).catch(() => {});
      }
      this.#slotsInUse.delete(slot);
    }
  }

  /** Boots the VM and waits for it to end, streaming the agent's output as it comes. */
  async #runVm(
    args: string[],
    vmDir: string,
    identity: QemuIdentity | undefined,
    nonce: string,
    deadline: number,
    options: SandboxRunOptions,
  ): Promise<VmEnd> {
    const stderrTail: string[] = [];
    const watchdog = new StallWatchdog(this.#options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS);
    const reader = new AgentOutputReader(nonce, {
      onLog: (line) => {
        watchdog.output();
        if (line.stream === "stderr") keepTail(stderrTail, line.text);
        options.onLog(line);
      },
      onControl: (control) => {
        watchdog.output();
        options.onControl?.(control);
      },
    });
    // qemu connects to these at startup, before the guest runs: no output can be missed.
    const stdout = await listenOnce(join(vmDir, "stdout.sock"), (chunk) =>
      reader.write("stdout", chunk),
    );
    const stderr = await listenOnce(join(vmDir, "stderr.sock"), (chunk) =>
      reader.write("stderr", chunk),
    );
    const heartbeat = await listenOnce(join(vmDir, "heartbeat.sock"), (chunk) =>
      watchdog.heartbeat(chunk),
    );
    try {
      await handOver(identity, [
        vmDir,
        join(vmDir, "out.img"),
        join(vmDir, "stdout.sock"),
        join(vmDir, "stderr.sock"),
        join(vmDir, "heartbeat.sock"),
      ]);
      const exit = await this.#spawnQemu(args, vmDir, identity, deadline, watchdog, options);
      await Promise.all([stdout.drained(LOG_DRAIN_MS), stderr.drained(LOG_DRAIN_MS)]);
      reader.end();
      const { qemuErrors } = exit;
      if (exit.stopped === "stalled")
        return { kind: "stalled", silentMs: watchdog.silentMs(), qemuErrors };
      if (exit.stopped !== undefined) return { kind: exit.stopped, qemuErrors };
      const how =
        exit.signal === null ? `qemu exit status ${exit.code}` : `qemu killed by ${exit.signal}`;
      return {
        kind: "exited",
        result: reader.result,
        how,
        stderrTail,
        qemuErrors,
      };
    } finally {
      stdout.close();
      stderr.close();
      heartbeat.close();
    }
  }

  #spawnQemu(
    args: string[],
    vmDir: string,
    identity: QemuIdentity | undefined,
    deadline: number,
    watchdog: StallWatchdog,
    options: SandboxRunOptions,
  ): Promise<QemuExit> {
    return new Promise((resolve) => {
      let stopped: QemuExit["stopped"];
      const qemuErrors: string[] = [];
      // setpriv drops to the VM's own uid and makes the kernel kill qemu if the fleet process
      // dies, so no VM outlives its driver; qemu's own process group lets a kill reach it at once.
      // TMPDIR is where qemu puts the root overlay: the VM's directory, removed with it.
      const child: ChildProcess = spawn(
        "setpriv",
        [...launcherArgs(identity), this.#qemu(), ...args],
        {
          env: { ...this.#env(), TMPDIR: vmDir },
          stdio: ["ignore", "ignore", "pipe"],
          detached: true,
        },
      );
      const kill = (why: NonNullable<QemuExit["stopped"]>) => {
        stopped ??= why;
        killGroup(child);
      };
      const timer = setTimeout(() => kill("timeout"), Math.max(0, deadline - Date.now()));
      const stallCheck = setInterval(() => {
        if (watchdog.stalled()) kill("stalled");
      }, STALL_CHECK_MS);
      const onAbort = () => kill("cancelled");
      if (options.signal.aborted) onAbort();
      options.signal.addEventListener("abort", onAbort, { once: true });
      let partial = "";
      child.stderr?.on("data", (chunk: Buffer) => {
        const lines = (partial + chunk.toString("utf8")).split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines)
          if (line.trim() !== "" && !line.includes("warning:")) keepTail(qemuErrors, line);
      });
      const finish = (exit: Omit<QemuExit, "qemuErrors" | "stopped">) => {
        clearTimeout(timer);
        clearInterval(stallCheck);
        options.signal.removeEventListener("abort", onAbort);
        if (partial.trim() !== "") keepTail(qemuErrors, partial);
        resolve({ ...exit, stopped, qemuErrors });
      };
      child.on("error", (error) => {
        keepTail(qemuErrors, `cannot start qemu: ${error.message}`);
        finish({ code: null, signal: null });
      });
      child.on("close", (code, signal) => finish({ code, signal }));
    });
  }

  /**
   * A VM failed (not its build): its console and qemu's errors go into the build log as `vm
   * console:` / `qemu:` lines and, whole, into the failures directory, before the VM dir goes.
   */
  async #diagnose(
    job: SandboxJob,
    vmDir: string,
    failed: { qemuErrors: string[]; summary?: string },
    options: SandboxRunOptions,
  ): Promise<void> {
    const consoleText = await readTail(join(vmDir, "console.log"));
    const log = (text: string) => options.onLog({ stream: "system", text });
    for (const line of lastLines(failed.qemuErrors.join("\n"))) log(`qemu: ${line}`);
    const tail = lastLines(consoleText);
    if (tail.length > 0) log(`vm: the guest console's last ${tail.length} lines:`);
    for (const line of tail) log(`vm console: ${line}`);
    const dir = this.#options.failuresDir ?? defaultFailuresDir(job.jobDir);
    if (dir === undefined) return;
    try {
      const kept = await keepFailure(dir, {
        buildId: job.buildId,
        attempt: job.attempt,
        summary: failed.summary ?? "failed",
        qemuErrors: failed.qemuErrors,
        console: consoleText,
      });
      log(`vm: console kept on the build host in ${kept}`);
    } catch (error) {
      log(`vm: could not keep the console: ${(error as Error).message}`);
    }
  }

  /** qemu opens the image as its own uid: a checkout under a 0700 home would stop every VM. */
  async #unreadableImage(image: BuilderImage): Promise<string | undefined> {
    const identity = await this.#identity(0, "tcg");
    if (identity === undefined) return undefined;
    const check = await run(
      "setpriv",
      [
        ...launcherArgs(identity),
        "sh",
        "-c",
        'test -r "$1" && test -r "$2"',
        "sh",
        image.kernel,
        image.root,
      ],
      { env: this.#env(), timeoutMs: 10_000 },
    );
    if (check.code === 0) return undefined;
    return `qemu runs as uid ${identity.uid}, which cannot read the builder image in ${image.dir}: make its parent directories traversable (chmod o+x) or make the image elsewhere (make-builder-image.sh --out)`;
  }

  #identity(slot: number, accel: Accel): Promise<QemuIdentity | undefined> {
    return qemuIdentity(slot, this.#options.qemuIdBase ?? DEFAULT_QEMU_ID_BASE, accel);
  }

  #takeSlot(): number {
    let slot = 0;
    while (this.#slotsInUse.has(slot)) slot++;
    this.#slotsInUse.add(slot);
    return slot;
  }

  #imageDir(): string {
    return this.#options.imageDir ?? process.env.EDGE_BUILDER_IMAGE_DIR ?? DEFAULT_IMAGE_DIR;
  }

  #qemu(): string {
    return this.#options.qemuBinary ?? "qemu-system-x86_64";
  }

  /** qemu gets a fixed environment: nothing of the daemon's (its credential least of all). */
  #env(): NodeJS.ProcessEnv {
    return { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" };
  }
}

type VmEnd =
  | { kind: "timeout"; qemuErrors: string[] }
  | { kind: "cancelled"; qemuErrors: string[] }
  | { kind: "stalled"; silentMs: number; qemuErrors: string[] }
  | {
      kind: "exited";
      result: AgentOutputReader["result"];
      how: string;
      stderrTail: string[];
      qemuErrors: string[];
    };

interface QemuExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stopped: "timeout" | "cancelled" | "stalled" | undefined;
  qemuErrors: string[];
}

interface LogSocket {
  /** Resolves when qemu's side closed (or never connected), or after `ms` at most. */
  drained(ms: number): Promise<void>;
  close(): void;
}

/** A unix socket server for one qemu chardev: one connection, its bytes to `onData`. */
function listenOnce(path: string, onData: (chunk: Buffer) => void): Promise<LogSocket> {
  return new Promise((resolve, reject) => {
    let connection: Socket | undefined;
    let closed: Promise<void> | undefined;
    const server: Server = createServer((socket) => {
      if (connection !== undefined) {
        socket.destroy();
        return;
      }
      connection = socket;
      closed = new Promise((done) => socket.on("close", () => done()));
      socket.on("data", onData);
      socket.on("error", () => {});
      server.close();
    });
    server.on("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve({
        drained: async (ms) => {
          if (closed === undefined) return;
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([closed, new Promise<void>((done) => (timer = setTimeout(done, ms)))]);
          clearTimeout(timer);
        },
        close: () => {
          server.close();
          connection?.destroy();
        },
      });
    });
  });
}

function keepTail(lines: string[], line: string): void {
  lines.push(line);
  if (lines.length > DIAGNOSTIC_LINES) lines.shift();
}

async function isReadable(path: string): Promise<boolean> {
  try {
    await access(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    child.kill("SIGKILL");
  }
}
