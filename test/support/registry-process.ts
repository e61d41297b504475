// Starts the real local registry (`node scripts/start.ts`) as a child process, for Node-side tests.
//
//   const registry = await startRegistry();            // free port, fresh temp state
//   await fetch(`${registry.url}/v2/`);
//   await registry.stop();                              // SIGTERM, waits for exit
//
// Pass `stateDir` to keep data across a stop/start (the helper then never deletes it).
// REGISTRY_TEST_LOGS=1 echoes the registry's output to this process's stderr.

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const repoRoot = path.resolve(import.meta.dirname, "../..");
const startScript = path.join(repoRoot, "scripts", "start.ts");
const READY_LINE = /^registry listening on (http:\/\/\S+)$/m;
const ADMIN_LINE = /^\s*admin\s+(\S+) \/ (\S+)$/m;
const HOOKS_LINE = /^hooks listening on (http:\/\/\S+)$/m;

export interface StartRegistryOptions {
  /** Default: a free loopback port. */
  port?: number;
  /** Default: a new temp folder, deleted by stop(). */
  stateDir?: string;
  /** Extra environment for the registry process. */
  env?: Record<string, string>;
  /** Default 120 s: the first start bundles the Worker. */
  readyTimeoutMs?: number;
}

export interface RunningRegistry {
  /** `http://127.0.0.1:<port>`, no trailing slash. */
  url: string;
  /** The hooks Worker (`POST <hooksUrl>/hooks/<provider>/<trigger id>`), on a free port. */
  hooksUrl: string;
  port: number;
  stateDir: string;
  adminUser: string;
  adminPassword: string;
  pid: number;
  /** Everything the process printed so far (stdout and stderr interleaved). */
  output(): string;
  /** SIGTERM, then wait for exit (SIGKILL after `timeoutMs`). Resolves with how it ended. */
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startRegistry(options: StartRegistryOptions = {}): Promise<RunningRegistry> {
  const ownsStateDir = options.stateDir === undefined;
  const stateDir = options.stateDir ?? mkdtempSync(path.join(os.tmpdir(), "registry-state-"));
  const port = options.port ?? (await freePort());
  const child = spawn(process.execPath, [startScript], {
    cwd: repoRoot,
    env: {
      ...process.env,
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      WRANGLER_SEND_METRICS: "false",
      // PORT + 1 (the default) may be another test registry's port.
      HOOKS_PORT: "0",
      ...options.env,
      PORT: String(port),
      HOST: "127.0.0.1",
      REGISTRY_STATE_DIR: stateDir,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const echo = process.env.REGISTRY_TEST_LOGS === "1";
  for (const stream of [child.stdout!, child.stderr!]) {
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      output += chunk;
      if (echo) process.stderr.write(chunk);
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );

  const stop = async (timeoutMs = 15_000) => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    const result = await exited;
    clearTimeout(killer);
    if (ownsStateDir) rmSync(stateDir, { recursive: true, force: true });
    return result;
  };

  try {
    const url = await waitForReady(child, () => output, exited, options.readyTimeoutMs ?? 120_000);
    const admin = ADMIN_LINE.exec(output);
    if (!admin) throw new Error(`no admin line in the registry banner:\n${output}`);
    const hooks = HOOKS_LINE.exec(output);
    if (!hooks) throw new Error(`no hooks line in the registry banner:\n${output}`);
    return {
      url,
      hooksUrl: hooks[1]!,
      port,
      stateDir,
      adminUser: admin[1]!,
      adminPassword: admin[2]!,
      pid: child.pid!,
      output: () => output,
      stop,
    };
  } catch (error) {
    await stop(2_000);
    throw error;
  }
}

function waitForReady(
  child: ChildProcess,
  output: () => string,
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
  timeoutMs: number,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const match = READY_LINE.exec(output());
      if (match) {
        done();
        resolve(match[1]!);
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`registry not ready after ${timeoutMs} ms:\n${output()}`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      child.stdout!.off("data", check);
    };
    child.stdout!.on("data", check);
    void exited.then(({ code, signal }) => {
      done();
      reject(new Error(`registry exited (${signal ?? code}) before ready:\n${output()}`));
    });
    check();
  });
}

/** A loopback port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
