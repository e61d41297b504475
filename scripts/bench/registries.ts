// The two registries the benchmark compares, behind one interface: ours started exactly as
// `npm start` runs it, and the CNCF reference registry (Debian's `docker-registry`).
//
// Storage probes, for "bytes written per byte of blob pushed":
// - `storedBlobBytes()`: bytes of the files that hold blob content. Ours: Miniflare persists R2
//   object bodies (and multipart parts) as one file each under `<state>/v3/r2/<bucket>/blobs/`;
//   the reference registry: `docker/registry/v2/blobs/` of its filesystem driver.
// - `diskWriteBytes()`: what the storage process sent to the disk so far (`write_bytes` of
//   /proc/<pid>/io: counted when a page is dirtied, so a file written then deleted still counts).
//   Ours: the workerd child of the runner (R2, Durable Object SQLite, D1 all live there).

import { randomBytes } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { startReferenceRegistry } from "../../test/support/reference-registry.ts";
import { startRegistry } from "../../test/support/registry-process.ts";

export type RegistryId = "ours" | "reference";
export type AuthKind = "bearer" | "basic";

export interface BenchRegistry {
  id: RegistryId;
  label: string;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `127.0.0.1:<port>`, as `docker://` references spell it. */
  host: string;
  /** `user:password` for skopeo, or undefined for anonymous access. */
  creds: string | undefined;
  /**
   * The Authorization header for API requests on `scopes` (`repository:<name>:pull,push`):
   * "bearer" runs the Docker token flow as skopeo and docker do (a token from the realm the
   * 401 challenge names; it falls back to Basic when the challenge is Basic), "basic" sends the
   * credentials on every request. Empty for a registry that allows anonymous access.
   */
  authorize(kind: AuthKind, scopes: string[]): Promise<Record<string, string>>;
  /** Pid of the process that writes the storage (workerd for ours). */
  storagePid: number;
  /** Every process that serves this registry, by role: their CPU is the registry's CPU. */
  processes: Record<string, number>;
  storedBlobBytes(): Promise<number>;
  diskWriteBytes(): Promise<number>;
  /** Facts for the JSON report (config choices a reader must know). */
  notes: string[];
  stop(): Promise<void>;
}

/** `env` is extra environment for the runner; empty means exactly `npm start`. */
export async function startOurs(env: Record<string, string> = {}): Promise<BenchRegistry> {
  const registry = await startRegistry({ env });
  try {
    const workerd = await findDescendant(registry.pid, (p) => p.comm === "workerd");
    if (workerd === undefined) throw new Error("no workerd process under the registry runner");
    const r2Dir = path.join(registry.stateDir, "v3", "r2");
    const creds = `${registry.adminUser}:${registry.adminPassword}`;
    return {
      id: "ours",
      label: "edge-registry (npm start)",
      url: registry.url,
      host: new URL(registry.url).host,
      creds,
      authorize: (kind, scopes) => authorize(registry.url, creds, kind, scopes),
      storagePid: workerd,
      processes: { "runner (node: front door, Miniflare host)": registry.pid, workerd },
      storedBlobBytes: async () => {
        let total = 0;
        for (const bucket of await readdirOrEmpty(r2Dir)) {
          total += await directoryBytes(path.join(r2Dir, bucket, "blobs"));
        }
        return total;
      },
      diskWriteBytes: () => processWriteBytes(workerd),
      notes: [
        "started by test/support/registry-process.ts: `node scripts/start.ts`, fresh temp state",
        ...(Object.keys(env).length > 0
          ? [`NOT the default npm start: extra environment ${JSON.stringify(env)}`]
          : []),
        "load runs send a Bearer token from its /v2/auth (as skopeo does) unless a row says Basic",
      ],
      stop: async () => {
        await registry.stop();
      },
    };
  } catch (error) {
    await registry.stop();
    throw error;
  }
}

export interface ReferenceOptions {
  /** htpasswd Basic auth (bcrypt, cost 5) instead of anonymous access. */
  auth: boolean;
}

export async function startReference(options: ReferenceOptions): Promise<BenchRegistry> {
  // The helper's config logs every request at info level (it parses its access log); a
  // benchmark wants neither the log lines nor their cost in this process. distribution reads
  // REGISTRY_<SECTION>_<KEY> from its environment over the YAML, and the helper passes ours on.
  const saved = { ...process.env };
  process.env.REGISTRY_LOG_LEVEL = "error";
  process.env.REGISTRY_LOG_ACCESSLOG_DISABLED = "true";
  const user = "bench";
  const password = randomBytes(12).toString("hex");
  let registry: Awaited<ReturnType<typeof startReferenceRegistry>>;
  try {
    registry = await startReferenceRegistry(options.auth ? { auth: { user, password } } : {});
  } finally {
    for (const key of ["REGISTRY_LOG_LEVEL", "REGISTRY_LOG_ACCESSLOG_DISABLED"]) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
  }
  try {
    // The helper does not say its pid: find our child that serves this registry's config.
    const configDir = path.dirname(registry.storageDir);
    const pid = await findDescendant(
      process.pid,
      (p) => p.comm === "docker-registry" && p.cmdline.includes(configDir),
    );
    if (pid === undefined) throw new Error("docker-registry process not found");
    const creds = options.auth ? `${user}:${password}` : undefined;
    return {
      id: "reference",
      label: "docker-registry (CNCF distribution)",
      url: registry.url,
      host: registry.host,
      creds,
      authorize: (kind, scopes) => authorize(registry.url, creds, kind, scopes),
      storagePid: pid,
      processes: { "docker-registry": pid },
      storedBlobBytes: () => directoryBytes(path.join(registry.blobsDir, "..")),
      diskWriteBytes: () => processWriteBytes(pid),
      notes: [
        "started by test/support/reference-registry.ts: filesystem storage in a temp folder",
        options.auth
          ? "htpasswd Basic auth (bcrypt cost 5) on every request"
          : "anonymous access (no htpasswd): it does no auth work per request, ours does",
        "log level error and access log off (REGISTRY_LOG_LEVEL, REGISTRY_LOG_ACCESSLOG_DISABLED)",
        "in-memory blob descriptor cache (the helper's config)",
      ],
      stop: () => registry.stop(),
    };
  } catch (error) {
    await registry.stop();
    throw error;
  }
}

/** See BenchRegistry.authorize. */
async function authorize(
  url: string,
  creds: string | undefined,
  kind: AuthKind,
  scopes: string[],
): Promise<Record<string, string>> {
  if (creds === undefined) return {};
  const basic = { Authorization: `Basic ${Buffer.from(creds).toString("base64")}` };
  if (kind === "basic") return basic;
  const ping = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(30_000) });
  await ping.body?.cancel();
  const challenge = ping.headers.get("WWW-Authenticate") ?? "";
  if (ping.status !== 401 || !/^Bearer\s/i.test(challenge)) return basic;
  const params = Object.fromEntries(
    [...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]),
  );
  if (!params.realm) throw new Error(`no realm in the challenge: ${challenge}`);
  const realm = new URL(params.realm, url);
  if (params.service) realm.searchParams.set("service", params.service);
  for (const scope of scopes) realm.searchParams.append("scope", scope);
  const res = await fetch(realm, { headers: basic, signal: AbortSignal.timeout(30_000) });
  if (res.status !== 200) throw new Error(`token request ${realm} answered ${res.status}`);
  const body = (await res.json()) as { token?: string; access_token?: string };
  const token = body.token ?? body.access_token;
  if (!token) throw new Error(`token response without a token from ${realm}`);
  return { Authorization: `Bearer ${token}` };
}

interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  cmdline: string;
}

async function listProcesses(): Promise<ProcInfo[]> {
  const out: ProcInfo[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const statLine = await readFile(`/proc/${name}/stat`, "utf8");
      // comm is in parentheses and may contain spaces; ppid follows the state after it.
      const close = statLine.lastIndexOf(")");
      const comm = statLine.slice(statLine.indexOf("(") + 1, close);
      const ppid = Number(statLine.slice(close + 2).split(" ")[1]);
      const cmdline = (await readFile(`/proc/${name}/cmdline`, "utf8")).replaceAll("\0", " ");
      out.push({ pid: Number(name), ppid, comm, cmdline });
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** The first descendant of `root` (breadth first) that matches. Linux only. */
export async function findDescendant(
  root: number,
  match: (p: ProcInfo) => boolean,
): Promise<number | undefined> {
  const all = await listProcesses();
  const queue = [root];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const p of all.filter((q) => q.ppid === parent)) {
      if (match(p)) return p.pid;
      queue.push(p.pid);
    }
  }
  return undefined;
}

/** `write_bytes` of /proc/<pid>/io: bytes this process caused to be written to storage. */
export async function processWriteBytes(pid: number): Promise<number> {
  const io = await readFile(`/proc/${pid}/io`, "utf8");
  const match = /^write_bytes: (\d+)$/m.exec(io);
  if (!match) throw new Error(`no write_bytes in /proc/${pid}/io`);
  return Number(match[1]);
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
}

export async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  let entries: string[];
  try {
    entries = await readdir(dir, { recursive: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw error;
  }
  for (const entry of entries) {
    const info = await stat(path.join(dir, entry)).catch(() => undefined);
    if (info?.isFile()) total += info.size;
  }
  return total;
}
