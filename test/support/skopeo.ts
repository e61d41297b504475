// skopeo as an end-to-end client: every run gets a private HOME, signature policy, registries
// config and auth file, so nothing from the machine (or another test) changes what it does.
//
//   const skopeo = await Skopeo.create(dir, { creds: "user:password" });
//   await skopeo.ok("copy", ...skopeo.destFlags(), image.ref, `docker://${host}/ns/repo:v1`);
//   await skopeo.run("inspect", ...skopeo.flags(null), ref);   // null: anonymous, no --creds
//   await skopeo.run("inspect", ...skopeo.flags("bob:pw"), ref); // another account, same HOME
//
// Run as root, skopeo's blob-info cache is machine-wide (/var/lib/containers/cache) whatever
// HOME says: use fresh random layer content per test so nothing cached elsewhere ever matches.
import { spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface SkopeoResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface SkopeoOptions {
  /** `user:secret` the flag helpers send by default; omit (or null) for anonymous. */
  creds?: string | null;
}

/** skopeo with a private HOME, policy, registries config and auth file: nothing from the machine. */
export class Skopeo {
  private readonly home: string;
  private readonly env: Record<string, string>;
  private readonly creds: string | null;

  private constructor(home: string, env: Record<string, string>, creds: string | null) {
    this.home = home;
    this.env = env;
    this.creds = creds;
  }

  static async create(dir: string, options: SkopeoOptions = {}): Promise<Skopeo> {
    const home = join(dir, "home");
    await mkdir(join(home, "run"), { recursive: true });
    await mkdir(join(home, "registries.d"), { recursive: true });
    await mkdir(join(home, "tmp"), { recursive: true });
    await writeFile(
      join(home, "policy.json"),
      JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }),
    );
    await writeFile(join(home, "registries.conf"), "unqualified-search-registries = []\n");
    return new Skopeo(
      home,
      {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: home,
        XDG_RUNTIME_DIR: join(home, "run"),
        XDG_CONFIG_HOME: join(home, ".config"),
        XDG_DATA_HOME: join(home, ".local", "share"),
        XDG_CACHE_HOME: join(home, ".cache"),
        TMPDIR: join(home, "tmp"),
        CONTAINERS_REGISTRIES_CONF: join(home, "registries.conf"),
        REGISTRY_AUTH_FILE: join(home, "auth.json"),
      },
      options.creds ?? null,
    );
  }

  /**
   * Flags for a command that reads or writes the registry (inspect, list-tags, delete) with
   * `creds` (default: this instance's); null sends no credentials at all (anonymous).
   */
  flags(creds: string | null = this.creds): string[] {
    return ["--tls-verify=false", ...(creds !== null ? [`--creds=${creds}`] : [])];
  }
  /** Source-side flags of `copy` (pulling from the registry). */
  srcFlags(creds: string | null = this.creds): string[] {
    return ["--src-tls-verify=false", ...(creds !== null ? [`--src-creds=${creds}`] : [])];
  }
  /** Destination-side flags of `copy` (pushing to the registry). */
  destFlags(creds: string | null = this.creds): string[] {
    return ["--dest-tls-verify=false", ...(creds !== null ? [`--dest-creds=${creds}`] : [])];
  }

  async run(...args: string[]): Promise<SkopeoResult> {
    const globals = [
      "--policy",
      join(this.home, "policy.json"),
      "--registries.d",
      join(this.home, "registries.d"),
      "--tmpdir",
      join(this.home, "tmp"),
      "--command-timeout",
      "240s",
    ];
    const started = Date.now();
    // Async on purpose: a synchronous exec would also stall a registry child process whose log
    // pipe this process drains.
    const child = spawn("skopeo", [...globals, ...args], {
      env: this.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", resolve);
    });
    return { code, stdout, stderr, ms: Date.now() - started };
  }

  /** Runs and requires success; the failure message carries skopeo's own words. */
  async ok(...args: string[]): Promise<SkopeoResult> {
    const result = await this.run(...args);
    if (result.code !== 0) {
      throw new Error(`skopeo ${args.join(" ")} exited ${result.code}:\n${result.stderr}`);
    }
    return result;
  }
}

export async function assertSkopeoInstalled(): Promise<void> {
  const child = spawn("skopeo", ["--version"], { stdio: "ignore" });
  const code = await new Promise<number | null>((resolve) => {
    child.once("error", () => resolve(null));
    child.once("close", resolve);
  });
  if (code !== 0) {
    throw new Error("skopeo is required for the end-to-end tests: apt-get install -y skopeo");
  }
}
