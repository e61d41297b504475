// Requests per second of one endpoint under three ways of running the Worker locally, on loopback.
//
//   runner    `npm start`: Miniflare driven from Node, behind the TLS-refusing front door
//   direct    the same, REGISTRY_FRONT_DOOR=off: clients talk to workerd's socket directly
//   wrangler  `wrangler dev` as `npm run dev:wrangler` runs it (its proxy Worker in a second
//             workerd in front of the Worker, and one log line per request)
//   wrangler-quiet  the same with --log-level=warn (the proxy's cost without the logging)
//
//   node scripts/measure-runtime.ts [--targets=runner,direct,wrangler,wrangler-quiet]
//       [--duration=10] [--rounds=1] [--connections=32] [--threads=1] [--path=/v2/]
//       [--tool=wrk|node] [--json]
//
// Each target gets a fresh temp state folder and a free port, a 2 s warm-up, then one timed run;
// it is stopped before the next one starts, so targets never compete for the CPU. With several
// rounds the targets take turns (round-robin), so background load hits them alike, and the
// table shows the median. The load comes from `wrk` when installed (C, cheap on a 2-core box)
// or else from a keep-alive Node client. Everything is bounded in time and binds 127.0.0.1 only.

import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { parseArgs, promisify } from "node:util";
import { freePort, startRegistry } from "../test/support/registry-process.ts";
import { ensureLocalSecrets } from "./local-secrets.ts";

export type TargetName = "runner" | "direct" | "wrangler" | "wrangler-quiet";
export const TARGETS: readonly TargetName[] = ["runner", "direct", "wrangler", "wrangler-quiet"];

export interface LoadOptions {
  url: string;
  durationSeconds: number;
  connections: number;
  threads: number;
  tool: "wrk" | "node";
}

export interface LoadResult {
  tool: "wrk" | "node";
  requests: number;
  requestsPerSecond: number;
  latencyP50Ms?: number;
  latencyP99Ms?: number;
  /** Responses outside 2xx/3xx (a 401 from an authenticated endpoint counts here). */
  non2xx: number;
  /** Connect, read, write errors and timeouts. */
  socketErrors: number;
}

export interface TargetResult extends LoadResult {
  target: TargetName;
  url: string;
}

const repoRoot = path.resolve(import.meta.dirname, "..");

export function hasWrk(): boolean {
  return spawnSync("wrk", ["--version"], { stdio: "ignore" }).error === undefined;
}

/** Drives `url` (loopback only) with keep-alive connections for the given time. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const { hostname } = new URL(options.url);
  if (hostname !== "127.0.0.1" && hostname !== "localhost" && hostname !== "[::1]") {
    throw new Error(`refusing to load a non-loopback address: ${options.url}`);
  }
  return options.tool === "wrk" ? runWrk(options) : runNodeLoad(options);
}

async function runWrk(options: LoadOptions): Promise<LoadResult> {
  const { stdout } = await promisify(execFile)(
    "wrk",
    [
      `-t${options.threads}`,
      `-c${options.connections}`,
      `-d${options.durationSeconds}s`,
      "--latency",
      options.url,
    ],
    { timeout: (options.durationSeconds + 30) * 1000 },
  );
  const number = (re: RegExp) => Number(re.exec(stdout)?.[1] ?? Number.NaN);
  const ms = (re: RegExp) => {
    const m = re.exec(stdout);
    if (!m) return undefined;
    const scale = { us: 0.001, ms: 1, s: 1000 }[m[2] as "us" | "ms" | "s"];
    return Number(m[1]) * scale;
  };
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(
    stdout,
  );
  return {
    tool: "wrk",
    requests: number(/(\d+) requests in/),
    requestsPerSecond: number(/Requests\/sec:\s+([\d.]+)/),
    latencyP50Ms: ms(/^\s+50%\s+([\d.]+)(us|ms|s)$/m),
    latencyP99Ms: ms(/^\s+99%\s+([\d.]+)(us|ms|s)$/m),
    non2xx: /Non-2xx or 3xx responses: (\d+)/.test(stdout)
      ? number(/Non-2xx or 3xx responses: (\d+)/)
      : 0,
    socketErrors: socketErrors ? sum(socketErrors) : 0,
  };
}

function sum(match: RegExpExecArray): number {
  return match.slice(1).reduce((total, n) => total + Number(n), 0);
}

async function runNodeLoad(options: LoadOptions): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.connections });
  const latencies: number[] = [];
  let non2xx = 0;
  let socketErrors = 0;
  const started = performance.now();
  const deadline = started + options.durationSeconds * 1000;
  const once = () =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const req = http.get(options.url, { agent }, (res) => {
        res.resume();
        res.on("end", () => {
          if (res.statusCode! >= 400) non2xx++;
          latencies.push(performance.now() - t0);
          resolve();
        });
      });
      req.on("error", () => {
        socketErrors++;
        resolve();
      });
    });
  await Promise.all(
    Array.from({ length: options.connections }, async () => {
      while (performance.now() < deadline) await once();
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  return {
    tool: "node",
    requests: latencies.length,
    requestsPerSecond: latencies.length / elapsed,
    latencyP50Ms: at(0.5),
    latencyP99Ms: at(0.99),
    non2xx,
    socketErrors,
  };
}

interface Started {
  url: string;
  stop(): Promise<unknown>;
}

async function startTarget(target: TargetName): Promise<Started> {
  if (target === "runner") return startRegistry();
  if (target === "direct") return startRegistry({ env: { REGISTRY_FRONT_DOOR: "off" } });
  return startWranglerDev(target === "wrangler-quiet" ? ["--log-level=warn"] : []);
}

/** `wrangler dev` on a free port with throwaway state and secrets (never the repo's). */
async function startWranglerDev(extraArgs: string[]): Promise<Started> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "registry-measure-wrangler-"));
  const { file } = await ensureLocalSecrets(path.join(dir, ".dev.vars"));
  const port = await freePort();
  const wranglerBin = path.join(repoRoot, "node_modules", "wrangler", "bin", "wrangler.js");
  const child = spawn(
    process.execPath,
    [
      wranglerBin,
      "dev",
      "--ip=127.0.0.1",
      `--port=${port}`,
      `--persist-to=${path.join(dir, "state")}`,
      `--env-file=${file}`,
      "--show-interactive-dev-session=false",
      "--inspector-port=0",
      ...extraArgs,
    ],
    {
      cwd: repoRoot,
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const stop = async () => {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  };
  let output = "";
  child.stdout!.on("data", (c: Buffer) => (output += c));
  child.stderr!.on("data", (c: Buffer) => (output += c));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 90_000;
  // With --log-level=warn there is no "Ready on" line: poll the port as well.
  while (!/Ready on/.test(output) && !(await answers(`${url}/v2/`))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler dev did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, stop };
}

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
    await res.body?.cancel();
    return true;
  } catch {
    return false;
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(killer);
}

export async function measureTarget(
  target: TargetName,
  load: Omit<LoadOptions, "url"> & { path: string },
): Promise<TargetResult> {
  const started = await startTarget(target);
  try {
    const url = `${started.url}${load.path}`;
    const probe = await fetch(url);
    await probe.body?.cancel();
    if (probe.status >= 500) throw new Error(`${target}: GET ${url} answered ${probe.status}`);
    await runLoad({ ...load, url, durationSeconds: 2 }); // warm-up: JIT, connections, caches
    return { target, url, ...(await runLoad({ ...load, url })) };
  } finally {
    await started.stop();
  }
}

/** Per target, the run with the median req/s, plus the spread over all rounds. */
export function summarize(results: TargetResult[]): Array<TargetResult & { runs: number[] }> {
  const byTarget = new Map<TargetName, TargetResult[]>();
  for (const r of results) byTarget.set(r.target, [...(byTarget.get(r.target) ?? []), r]);
  return [...byTarget.values()].map((runs) => {
    const sorted = [...runs].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond);
    return {
      ...sorted[Math.floor((sorted.length - 1) / 2)]!,
      runs: runs.map((r) => r.requestsPerSecond),
    };
  });
}

function format(results: Array<TargetResult & { runs: number[] }>): string {
  const rows = results.map((r) => [
    r.target,
    r.requestsPerSecond.toFixed(0),
    r.runs.length > 1 ? r.runs.map((n) => n.toFixed(0)).join(" ") : "-",
    r.latencyP50Ms?.toFixed(2) ?? "-",
    r.latencyP99Ms?.toFixed(2) ?? "-",
    String(r.non2xx),
    String(r.socketErrors),
  ]);
  const header = ["target", "req/s", "all rounds", "p50 ms", "p99 ms", "non-2xx", "socket errors"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  return [header, ...rows]
    .map((row) =>
      row
        .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
        .join("  "),
    )
    .join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      targets: { type: "string", default: TARGETS.join(",") },
      duration: { type: "string", default: "10" },
      rounds: { type: "string", default: "1" },
      connections: { type: "string", default: "32" },
      threads: { type: "string", default: "1" },
      path: { type: "string", default: "/v2/" },
      tool: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const targets = values.targets.split(",").map((t) => t.trim()) as TargetName[];
  for (const t of targets) {
    if (!TARGETS.includes(t)) throw new Error(`unknown target ${t}; use ${TARGETS.join(", ")}`);
  }
  const durationSeconds = Number(values.duration);
  const rounds = Number(values.rounds);
  const tool = (values.tool ?? (hasWrk() ? "wrk" : "node")) as "wrk" | "node";
  // Hard bound: starts (up to 90 s each), warm-ups and runs, with slack.
  setTimeout(
    () => {
      console.error("measure-runtime: time budget exceeded, giving up");
      process.exit(2);
    },
    rounds * targets.length * (durationSeconds + 150) * 1000,
  ).unref();
  const load = {
    durationSeconds,
    connections: Number(values.connections),
    threads: Number(values.threads),
    tool,
    path: values.path,
  };
  console.error(
    `measuring GET ${load.path}: ${load.connections} keep-alive connections, ` +
      `${durationSeconds} s each, ${rounds} round(s), ${tool}, ${os.cpus().length} CPUs`,
  );
  const results: TargetResult[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const target of targets) {
      const result = await measureTarget(target, load);
      console.error(`  round ${round} ${target}: ${result.requestsPerSecond.toFixed(0)} req/s`);
      results.push(result);
    }
  }
  console.log(values.json ? JSON.stringify(results, null, 2) : format(summarize(results)));
}
