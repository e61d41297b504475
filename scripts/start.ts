// `npm start`: the embedded default. The registry Worker on workerd with persisted local state.
//
//   PORT (8787), HOST (127.0.0.1)        where the registry listens
//   HOOKS_PORT (PORT + 1; 0: any free)   where the hooks Worker (git webhooks) listens
//   REGISTRY_STATE_DIR (.registry/state) D1, Durable Object SQLite, R2, the Worker bundle
//   REGISTRY_ADMIN_USER / _PASSWORD      override the configured admin / generated password
//   REGISTRY_LOG_REQUESTS=1              one log line per request (slower)
//   REGISTRY_FRONT_DOOR=off              serve workerd's socket directly (TLS probes then hang)
//   REGISTRY_FLEET=off                   no local build-fleet host (default: one, best driver)
//
// Steps: claim the state folder and the port (fail fast), ensure secrets (local-secrets.ts),
// bundle and configure with wrangler and start Miniflare on a private loopback port
// (local-worker.ts), apply D1 migrations (d1-migrations.ts), route the front door to it
// (front-door.ts), check that the Worker answers, and only then print
// `registry listening on <url>`.
//
// `npm run dev:wrangler` reads the same repo-root `.dev.vars`. Its data is separate
// (.wrangler/state) unless given `-- --persist-to .registry/state`: the layout is the same, but
// run one at a time, and apply migrations first with
// `npx wrangler d1 migrations apply registry --local --persist-to .registry/state`.

import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { type LocalFleetHost, startLocalFleetHost } from "../build-fleet/local-host.ts";
import { type FrontDoor, openFrontDoor, PortInUseError } from "./front-door.ts";
import { ensureLocalSecrets } from "./local-secrets.ts";
import type { LocalWorker, WorkerLogLine } from "./local-worker.ts";

const READY_PREFIX = "registry listening on ";
const HOOKS_PREFIX = "hooks listening on ";

const repoRoot = path.resolve(import.meta.dirname, "..");
const configPath = path.join(repoRoot, "wrangler.toml");
const hooksConfigPath = path.join(repoRoot, "workers", "hooks", "wrangler.toml");
const defaultStateDir = path.join(repoRoot, ".registry", "state");
const stateDir = path.resolve(process.env.REGISTRY_STATE_DIR || defaultStateDir);
// With the default state folder the secrets go to the repo's `.dev.vars`, which `wrangler dev`
// reads too; an explicit state folder (tests, a second registry) keeps its own beside its data.
const secretsFile =
  stateDir === defaultStateDir
    ? path.join(repoRoot, ".dev.vars")
    : path.join(stateDir, ".dev.vars");
const host = process.env.HOST || "127.0.0.1";
const port = parsePort(process.env.PORT);
const hooksPort =
  process.env.HOOKS_PORT !== undefined && process.env.HOOKS_PORT !== ""
    ? parsePort(process.env.HOOKS_PORT, "HOOKS_PORT")
    : port === 0 || port === 65535
      ? 0
      : port + 1;
const useFrontDoor = process.env.REGISTRY_FRONT_DOOR !== "off";
const logRequests = process.env.REGISTRY_LOG_REQUESTS === "1";
const pidFile = path.join(stateDir, "registry.pid");

let door: FrontDoor | undefined;
let worker: LocalWorker | undefined;
let fleet: LocalFleetHost | undefined;
let stopping = false;
/** Maps bundle positions in Worker stack traces back to the TypeScript sources. */
let toSource = (text: string) => text;

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
function onSignal(signal: NodeJS.Signals): void {
  void stop(signal);
}
for (const signal of SIGNALS) process.on(signal, onSignal);

/** An expected failure: printed as one line, without a stack. */
class StartError extends Error {}

try {
  await main();
} catch (error) {
  const message =
    error instanceof PortInUseError
      ? `${error.message}: is another registry or \`wrangler dev\` running? ` +
        `Stop it, or pick another port: PORT=${error.port + 1} npm start`
      : error instanceof StartError || (error instanceof Error && error.name === "WorkerBuildError")
        ? error.message
        : error instanceof Error
          ? (error.stack ?? error.message)
          : String(error);
  console.error(`error: ${message}`);
  await door?.close().catch(() => {});
  await worker?.mf.dispose().catch(() => {});
  releaseStateDir();
  process.exit(1);
}

async function main(): Promise<void> {
  await mkdir(stateDir, { recursive: true });
  claimStateDir();
  // Claim the public port before the slow steps, so a taken port fails in milliseconds.
  if (useFrontDoor) {
    door = await openFrontDoor({ host, port, onRefusedTls: noteRefusedTls });
  }

  // wrangler and miniflare take about a second to import: only after the port is ours.
  // wrangler's own chatter ("Using secrets defined in .dev.vars") is noise here; WRANGLER_LOG
  // set by the user (debug, say) still wins.
  process.env.WRANGLER_LOG ??= "warn";
  const [
    { bundleWorker, readWranglerWorker, sourceMapper, startLocalWorker },
    { applyD1Migrations },
  ] = await Promise.all([import("./local-worker.ts"), import("./d1-migrations.ts")]);

  const secrets = await ensureLocalSecrets(secretsFile);
  const wrangler = readWranglerWorker(configPath);
  const hooks = readWranglerWorker(hooksConfigPath);
  const { config } = wrangler;
  const adminUser =
    process.env.REGISTRY_ADMIN_USER || (config.vars.REGISTRY_ADMIN_USER as string) || "admin";
  const adminPassword =
    process.env.REGISTRY_ADMIN_PASSWORD || secrets.values.REGISTRY_ADMIN_PASSWORD!;

  const [modules, hooksModules] = await Promise.all([
    bundleWorker(wrangler, path.join(stateDir, "bundle")),
    bundleWorker(hooks, path.join(stateDir, "bundle-hooks")),
  ]);
  toSource = sourceMapper(modules);
  worker = await startLocalWorker({
    worker: wrangler,
    modules,
    persistTo: stateDir,
    host: useFrontDoor ? "127.0.0.1" : host,
    port: useFrontDoor ? 0 : port,
    bindings: {
      ...secrets.values,
      REGISTRY_ADMIN_USER: adminUser,
      REGISTRY_ADMIN_PASSWORD: adminPassword,
    },
    onLog: printWorkerLog,
    logRequests,
    // The hooks Worker shares D1 and the queues with the registry, as in production.
    companions: [
      {
        worker: hooks,
        modules: hooksModules,
        bindings: { WEBHOOK_SECRET_KEY: secrets.values.WEBHOOK_SECRET_KEY! },
        host,
        port: hooksPort,
      },
    ],
  })
    .then((started) => {
      keepOnlyOurSignalHandlers();
      return started;
    })
    .catch((error: unknown) => {
      const code = (error as { cause?: { code?: string } }).cause?.code;
      if (code === "EADDRINUSE" || String(error).includes("Address already in use")) {
        // The registry's own port is the front door's, already ours, unless it is off.
        if (!useFrontDoor) throw new PortInUseError(host, port);
        throw new StartError(
          `the registry or the hooks port (HOOKS_PORT=${hooksPort}) is in use; ` +
            `pick another: HOOKS_PORT=0 npm start`,
        );
      }
      throw error;
    });

  for (const d1 of config.d1_databases) {
    const dir = path.resolve(repoRoot, d1.migrations_dir ?? "migrations");
    if (!existsSync(dir)) continue;
    const result = await applyD1Migrations(await worker.mf.getD1Database(d1.binding), {
      dir,
      dirRelativePattern: patternInside(dir, d1.migrations_pattern),
      table: d1.migrations_table,
    });
    if (result.applied.length > 0) {
      console.log(`D1 ${d1.binding}: applied ${result.applied.join(", ")}`);
    }
  }

  const publicPort = door?.port ?? Number(worker.url.port);
  const upstream = worker.directUrl ?? worker.url;
  door?.setUpstream({ host: upstream.hostname, port: Number(upstream.port) });
  const displayHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  const url = `http://${displayHost.includes(":") ? `[${displayHost}]` : displayHost}:${publicPort}`;
  await waitUntilAnswering(`${url}/v2/`);

  const hostPort = url.slice("http://".length);
  const hooksUrl = displayUrl(worker.companionUrls[0]!, displayHost);
  const secretsNote = secrets.created.length > 0 ? "generated" : "kept";
  console.log(
    [
      "",
      `  edge-registry on workerd (Miniflare), data persisted locally`,
      "",
      `  URL        ${url}`,
      `  admin      ${adminUser} / ${adminPassword}`,
      `  log in     skopeo login --tls-verify=false -u ${adminUser} ${hostPort}`,
      `             docker login ${hostPort}   (Docker allows plain HTTP for 127.0.0.0/8)`,
      `  hooks      ${hooksUrl}/hooks/{github|gitlab|generic}/<trigger id>`,
      `  state      ${displayPath(stateDir)}`,
      `  secrets    ${displayPath(secretsFile)} (${secretsNote})`,
      "",
      "  Ctrl-C stops it; data stays for the next start.",
      "",
    ].join("\n"),
  );
  // The machine-readable lines: tests and scripts wait for the last one.
  console.log(`${HOOKS_PREFIX}${hooksUrl}`);
  console.log(`${READY_PREFIX}${url}`);

  // One local build host, so a build can run without setting up a fleet (build-fleet/).
  if (process.env.REGISTRY_FLEET !== "off") {
    fleet = startLocalFleetHost({
      registryUrl: url,
      credential: secrets.values.FLEET_CREDENTIAL!,
      workDir: path.join(stateDir, "fleet"),
      log: (line) => console.log(line),
    });
  }
}

// wrangler.toml's `migrations_pattern` is relative to the project and must start with
// `migrations_dir/` (wrangler refuses it otherwise); d1-migrations.ts wants it relative to the dir.
function patternInside(dir: string, pattern: string | undefined): string | undefined {
  if (pattern === undefined) return undefined;
  const prefix = `${path.relative(repoRoot, dir).split(path.sep).join("/")}/`;
  const normalized = path.posix.normalize(pattern);
  if (!normalized.startsWith(prefix)) {
    throw new StartError(`migrations_pattern "${pattern}" must start with "${prefix}"`);
  }
  return normalized.slice(prefix.length);
}

async function waitUntilAnswering(url: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      await res.body?.cancel();
      if (res.status >= 500) throw new Error(`GET ${url} answered ${res.status}`);
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function printWorkerLog({ level, message }: WorkerLogLine): void {
  const loud = level === "error" || level === "warn";
  const tag = loud ? `[worker ${level}]` : "[worker]";
  const text = toSource(message.trimEnd()).replaceAll("\n", `\n${" ".repeat(tag.length + 1)}`);
  (loud ? process.stderr : process.stdout).write(`${tag} ${text}\n`);
}

let refusedTlsNoted = false;
function noteRefusedTls(): void {
  if (refusedTlsNoted) return;
  refusedTlsNoted = true;
  console.log("note: refused a TLS handshake (clients probe HTTPS first, then use HTTP)");
}

// Two registries on one state folder would corrupt it (two writers per Durable Object).
function claimStateDir(): void {
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, "utf8"));
    if (pid && pid !== process.pid && isRunningRegistry(pid)) {
      throw new StartError(
        `another registry (pid ${pid}) is using ${displayPath(stateDir)}; stop it first`,
      );
    }
  }
  writeFileSync(pidFile, String(process.pid));
}

// A pid file left by a crash may name a pid since reused by something else: on Linux, check
// that the process really is a runner; elsewhere, being alive has to do.
function isRunningRegistry(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("start.ts");
  } catch {
    return process.platform !== "linux";
  }
}

// Miniflare installs its own SIGINT/SIGTERM/SIGHUP handlers that kill workerd and exit at once
// (code 130/143), racing our graceful stop. Ours close the port, wait for workerd to exit, then
// exit 0. Its `exit` hook stays: any process.exit still takes workerd down with us.
function keepOnlyOurSignalHandlers(): void {
  for (const signal of SIGNALS) {
    for (const listener of process.listeners(signal)) {
      if (listener !== onSignal) process.off(signal, listener);
    }
  }
}

async function stop(signal: string): Promise<void> {
  if (stopping) {
    // Second Ctrl-C: the user wants out now.
    process.exit(130);
  }
  stopping = true;
  console.log(`\n${signal}: stopping the registry`);
  setTimeout(() => {
    console.error("workerd did not stop within 10 s; exiting anyway");
    process.exit(1);
  }, 10_000).unref();
  // First the fleet host: it hands running builds back through the registry.
  await fleet?.stop().catch(() => {});
  await door?.close().catch(() => {});
  await worker?.mf.dispose().catch(() => {});
  releaseStateDir();
  process.exit(0);
}

function releaseStateDir(): void {
  try {
    if (Number(readFileSync(pidFile, "utf8")) === process.pid) rmSync(pidFile);
  } catch {}
}

/** `http://<host shown to users>:<port of url>`. */
function displayUrl(url: URL, displayHost: string): string {
  return `http://${displayHost.includes(":") ? `[${displayHost}]` : displayHost}:${url.port}`;
}

function parsePort(value: string | undefined, name = "PORT"): number {
  if (value === undefined || value === "") return 8787;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    console.error(`error: ${name} must be a number from 0 to 65535, got ${JSON.stringify(value)}`);
    process.exit(1);
  }
  return n;
}

function displayPath(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return rel && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : p;
}
