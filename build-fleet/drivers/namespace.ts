// The `namespace` sandbox driver: the build agent in fresh Linux namespaces on the host's kernel.
// `unshare` maps a subordinate uid range to root (newuidmap), then bwrap builds an empty root
// with read-only /usr, a private /etc, no network, its own pid/ipc/uts/cgroup namespaces, and only
// the job's directories. For laptops and CI: a kernel bug is an escape, hence the loud warning.
import { type ChildProcess, spawn } from "node:child_process";
import { chmod, lstat, mkdir, mkdtemp, readlink, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { readJobNonce } from "../agent/job-dir.ts";
import { AgentOutputReader } from "../agent/protocol.ts";
import { findTool } from "../lib/find-tool.ts";
import { run } from "../lib/process.ts";
import type {
  DriverAvailability,
  SandboxDriver,
  SandboxJob,
  SandboxResult,
  SandboxRunOptions,
} from "./driver.ts";
import { type SubordinateRanges, sandboxSlice, subordinateRanges } from "./subordinate-ids.ts";

export const NAMESPACE_WARNING = [
  "!!! namespace sandbox: builds share this host's kernel. Namespaces, no network and a mapped",
  "!!! uid range stop mistakes, not attackers: this is NOT a security boundary for untrusted",
  "!!! Dockerfiles. Use --driver kvm on hosts with /dev/kvm for anything you do not trust.",
].join("\n");

const AGENT_PATH = fileURLToPath(new URL("../agent/build-agent.sh", import.meta.url));
/** Where the agent keeps buildah's storage inside the sandbox (a host directory of the job). */
const SANDBOX_SCRATCH = "/var/lib/build-agent";
const TOOLS = ["setpriv", "unshare", "bwrap", "newuidmap", "newgidmap", "buildah", "runc"] as const;
/** Host paths a merged-/usr system links and an older one has as directories. */
const ROOT_LINKS = ["bin", "sbin", "lib", "lib64", "lib32", "libx32"];
/** The only host files the sandbox sees besides /usr: what dynamic linking and id lookups need. */
const HOST_ETC_FILES = ["passwd", "group", "nsswitch.conf", "ld.so.cache", "localtime"];
const SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** The host's root layout does not change under a running daemon: read once. */
const ROOT_LINK_ARGS = await rootLinkArgs();

export interface NamespaceDriverOptions {
  /** Root only: add a subordinate range for root to /etc/subuid and /etc/subgid if it has none. */
  createSubordinateRange?: boolean;
  subuidPath?: string;
  subgidPath?: string;
  /** Directories searched for the tools; defaults to the daemon's PATH. */
  toolPath?: string;
  /** The program run as the sandbox's root: the build agent, or a probe in the isolation tests. */
  agentPath?: string;
}

export class NamespaceDriver implements SandboxDriver {
  readonly name = "namespace";
  readonly startupWarning = NAMESPACE_WARNING;
  readonly #options: NamespaceDriverOptions;
  readonly #slotsInUse = new Set<number>();
  #ranges: SubordinateRanges | undefined;

  constructor(options: NamespaceDriverOptions = {}) {
    this.#options = options;
  }

  async available(): Promise<DriverAvailability> {
    try {
      const missing: string[] = [];
      for (const tool of TOOLS)
        if ((await findTool(tool, this.#toolPath())) === undefined) missing.push(tool);
      if (missing.length > 0) {
        return {
          ok: false,
          reason: `missing ${missing.join(", ")}: apt-get install buildah runc bubblewrap uidmap util-linux`,
        };
      }
      const ranges = await subordinateRanges({
        createForRoot: this.#options.createSubordinateRange ?? true,
        subuidPath: this.#options.subuidPath,
        subgidPath: this.#options.subgidPath,
        onCreate: (line, path) =>
          console.error(
            `build-fleet: added ${line} to ${path} (the namespace sandbox's uid range)`,
          ),
      });
      if (!ranges.ok) return { ok: false, reason: ranges.reason };
      this.#ranges = ranges.ranges;
      // Proves the kernel and the container we may run in allow nested user namespaces.
      const probe = await run(
        "unshare",
        [...this.#unshareArgs(sandboxSlice(ranges.ranges, 0)), "bwrap", ...this.#probeArgs()],
        { env: this.#env(), timeoutMs: 10_000 },
      );
      if (probe.code !== 0) {
        return {
          ok: false,
          reason: `cannot create a user namespace sandbox: ${probe.stderr.trim() || `exit ${probe.code}`}`,
        };
      }
      return { ok: true };
    } catch (error) {
      return { ok: false, reason: `namespace sandbox check failed: ${(error as Error).message}` };
    }
  }

  async run(job: SandboxJob, options: SandboxRunOptions): Promise<SandboxResult> {
    if (this.#ranges === undefined) {
      const availability = await this.available();
      if (!availability.ok)
        return { ok: false, reason: "sandbox", error: availability.reason ?? "unavailable" };
    }
    const slot = this.#takeSlot();
    const ids = sandboxSlice(this.#ranges!, slot);
    let scratch: string | undefined;
    try {
      const nonce = await readJobNonce(job.jobDir);
      scratch = await mkdtemp(join(dirname(job.jobDir), "sandbox-scratch-"));
      await this.#handOver(job.jobDir, scratch, ids);
      const args = [
        ...this.#unshareArgs(ids),
        "bwrap",
        ...(await this.#bwrapArgs(job.jobDir, scratch)),
        "/bin/sh",
        "/agent/build-agent.sh",
      ];
      return await this.#runSandbox(args, nonce, job, options);
    } catch (error) {
      return {
        ok: false,
        reason: "sandbox",
        error: `namespace sandbox: ${(error as Error).message}`,
      };
    } finally {
      if (scratch !== undefined) await this.#removeOwned(scratch, ids).catch(() => {});
      this.#slotsInUse.delete(slot);
    }
  }

  #runSandbox(
    args: string[],
    nonce: string,
    job: SandboxJob,
    options: SandboxRunOptions,
  ): Promise<SandboxResult> {
    return new Promise((resolve) => {
      let ended: "timeout" | "cancelled" | undefined;
      const stderrTail: string[] = [];
      const reader = new AgentOutputReader(nonce, {
        onLog: (line) => {
          if (line.stream === "stderr") {
            stderrTail.push(line.text);
            if (stderrTail.length > 5) stderrTail.shift();
          }
          options.onLog(line);
        },
        onControl: (control) => options.onControl?.(control),
      });
      // Its own process group, so a kill reaches setpriv/unshare, bwrap and all below at once;
      // `--kill-child` and bwrap's `--die-with-parent` and pid namespace back that up.
      // setpriv ties the sandbox to this process: if the daemon dies (killed, crashed), the
      // kernel kills unshare, whose --kill-child takes bwrap and its pid namespace along.
      const child: ChildProcess = spawn(
        "setpriv",
        ["--pdeathsig", "SIGKILL", "--", "unshare", ...args],
        {
          env: this.#env(),
          stdio: ["ignore", "pipe", "pipe"],
          detached: true,
        },
      );
      const kill = (why: "timeout" | "cancelled") => {
        ended ??= why;
        killGroup(child);
      };
      const timer = setTimeout(() => kill("timeout"), job.timeoutMs);
      const onAbort = () => kill("cancelled");
      if (options.signal.aborted) onAbort();
      options.signal.addEventListener("abort", onAbort, { once: true });
      child.stdout?.on("data", (chunk: Buffer) => reader.write("stdout", chunk));
      child.stderr?.on("data", (chunk: Buffer) => reader.write("stderr", chunk));
      child.on("error", (error) => {
        clearTimeout(timer);
        options.signal.removeEventListener("abort", onAbort);
        resolve({
          ok: false,
          reason: "sandbox",
          error: `cannot start the sandbox: ${error.message}`,
        });
      });
      child.on("close", async (code, signal) => {
        clearTimeout(timer);
        options.signal.removeEventListener("abort", onAbort);
        reader.end();
        if (ended === "cancelled")
          return resolve({ ok: false, reason: "cancelled", error: "cancelled" });
        if (ended === "timeout") {
          return resolve({
            ok: false,
            reason: "timeout",
            error: `the build ran longer than ${Math.round(job.timeoutMs / 1000)} s`,
          });
        }
        const result = reader.result;
        if (result !== undefined && !result.ok)
          return resolve({ ok: false, reason: "build", error: result.error });
        const imageArchive = join(job.jobDir, "out", "image.tar");
        if (code === 0 && result?.ok && (await isFile(imageArchive)))
          return resolve({ ok: true, imageArchive });
        const how = signal === null ? `exit status ${code}` : `signal ${signal}`;
        const tail = stderrTail.length > 0 ? `: ${stderrTail.join(" | ")}` : "";
        resolve({
          ok: false,
          reason: "sandbox",
          error: `the sandbox ended without a result (${how})${tail}`,
        });
      });
    });
  }

  #unshareArgs(ids: SubordinateRanges): string[] {
    return [
      "--user",
      `--map-users=${ids.uid.start},0,${ids.uid.count}`,
      `--map-groups=${ids.gid.start},0,${ids.gid.count}`,
      "--setuid=0",
      "--setgid=0",
      "--fork",
      "--kill-child=SIGKILL",
      "--",
    ];
  }

  #probeArgs(): string[] {
    return [
      "--die-with-parent",
      "--unshare-net",
      "--ro-bind",
      "/usr",
      "/usr",
      ...ROOT_LINK_ARGS,
      "/usr/bin/true",
    ];
  }

  async #bwrapArgs(jobDir: string, scratch: string): Promise<string[]> {
    const args = [
      "--die-with-parent",
      "--new-session",
      "--unshare-ipc",
      "--unshare-pid",
      "--unshare-net",
      "--unshare-uts",
      "--unshare-cgroup",
      "--hostname",
      "build",
      "--clearenv",
      "--setenv",
      "PATH",
      SANDBOX_PATH,
      "--setenv",
      "LANG",
      "C.UTF-8",
      "--setenv",
      "AGENT_JOB_DIR",
      "/job",
      "--setenv",
      "AGENT_SCRATCH_DIR",
      SANDBOX_SCRATCH,
      "--ro-bind",
      "/usr",
      "/usr",
      ...ROOT_LINK_ARGS,
      "--proc",
      "/proc",
      "--dev",
      "/dev",
      "--tmpfs",
      "/tmp",
      "--tmpfs",
      "/run",
      "--tmpfs",
      "/var",
      // A private, writable /etc: the agent writes its containers config, hosts and resolv.conf.
      "--tmpfs",
      "/etc",
      // For the cgroup2 mount runc needs; the host's /sys is not shown.
      "--dir",
      "/sys",
    ];
    for (const file of HOST_ETC_FILES) args.push("--ro-bind-try", `/etc/${file}`, `/etc/${file}`);
    args.push(
      "--ro-bind",
      join(jobDir, "job.env"),
      "/job/job.env",
      "--ro-bind",
      join(jobDir, "context"),
      "/job/context",
      "--ro-bind",
      join(jobDir, "bases"),
      "/job/bases",
      "--bind",
      join(jobDir, "out"),
      "/job/out",
      "--bind",
      scratch,
      SANDBOX_SCRATCH,
      "--ro-bind",
      this.#options.agentPath ?? AGENT_PATH,
      "/agent/build-agent.sh",
      "--chdir",
      "/",
    );
    return args;
  }

  /**
   * Gives the sandbox's root the job's files: the context and bases are bound read-only and
   * `out/` and scratch are its to write. Root chowns them to the sandbox's mapped root, so modes
   * are kept exactly (a build COPYs them); another user can only open what is world-readable.
   */
  async #handOver(jobDir: string, scratch: string, ids: SubordinateRanges): Promise<void> {
    await assertTraversable(jobDir);
    await mkdir(join(jobDir, "bases"), { recursive: true });
    await mkdir(join(jobDir, "out"), { recursive: true });
    const paths = ["context", "bases", "out"].map((name) => join(jobDir, name));
    if (process.getuid?.() === 0) {
      const chown = await run(
        "chown",
        ["-R", `${ids.uid.start}:${ids.gid.start}`, ...paths, scratch],
        {
          env: this.#env(),
        },
      );
      if (chown.code !== 0) throw new Error(`chown failed: ${chown.stderr.trim()}`);
    } else {
      await chmod(join(jobDir, "out"), 0o777);
      await chmod(scratch, 0o777);
    }
  }

  /** Deletes what the sandbox wrote; a non-root daemon needs the sandbox's mapping to do it. */
  async #removeOwned(path: string, ids: SubordinateRanges): Promise<void> {
    if (process.getuid?.() !== 0) {
      await run("unshare", [...this.#unshareArgs(ids), "find", path, "-mindepth", "1", "-delete"], {
        env: this.#env(),
      });
    }
    await rm(path, { recursive: true, force: true });
  }

  #takeSlot(): number {
    let slot = 0;
    while (this.#slotsInUse.has(slot)) slot++;
    this.#slotsInUse.add(slot);
    return slot;
  }

  #toolPath(): string {
    return this.#options.toolPath ?? process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin";
  }

  /** Children get a fixed environment: nothing of the daemon's (its credential least of all). */
  #env(): NodeJS.ProcessEnv {
    return { PATH: this.#toolPath(), LANG: "C.UTF-8" };
  }
}

/** `--symlink usr/bin /bin` on a merged-/usr host, `--ro-bind /bin /bin` on an older one. */
async function rootLinkArgs(): Promise<string[]> {
  const args: string[] = [];
  for (const name of ROOT_LINKS) {
    try {
      const info = await lstat(`/${name}`);
      if (info.isSymbolicLink()) args.push("--symlink", await readlink(`/${name}`), `/${name}`);
      else if (info.isDirectory()) args.push("--ro-bind", `/${name}`, `/${name}`);
    } catch {
      // Absent on this host.
    }
  }
  return args;
}

/**
 * bwrap resolves the job's paths as the sandbox's root, an unprivileged host uid: every directory
 * above the job must let others through (o+x; listing is not needed).
 */
async function assertTraversable(jobDir: string): Promise<void> {
  let dir = dirname(jobDir);
  for (;;) {
    const info = await stat(dir);
    if ((info.mode & 0o001) === 0) {
      throw new Error(
        `${dir} is not traversable by the sandbox's uid: chmod o+x ${dir} (listing is not needed)`,
      );
    }
    const parent = dirname(dir);
    if (parent === dir) return;
    dir = parent;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
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
