// Runs the real build fleet daemon (build-fleet/bin/build-fleet.ts) as a child process for
// end-to-end tests and benchmarks, the way an operator starts a host:
//
//   const host = await startFleetHost({ registryUrl, credential, hostId: "host-a" });
//   await host.waitFor(/pushed sha256:/);        // its own log
//   host.kill("SIGKILL");                         // a lost host: no hand-back, no goodbye
//   await host.stop();                            // SIGTERM, graceful drain, then exit
//
// The credential goes by environment (BUILD_FLEET_CREDENTIAL), never argv. Each host gets its own
// work directory (one daemon per directory), deleted by stop()/cleanup().
// FLEET_TEST_LOGS=1 echoes the daemon's output to this process's stderr.
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

const repoRoot = path.resolve(import.meta.dirname, "../..");
const DAEMON = path.join(repoRoot, "build-fleet", "bin", "build-fleet.ts");
const CONNECTED = /fleet: connected to /;

export interface FleetHostOptions {
  registryUrl: string;
  credential: string;
  hostId: string;
  /** `namespace` (default) or `kvm`. */
  driver?: "namespace" | "kvm";
  /** For the kvm driver: `tcg` emulates on purpose (no KVM here). */
  kvmAccel?: "kvm" | "tcg" | "auto";
  /** How long a SIGTERM may wait for running builds (default 5 s). */
  shutdownGraceSeconds?: number;
  /** How long to wait for the first connection (default 60 s: the kvm probe boots a VM). */
  readyTimeoutMs?: number;
}

export interface FleetHost {
  readonly hostId: string;
  readonly pid: number;
  /** Everything the daemon printed so far (stdout and stderr interleaved). */
  output(): string;
  /** Resolves with the first match of `pattern` in the output (seen or yet to come). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** The daemon and every process below it, as they are now (from /proc). */
  processTree(): number[];
  /** Sends `signal` to the daemon process alone. */
  kill(signal: NodeJS.Signals): void;
  /** Resolves once the daemon has exited. */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM (a graceful drain), then waits; SIGKILL after the grace period and a margin. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Deletes the work directory (after the daemon has exited). */
  cleanup(): Promise<void>;
}

export async function startFleetHost(options: FleetHostOptions): Promise<FleetHost> {
  const workDir = await mkdtemp(path.join(os.tmpdir(), `fleet-${options.hostId}-`));
  const grace = options.shutdownGraceSeconds ?? 5;
  const driver = options.driver ?? "namespace";
  const child: ChildProcess = spawn(
    process.execPath,
    [
      DAEMON,
      "--registry",
      options.registryUrl,
      "--driver",
      driver,
      ...(driver === "kvm" ? ["--kvm-accel", options.kvmAccel ?? "tcg"] : []),
      "--host-id",
      options.hostId,
      "--work-dir",
      workDir,
      "--shutdown-grace",
      String(grace),
    ],
    {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        LANG: "C.UTF-8",
        BUILD_FLEET_CREDENTIAL: options.credential,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  const waiters = new Set<() => void>();
  const echo = process.env.FLEET_TEST_LOGS === "1";
  for (const stream of [child.stdout!, child.stderr!]) {
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      output += chunk;
      if (echo) process.stderr.write(`[${options.hostId}] ${chunk}`);
      for (const wake of waiters) wake();
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      resolve({ code, signal });
      for (const wake of waiters) wake();
    }),
  );
  const alive = () => child.exitCode === null && child.signalCode === null;

  const waitFor = (pattern: RegExp, timeoutMs = 60_000) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const match = pattern.exec(output);
        if (match) {
          finish();
          resolve(match);
        } else if (!alive()) {
          finish();
          reject(new Error(`fleet host ${options.hostId} exited before ${pattern}:\n${output}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(
          new Error(`fleet host ${options.hostId}: no ${pattern} in ${timeoutMs} ms:\n${output}`),
        );
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  const host: FleetHost = {
    hostId: options.hostId,
    pid: child.pid!,
    output: () => output,
    waitFor,
    processTree: () => processTree(child.pid!),
    kill: (signal) => {
      if (alive()) child.kill(signal);
    },
    exited: () => exited,
    async stop() {
      if (alive()) child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), (grace + 10) * 1000);
      const result = await exited;
      clearTimeout(killer);
      return result;
    },
    cleanup: () => rm(workDir, { recursive: true, force: true }),
  };
  try {
    await waitFor(CONNECTED, options.readyTimeoutMs ?? 60_000);
  } catch (error) {
    await host.stop();
    await host.cleanup();
    throw error;
  }
  return host;
}

/** `pid` and all its descendants, read from /proc (parents before children). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // Gone meanwhile.
    }
    // The command name (field 2) may hold spaces and parentheses: parse after the last ")".
    const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    const list = children.get(parent) ?? [];
    list.push(Number(entry));
    children.set(parent, list);
  }
  const tree: number[] = [];
  const visit = (at: number) => {
    tree.push(at);
    for (const child of children.get(at) ?? []) visit(child);
  };
  if (isAlive(pid)) visit(pid);
  return tree;
}

/** Whether `pid` still runs (a zombie, dead but not yet reaped, does not). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}
