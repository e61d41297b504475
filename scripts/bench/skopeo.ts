// Runs one `skopeo copy` in a throwaway home, timed, so nothing one copy learns helps the next.
//
// skopeo keeps a blob-info cache (which registry and repository already hold which digest, and
// compressed/uncompressed pairs); with it, a later push can mount or skip blobs instead of
// uploading. As root that cache is machine-wide (/var/lib/containers/cache) whatever HOME says:
// containers/image picks the system path when its "rootless EUID" is 0, and reads that EUID
// from `_CONTAINERS_ROOTLESS_UID` when set. Setting it (root only) moves the cache into the
// temp home's XDG_DATA_HOME; `cacheIsolated()` checks that it really landed there. The
// benchmark also pushes fresh random content every round, so even a shared cache could not help.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import path from "node:path";

export interface CopyResult {
  seconds: number;
  stdout: string;
  stderr: string;
}

export class SkopeoHome {
  readonly dir: string;
  private readonly env: Record<string, string>;

  private constructor(dir: string, env: Record<string, string>) {
    this.dir = dir;
    this.env = env;
  }

  static async create(parent: string): Promise<SkopeoHome> {
    const dir = await mkdtemp(path.join(parent, "skopeo-home-"));
    for (const sub of ["run", "tmp", "registries.d", ".config", ".local/share", ".cache"]) {
      await mkdir(path.join(dir, sub), { recursive: true });
    }
    await writeFile(
      path.join(dir, "policy.json"),
      JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }),
    );
    await writeFile(path.join(dir, "registries.conf"), "unqualified-search-registries = []\n");
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: dir,
      XDG_RUNTIME_DIR: path.join(dir, "run"),
      XDG_CONFIG_HOME: path.join(dir, ".config"),
      XDG_DATA_HOME: path.join(dir, ".local", "share"),
      XDG_CACHE_HOME: path.join(dir, ".cache"),
      TMPDIR: path.join(dir, "tmp"),
      CONTAINERS_REGISTRIES_CONF: path.join(dir, "registries.conf"),
      REGISTRY_AUTH_FILE: path.join(dir, "auth.json"),
    };
    if (process.getuid?.() === 0) env._CONTAINERS_ROOTLESS_UID = "65534";
    return new SkopeoHome(dir, env);
  }

  /** Whether the last copy kept its blob-info cache in this home (not the machine-wide one). */
  cacheIsolated(): boolean {
    return existsSync(
      path.join(this.dir, ".local", "share", "containers", "cache", "blob-info-cache-v1.boltdb"),
    );
  }

  /** `skopeo copy <args>` with this home's policy and config; rejects on a non-zero exit. */
  copy(args: string[], timeoutMs: number): Promise<CopyResult> {
    const globals = [
      "--policy",
      path.join(this.dir, "policy.json"),
      "--registries.d",
      path.join(this.dir, "registries.d"),
      "--tmpdir",
      path.join(this.dir, "tmp"),
      "--command-timeout",
      `${Math.ceil(timeoutMs / 1000)}s`,
    ];
    return new Promise((resolve, reject) => {
      const started = performance.now();
      const child = spawn("skopeo", [...globals, "copy", "--quiet", ...args], {
        env: this.env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
      child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
      const killer = setTimeout(() => child.kill("SIGKILL"), timeoutMs + 10_000);
      child.once("error", (error) => {
        clearTimeout(killer);
        reject(error);
      });
      child.once("exit", (code, signal) => {
        clearTimeout(killer);
        const seconds = (performance.now() - started) / 1000;
        if (code === 0) resolve({ seconds, stdout, stderr });
        else {
          reject(
            new Error(
              `skopeo copy ${redact(args).join(" ")} failed (${signal ?? code}):\n${stderr}`,
            ),
          );
        }
      });
    });
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Drops passwords from arguments before they reach a message. */
function redact(args: string[]): string[] {
  return args.map((arg) => arg.replace(/^(--(?:src-|dest-)?creds=[^:]*):.*$/, "$1:***"));
}
