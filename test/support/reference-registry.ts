// Runs the CNCF reference registry (Debian's `docker-registry`, distribution 2.8) on loopback as
// a baseline for end-to-end tests and benchmarks: same client, known-good server.
//
// Filesystem storage in a temp folder, deletes enabled, access log captured in memory so a test
// can see exactly which requests a client sent. With `auth`, htpasswd Basic auth is turned on;
// the bcrypt hash comes from perl's crypt(3) (perl-base and libcrypt are essential on Debian and
// Node has no bcrypt).
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./registry-process.ts";

export interface ReferenceRegistryOptions {
  /** Loopback port; a free one is picked when omitted. */
  port?: number;
  /** Folder for config and storage; a temp folder (removed on stop) when omitted. */
  dir?: string;
  /** Enables htpasswd Basic auth with this single user. */
  auth?: { user: string; password: string };
  /** Binary to run; default `docker-registry` from PATH. */
  binary?: string;
}

export interface ReferenceRegistry {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `127.0.0.1:<port>`, the form skopeo's `docker://` references use. */
  host: string;
  /** Root of the filesystem storage driver (`docker/registry/v2/...` lives below it). */
  storageDir: string;
  /** Folder holding one `<hex>/data` file per stored blob. */
  blobsDir: string;
  /** Everything the registry logged so far (its access log included), one entry per line. */
  logs(): string[];
  /** The access-log lines parsed: one entry per request, in order. */
  accessLog(): AccessLogEntry[];
  stop(): Promise<void>;
}

export interface AccessLogEntry {
  method: string;
  /** Path and query as sent. */
  uri: string;
  status: number;
  /** Response body bytes. */
  bytes: number;
  userAgent: string;
}

export async function startReferenceRegistry(
  options: ReferenceRegistryOptions = {},
): Promise<ReferenceRegistry> {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "reference-registry-")));
  const port = options.port ?? (await freePort());
  const storageDir = join(dir, "storage");
  const host = `127.0.0.1:${port}`;

  let authYaml = "";
  if (options.auth) {
    const htpasswdPath = join(dir, "htpasswd");
    await writeFile(htpasswdPath, `${options.auth.user}:${bcrypt(options.auth.password)}\n`);
    authYaml = `auth:\n  htpasswd:\n    realm: reference-registry\n    path: ${htpasswdPath}\n`;
  }
  // Distribution's YAML config; `accesslog` stays on (the default) so request lines are logged.
  const config = `version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: ${storageDir}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: ${host}
  secret: ${randomBytes(16).toString("hex")}
${authYaml}`;
  const configPath = join(dir, "config.yml");
  await writeFile(configPath, config);

  const lines: string[] = [];
  const child = spawn(options.binary ?? "docker-registry", ["serve", configPath], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, OTEL_TRACES_EXPORTER: "none" },
  });
  collectLines(child, lines);
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));

  const url = `http://${host}`;
  try {
    await waitUntilServing(url, exited, lines);
  } catch (error) {
    child.kill("SIGKILL");
    if (ownDir) await rm(dir, { recursive: true, force: true });
    throw error;
  }

  return {
    url,
    host,
    storageDir,
    blobsDir: join(storageDir, "docker", "registry", "v2", "blobs", "sha256"),
    logs: () => [...lines],
    accessLog: () => lines.flatMap((line) => parseAccessLogLine(line) ?? []),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(timer);
      }
      if (ownDir) await rm(dir, { recursive: true, force: true });
    },
  };
}

// Combined log format, as gorilla/handlers writes it: `host - user [time] "METHOD uri HTTP/1.1"
// status bytes "referer" "user-agent"`.
const ACCESS_LOG_LINE =
  /^\S+ - \S+ \[[^\]]+\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-) "[^"]*" "([^"]*)"/;

export function parseAccessLogLine(line: string): AccessLogEntry | undefined {
  const match = ACCESS_LOG_LINE.exec(line);
  if (!match) return undefined;
  return {
    method: match[1]!,
    uri: match[2]!,
    status: Number(match[3]),
    bytes: match[4] === "-" ? 0 : Number(match[4]),
    userAgent: match[5]!,
  };
}

function collectLines(child: ChildProcess, lines: string[]): void {
  for (const stream of [child.stdout, child.stderr]) {
    let pending = "";
    stream?.setEncoding("utf8");
    stream?.on("data", (chunk: string) => {
      pending += chunk;
      const parts = pending.split("\n");
      pending = parts.pop() ?? "";
      lines.push(...parts.filter((line) => line.length > 0));
    });
  }
}

async function waitUntilServing(
  url: string,
  exited: Promise<number | null>,
  lines: string[],
): Promise<void> {
  let exitCode: number | null | undefined;
  void exited.then((code) => {
    exitCode = code;
  });
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) {
      throw new Error(`docker-registry exited (${exitCode}):\n${lines.join("\n")}`);
    }
    try {
      // 200 without auth, 401 with it: either way it is serving.
      const response = await fetch(`${url}/v2/`);
      await response.body?.cancel();
      if (response.status === 200 || response.status === 401) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`docker-registry did not start on ${url}:\n${lines.join("\n")}`);
}

function bcrypt(password: string): string {
  const alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  // 21 free characters, then one of the four whose low bits are zero (bcrypt's salt is 128 bits).
  const salt =
    Array.from(randomBytes(21), (byte) => alphabet[byte % 64]).join("") +
    ".Oeu"[randomBytes(1)[0]! % 4];
  const hash = execFileSync(
    "perl",
    ["-e", "print crypt($ARGV[0], $ARGV[1])", password, `$2y$05$${salt}`],
    {
      encoding: "utf8",
    },
  );
  if (!hash.startsWith("$2")) throw new Error("perl crypt(3) has no bcrypt support");
  return hash;
}
