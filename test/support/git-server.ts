// A git server on loopback for build tests: repositories made by the test, served read-only by
// `git daemon` (git://127.0.0.1:<port>/<name>), the way a fleet host fetches a pushed commit.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "./registry-process.ts";

const run = promisify(execFile);

/** Commits are made with a fixed identity and no user or system configuration. */
const GIT_ENV = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_AUTHOR_NAME: "Build Test",
  GIT_AUTHOR_EMAIL: "build-test@example.invalid",
  GIT_COMMITTER_NAME: "Build Test",
  GIT_COMMITTER_EMAIL: "build-test@example.invalid",
};

async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run("git", args, { cwd, env: GIT_ENV });
  return stdout.trim();
}

export interface GitServer {
  /** `git://127.0.0.1:<port>/<name>` of a repository made with `createRepository`. */
  url(name: string): string;
  /** Makes a repository whose default branch is `branch`; returns its working directory. */
  createRepository(name: string, branch?: string): Promise<GitWorkingCopy>;
  stop(): Promise<void>;
}

export interface GitWorkingCopy {
  dir: string;
  /** Writes files (paths relative to the root; a Buffer or string each) and commits them. */
  commit(files: Record<string, string | Buffer>, message?: string): Promise<string>;
  /** Creates or moves `branch` to the current commit and checks it out. */
  checkout(branch: string): Promise<void>;
  /** Tags the current commit. */
  tag(name: string): Promise<void>;
}

export async function startGitServer(): Promise<GitServer> {
  const base = await mkdtemp(join(tmpdir(), "git-server-"));
  const port = await freePort();
  const daemon: ChildProcess = spawn(
    "git",
    [
      "daemon",
      "--verbose",
      "--reuseaddr",
      "--export-all",
      "--informative-errors",
      `--base-path=${base}`,
      "--listen=127.0.0.1",
      `--port=${port}`,
      base,
    ],
    { env: GIT_ENV, stdio: ["ignore", "ignore", "pipe"] },
  );
  await waitForDaemon(daemon);

  return {
    url: (name) => `git://127.0.0.1:${port}/${name}`,
    async createRepository(name, branch = "main") {
      const dir = join(base, name);
      await mkdir(dir, { recursive: true });
      await git(dir, "init", "--quiet", `--initial-branch=${branch}`);
      return workingCopy(dir);
    },
    async stop() {
      daemon.kill("SIGTERM");
      await rm(base, { recursive: true, force: true });
    },
  };
}

function workingCopy(dir: string): GitWorkingCopy {
  return {
    dir,
    async commit(files, message = "change") {
      for (const [path, content] of Object.entries(files)) {
        const target = join(dir, path);
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, content, { mode: 0o755 });
      }
      await git(dir, "add", "--all");
      await git(dir, "commit", "--quiet", "--allow-empty", "-m", message);
      return git(dir, "rev-parse", "HEAD");
    },
    async checkout(branch) {
      await git(dir, "checkout", "--quiet", "-B", branch);
    },
    async tag(name) {
      await git(dir, "tag", name);
    },
  };
}

/** With --verbose, git daemon prints "Ready to rumble" on stderr once it listens. */
function waitForDaemon(daemon: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`git daemon did not start: ${seen}`)), 10_000);
    daemon.stderr?.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes("Ready to rumble")) {
        clearTimeout(timer);
        resolve();
      }
    });
    daemon.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`git daemon exited with ${code}: ${seen}`));
    });
  });
}
