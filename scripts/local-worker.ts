// Runs the registry Worker on workerd through Miniflare, configured from wrangler.toml by wrangler.
//
// Nothing about the Worker is restated here. wrangler itself produces both halves:
// - the code: `wrangler deploy --dry-run --outdir` bundles exactly what production runs
//   (esbuild, `rules` such as .sql as Text, nodejs_compat polyfills, `define`, `alias`);
// - the bindings: `unstable_getMiniflareWorkerOptions(config)` turns wrangler.toml (Durable
//   Objects with SQLite, R2, D1, queue producer and consumer, vars, `.dev.vars`) into Miniflare
//   worker options, the function @cloudflare/vitest-plugin uses too.
// Miniflare then serves that Worker directly. `wrangler dev` would put a second workerd (its
// proxy Worker) in front of every request; this runner does not.
//
// State uses wrangler's layout (`<stateDir>/v3/{d1,do,r2,...}`), so `wrangler dev --persist-to
// <stateDir>` and `wrangler d1 ... --local --persist-to <stateDir>` see the same data.

import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire, SourceMap } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { compileModuleRules, convertV4MiniflareOptions, Log, LogLevel, Miniflare } from "miniflare";
import {
  type Unstable_Config,
  type Unstable_MiniflareWorkerOptions,
  unstable_getMiniflareWorkerOptions,
  unstable_readConfig,
} from "wrangler";

/** wrangler.toml as wrangler reads it, and the Miniflare options wrangler derives from it. */
export interface WranglerWorker {
  config: Unstable_Config;
  miniflare: Unstable_MiniflareWorkerOptions;
}

export function readWranglerWorker(configPath: string): WranglerWorker {
  const config = unstable_readConfig({ config: configPath }, { hideWarnings: true });
  return { config, miniflare: unstable_getMiniflareWorkerOptions(config) };
}

/** The Worker does not build: the message is wrangler's own report, no stack needed. */
export class WorkerBuildError extends Error {
  override name = "WorkerBuildError";
}

type ModuleType = "ESModule" | "CommonJS" | "Text" | "Data" | "CompiledWasm";
export interface BundledModule {
  type: ModuleType;
  path: string;
}

/** Bundles the Worker with wrangler into `outDir`; returns its modules, entry first. */
export async function bundleWorker(
  worker: WranglerWorker,
  outDir: string,
): Promise<BundledModule[]> {
  const { config } = worker;
  const configPath = config.configPath;
  if (!configPath || !config.main) throw new Error("wrangler.toml must set `main`");
  rmSync(outDir, { recursive: true, force: true }); // no stale modules from an older bundle
  const wranglerBin = path.resolve(
    path.dirname(fileURLToPath(import.meta.resolve("wrangler/package.json"))),
    "bin/wrangler.js",
  );
  try {
    await promisify(execFile)(
      process.execPath,
      [wranglerBin, "deploy", "--dry-run", "--outdir", outDir, "--config", configPath],
      {
        cwd: path.dirname(configPath),
        env: { ...process.env, WRANGLER_HIDE_BANNER: "true", WRANGLER_SEND_METRICS: "false" },
        maxBuffer: 16 * 1024 * 1024,
      },
    );
  } catch (error) {
    const { stdout = "", stderr = "" } = error as { stdout?: string; stderr?: string };
    throw new WorkerBuildError(
      `wrangler could not bundle the Worker:\n${stdout}${stderr}`.trimEnd(),
    );
  }
  return collectModules(worker, outDir);
}

// The bundle is the entry plus one file per non-JS import (named `<hash>-<name>` by wrangler);
// each gets the module type that wrangler.toml's `rules` (plus wrangler's defaults) give it.
function collectModules(worker: WranglerWorker, outDir: string): BundledModule[] {
  const entryName = `${path.basename(worker.config.main!).replace(/\.[^.]+$/, "")}.js`;
  const rules = compileModuleRules(
    (worker.miniflare.workerOptions.modulesRules ?? []) as Parameters<typeof compileModuleRules>[0],
  ).map((rule) => ({
    type: rule.type as ModuleType,
    // Fresh, flag-less copies: Miniflare's are global (/g) and so keep state between tests.
    include: rule.include.include.map((re) => new RegExp(re.source)),
  }));
  const modules: BundledModule[] = [{ type: "ESModule", path: path.join(outDir, entryName) }];
  for (const entry of readdirSync(outDir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    const rel = path.relative(outDir, file).split(path.sep).join("/");
    if (rel === entryName || rel === "README.md" || rel.endsWith(".map")) continue;
    const type =
      rules.find((rule) => rule.include.some((re) => re.test(rel)))?.type ??
      (/\.(m?js)$/.test(rel) ? "ESModule" : rel.endsWith(".cjs") ? "CommonJS" : undefined);
    if (!type) throw new Error(`bundle file ${rel} matches no module rule in wrangler.toml`);
    modules.push({ type, path: file });
  }
  return modules;
}

// Miniflare's "Ready on <private port>" would point users past the front door.
class QuietReadyLog extends Log {
  override logReady(): void {}
}

export interface WorkerLogLine {
  level: string;
  message: string;
}

/**
 * Another Worker in the same Miniflare instance (the hooks Worker): D1 databases, queues and R2
 * buckets with the same ids are shared with the main Worker, as they are in production. It
 * listens on its own socket, straight to the Worker (no entry worker in front).
 */
export interface CompanionWorker {
  worker: WranglerWorker;
  modules: BundledModule[];
  /** Added to (and overriding) its wrangler.toml `[vars]`. */
  bindings: Record<string, string>;
  host: string;
  /** 0 picks a free port. */
  port: number;
}

export interface LocalWorkerOptions {
  worker: WranglerWorker;
  modules: BundledModule[];
  /** Wrangler's `--persist-to` folder; data lives in `<persistTo>/v3`. */
  persistTo: string;
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Added to (and overriding) wrangler.toml `[vars]` and `.dev.vars`. */
  bindings: Record<string, string>;
  onLog: (line: WorkerLogLine) => void;
  /** One line per request, via Miniflare; costs a loopback call to Node per request. */
  logRequests?: boolean;
  companions?: CompanionWorker[];
}

export interface LocalWorker {
  mf: Miniflare;
  /** Miniflare's entry socket (its entry worker in front of ours: request logs, pretty errors). */
  url: URL;
  /**
   * Our Worker's own socket, without Miniflare's entry worker (~0.13 ms of workerd CPU a
   * request: 2.3x the request rate of a trivial route, 1.5x of manifest GETs, measured by
   * `npm run bench`). Absent when request logging is on, which lives in the entry worker.
   */
  directUrl?: URL;
  /** Each companion's socket, in the order given. */
  companionUrls: URL[];
}

export async function startLocalWorker(options: LocalWorkerOptions): Promise<LocalWorker> {
  tieWorkerdToThisProcess(options.persistTo);
  const { config } = options.worker;
  const { workerOptions, externalWorkers } = options.worker.miniflare;
  // Miniflare 5 takes an explicit module list instead of rules; the rules were applied above.
  const { modulesRules: _rules, bindings, ...rest } = workerOptions;
  const companions = options.companions ?? [];
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      host: options.host,
      port: options.port,
      // Offline and deterministic: the built-in `request.cf` placeholder, no download.
      cf: false,
      // Wrangler's layout, so wrangler's own commands can read and write the same state.
      resourcePersistencePath: path.join(options.persistTo, "v3"),
      logRequests: options.logRequests ?? false,
      log: new QuietReadyLog(options.logRequests ? LogLevel.INFO : LogLevel.WARN),
      handleStructuredLogs: options.onLog,
      workers: [
        {
          ...rest,
          // Durable Object storage is keyed by script name: keep wrangler's (the config name).
          name: config.name,
          modulesRoot: path.dirname(options.modules[0]!.path),
          modules: options.modules,
          ...(options.logRequests ? {} : { unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }] }),
          // (wrangler types these options with Omit<> over an index signature: all `unknown`.)
          bindings: { ...(bindings as Record<string, string> | undefined), ...options.bindings },
        },
        ...companions.map(companionOptions),
        ...externalWorkers,
      ],
    }),
  );
  try {
    const url = await mf.ready;
    const companionUrls = await Promise.all(
      companions.map((companion) => mf.unsafeGetDirectURL(companion.worker.config.name)),
    );
    if (options.logRequests) return { mf, url, companionUrls };
    return { mf, url, directUrl: await mf.unsafeGetDirectURL(), companionUrls };
  } catch (error) {
    await mf.dispose().catch(() => {});
    throw error;
  }
}

function companionOptions(companion: CompanionWorker) {
  const { modulesRules: _rules, bindings, ...rest } = companion.worker.miniflare.workerOptions;
  return {
    ...rest,
    name: companion.worker.config.name,
    modulesRoot: path.dirname(companion.modules[0]!.path),
    modules: companion.modules,
    unsafeDirectSockets: [{ host: companion.host, port: companion.port }],
    bindings: { ...(bindings as Record<string, string> | undefined), ...companion.bindings },
  };
}

// Miniflare kills workerd when Node exits normally or on a signal it handles, but a Node killed
// by SIGKILL (a hard-killed test run, the OOM killer) leaves workerd running: it keeps the state's
// SQLite files and blocks the next start. On Linux, start workerd through util-linux `setpriv`
// with a parent-death signal, so the kernel kills it with us. Miniflare's documented override
// MINIFLARE_WORKERD_PATH points at the wrapper; a user-set value is left alone.
function tieWorkerdToThisProcess(dir: string): void {
  if (process.platform !== "linux" || process.env.MINIFLARE_WORKERD_PATH) return;
  const setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));
  if (!setpriv) return;
  // The binary Miniflare itself would run (the `workerd` package, resolved from miniflare).
  const workerd: string = createRequire(import.meta.resolve("miniflare"))("workerd").default;
  const wrapper = path.join(dir, "workerd-tied");
  const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  writeFileSync(
    wrapper,
    `#!/bin/sh\n# workerd, killed by the kernel when its parent (npm start) dies.\n` +
      `exec ${quote(setpriv)} --pdeathsig KILL -- ${quote(workerd)} "$@"\n`,
    { mode: 0o755 },
  );
  process.env.MINIFLARE_WORKERD_PATH = wrapper;
}

/**
 * Rewrites `<bundle>/index.js:line:col` in stack traces to the TypeScript source position, using
 * the source map wrangler writes beside the bundle. Lines without a bundle position pass as is.
 */
export function sourceMapper(modules: BundledModule[]): (text: string) => string {
  const entry = modules[0]!.path;
  let map: SourceMap | undefined;
  try {
    map = new SourceMap(JSON.parse(readFileSync(`${entry}.map`, "utf8")));
  } catch {
    return (text) => text;
  }
  const mapDir = path.dirname(entry);
  const escaped = entry.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const position = new RegExp(`(?:file://)?${escaped}:(\\d+):(\\d+)`, "g");
  return (text) =>
    text.replace(position, (whole, line: string, column: string) => {
      const found = map!.findEntry(Number(line) - 1, Number(column) - 1);
      if (!("originalSource" in found) || !found.originalSource) return whole;
      const source = path.relative(process.cwd(), path.resolve(mapDir, found.originalSource));
      return `${source}:${found.originalLine + 1}:${found.originalColumn + 1}`;
    });
}
