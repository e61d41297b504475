// `build-fleet`: parses the command line, reads the fleet credential, picks the sandbox driver,
// claims the work directory, starts the daemon and shuts it down gracefully on SIGTERM/SIGINT
// (a second signal hands running builds back at once).
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { homedir, hostname } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

import { BUILD_TIMEOUT_MS } from "../../schema/builds.ts";
import { type DriverChoice, type KvmAccel, selectDriver } from "../drivers/select.ts";
import { FleetDaemon } from "./daemon.ts";
import { RegistryClient } from "./registry-client.ts";

export const USAGE = `usage: build-fleet --registry URL (--credential-file FILE | --credential TOKEN)
                   [--concurrency N] [--driver auto|kvm|namespace] [--kvm-accel kvm|tcg|auto]
                   [--work-dir DIR] [--host-id ID] [--job-timeout SECONDS]
                   [--shutdown-grace SECONDS] [--allow-local-git] [--stop-with-stdin]

  The credential may also come from BUILD_FLEET_CREDENTIAL. --credential puts it in the
  process list; prefer --credential-file (mode 0600) on shared hosts.`;

export interface FleetConfig {
  registry: URL;
  credential: string;
  concurrency: number;
  driver: DriverChoice;
  kvmAccel: KvmAccel;
  workDir: string;
  hostId: string;
  jobTimeoutMs: number;
  shutdownGraceMs: number;
  allowLocalGit: boolean;
  /** Drain and stop when stdin closes: a child of another process dies with it. */
  stopWithStdin: boolean;
  warnings: string[];
}

const HOST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

function positiveInteger(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number < 1)
    throw new Error(`${name} must be a positive integer`);
  return number;
}

/** The configuration, or a message for the operator (bad arguments, no credential). */
export async function parseFleetArgs(
  argv: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ ok: true; config: FleetConfig } | { ok: false; error: string; help?: true }> {
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        registry: { type: "string" },
        credential: { type: "string" },
        "credential-file": { type: "string" },
        concurrency: { type: "string" },
        driver: { type: "string" },
        "kvm-accel": { type: "string" },
        "work-dir": { type: "string" },
        "host-id": { type: "string" },
        "job-timeout": { type: "string" },
        "shutdown-grace": { type: "string" },
        "allow-local-git": { type: "boolean" },
        "stop-with-stdin": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) return { ok: false, error: USAGE, help: true };
    if (values.registry === undefined) throw new Error("--registry is required");
    const registry = new URL(values.registry);
    if (registry.protocol !== "http:" && registry.protocol !== "https:") {
      throw new Error("--registry must be an http:// or https:// URL");
    }
    const warnings: string[] = [];
    let credential: string | undefined;
    if (values["credential-file"] !== undefined) {
      credential = (await readFile(values["credential-file"], "utf8")).trim();
    } else if (values.credential !== undefined) {
      credential = values.credential;
      warnings.push(
        "the fleet credential is on the command line, visible in the process list; prefer --credential-file",
      );
    } else {
      credential = env.BUILD_FLEET_CREDENTIAL;
    }
    if (credential === undefined || credential === "") {
      throw new Error(
        "no fleet credential: --credential-file, --credential or BUILD_FLEET_CREDENTIAL",
      );
    }
    const driver = values.driver ?? "auto";
    if (driver !== "auto" && driver !== "kvm" && driver !== "namespace") {
      throw new Error("--driver must be auto, kvm or namespace");
    }
    const kvmAccel = values["kvm-accel"] ?? "kvm";
    if (kvmAccel !== "kvm" && kvmAccel !== "tcg" && kvmAccel !== "auto") {
      throw new Error("--kvm-accel must be kvm, tcg or auto");
    }
    const hostId =
      values["host-id"] ??
      hostname()
        .replace(/[^A-Za-z0-9._:-]/g, "-")
        .slice(0, 128);
    if (!HOST_ID.test(hostId)) throw new Error("--host-id must be 1-128 letters, digits, . _ : -");
    const defaultWorkDir =
      process.getuid?.() === 0 ? "/var/lib/build-fleet" : join(homedir(), ".cache", "build-fleet");
    return {
      ok: true,
      config: {
        registry,
        credential,
        concurrency: positiveInteger(values.concurrency, "--concurrency", 1),
        driver,
        kvmAccel,
        workDir: resolve(values["work-dir"] ?? defaultWorkDir),
        hostId,
        jobTimeoutMs:
          positiveInteger(values["job-timeout"], "--job-timeout", BUILD_TIMEOUT_MS / 1000) * 1000,
        shutdownGraceMs: positiveInteger(values["shutdown-grace"], "--shutdown-grace", 60) * 1000,
        allowLocalGit: values["allow-local-git"] === true,
        stopWithStdin: values["stop-with-stdin"] === true,
        warnings,
      },
    };
  } catch (error) {
    return { ok: false, error: `build-fleet: ${(error as Error).message}\n${USAGE}` };
  }
}

/** One daemon per work directory: a pid file names the owner; a dead owner's leftovers go. */
async function claimWorkDir(workDir: string): Promise<void> {
  await mkdir(workDir, { recursive: true, mode: 0o711 });
  // Others may traverse but not list it: a namespace sandbox's root (an unprivileged host uid)
  // must reach its job's directories, whose names are random.
  await chmod(workDir, 0o711);
  const pidFile = join(workDir, "build-fleet.pid");
  const owner = Number((await readFile(pidFile, "utf8").catch(() => "")).trim());
  if (Number.isSafeInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
    throw new Error(
      `another build-fleet (pid ${owner}) uses ${workDir}; give each daemon its own --work-dir`,
    );
  }
  await writeFile(pidFile, `${process.pid}\n`, { mode: 0o644 });
  // Jobs of a daemon that died mid-build: their coordinator leases have lapsed anyway.
  await rm(join(workDir, "jobs"), { recursive: true, force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function log(text: string): void {
  console.log(`${new Date().toISOString()} ${text}`);
}

export async function main(argv: string[]): Promise<number> {
  const parsed = await parseFleetArgs(argv, process.env);
  // Nothing the daemon starts may inherit the credential.
  delete process.env.BUILD_FLEET_CREDENTIAL;
  if (!parsed.ok) {
    if (parsed.help) {
      console.log(parsed.error);
      return 0;
    }
    console.error(parsed.error);
    return 2;
  }
  const config = parsed.config;
  for (const warning of config.warnings) log(`warning: ${warning}`);
  const selection = await selectDriver(config.driver, { kvmAccel: config.kvmAccel, log });
  if (!selection.ok) {
    console.error(`build-fleet: ${selection.reason}`);
    return 1;
  }
  const driver = selection.driver;
  if (driver.startupWarning) console.error(`\n${driver.startupWarning}\n`);
  try {
    await claimWorkDir(config.workDir);
  } catch (error) {
    console.error(`build-fleet: ${(error as Error).message}`);
    return 1;
  }
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    LANG: "C.UTF-8",
  };
  const daemon = new FleetDaemon({
    registry: new RegistryClient({ url: config.registry, env }),
    credential: config.credential,
    hostId: config.hostId,
    concurrency: config.concurrency,
    driver,
    workDir: config.workDir,
    env,
    allowLocalGit: config.allowLocalGit,
    jobTimeoutMs: config.jobTimeoutMs,
    log,
  });
  log(
    `fleet: host ${config.hostId}, driver ${driver.name}, concurrency ${config.concurrency}, registry ${config.registry.origin}, work dir ${config.workDir}`,
  );
  daemon.start();
  await new Promise<void>((resolveStopped) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals === 1) {
        log(`fleet: ${signal}: draining (again to hand running builds back now)`);
        void daemon.shutdown(config.shutdownGraceMs).then(resolveStopped);
      } else {
        daemon.releaseNow();
      }
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    if (config.stopWithStdin) {
      process.stdin.on("end", () => onSignal("SIGTERM")).resume();
    }
  });
  // A watched stdin would keep the process alive after the daemon stopped.
  if (config.stopWithStdin) process.stdin.destroy();
  await rm(join(config.workDir, "build-fleet.pid"), { force: true });
  log("fleet: stopped");
  return 0;
}
