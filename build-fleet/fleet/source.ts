// Fetching a build's source into the job's `context/`: a git commit (exactly that commit, only
// the context directory, no .git) or an uploaded archive. Runs in the trusted fleet process.
import { chmod, mkdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";

import type { BuildSource } from "../../schema/builds.ts";
import { checkDockerfilePath } from "../agent/job-dir.ts";
import { run } from "../lib/process.ts";

export interface SourceOptions {
  /** Scratch directory of the job, for the git objects or the downloaded archive. */
  scratch: string;
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
  /** Lets `cloneUrl` be a local path or file:// URL (tests); otherwise http(s) and git only. */
  allowLocalGit: boolean;
  onLine(stream: "stdout" | "stderr", line: string): void;
  /** Downloads an uploaded source to the given file (RegistryClient.downloadSource). */
  download(destination: string): Promise<number>;
}

/** `.`, or a relative path inside the source (normalized), or an error message. */
export function checkContextDir(
  path: string,
): { ok: true; path: string } | { ok: false; error: string } {
  if (path === "" || path === "." || path === "./") return { ok: true, path: "." };
  const checked = checkDockerfilePath(path);
  return checked.ok
    ? checked
    : { ok: false, error: checked.error.replace("the Dockerfile path", "the context directory") };
}

/** Fills `contextPath` (which must not exist yet) with the build context. */
export async function fetchSource(
  source: BuildSource,
  contextPath: string,
  paths: { contextDir: string; dockerfilePath: string },
  options: SourceOptions,
): Promise<void> {
  const checked = checkContextDir(paths.contextDir);
  if (!checked.ok) throw new Error(checked.error);
  if (source.kind === "git") await fetchGit(source, contextPath, checked.path, options);
  else await fetchArchive(source, contextPath, checked.path, paths.dockerfilePath, options);
}

async function fetchGit(
  source: Extract<BuildSource, { kind: "git" }>,
  contextPath: string,
  contextDir: string,
  options: SourceOptions,
): Promise<void> {
  if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(source.commit))
    throw new Error(`not a full commit id: ${source.commit}`);
  if (source.cloneUrl.startsWith("-")) throw new Error(`bad clone URL: ${source.cloneUrl}`);
  const gitDir = join(options.scratch, "git");
  const env: NodeJS.ProcessEnv = {
    ...options.env,
    // No prompts (a private repository without access fails at once), no user or system config,
    // and only network protocols unless local paths are allowed.
    GIT_TERMINAL_PROMPT: "0",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_ALLOW_PROTOCOL: options.allowLocalGit ? "http:https:git:file" : "http:https:git",
    HOME: options.scratch,
  };
  const git = async (args: string[], what: string) => {
    const result = await run("git", args, {
      env,
      signal: options.signal,
      onLine: options.onLine,
      timeoutMs: 600_000,
    });
    if (result.stopped === "aborted") throw new DOMException("aborted", "AbortError");
    return { ...result, what };
  };
  const init = await git(["init", "--bare", "--quiet", gitDir], "git init");
  if (init.code !== 0) throw new Error(`git init failed: ${init.stderr.trim()}`);
  options.onLine("stdout", `fetching ${source.commit} (${source.ref}) from ${source.cloneUrl}`);
  // The exact commit, shallow: servers allowing fetch by id (protocol v2 and most hosts) send one
  // commit's objects. Otherwise fetch the ref and insist the commit is in it.
  let fetched = await git(
    [
      "-C",
      gitDir,
      "fetch",
      "--quiet",
      "--no-tags",
      "--depth=1",
      "--",
      source.cloneUrl,
      source.commit,
    ],
    "fetch",
  );
  if (fetched.code !== 0) {
    fetched = await git(
      [
        "-C",
        gitDir,
        "fetch",
        "--quiet",
        "--no-tags",
        "--",
        source.cloneUrl,
        `+${source.ref}:refs/build/source`,
      ],
      "fetch",
    );
    if (fetched.code !== 0) throw new Error(`git fetch failed: ${lastLine(fetched.stderr)}`);
  }
  const present = await git(
    ["-C", gitDir, "cat-file", "-e", `${source.commit}^{commit}`],
    "cat-file",
  );
  if (present.code !== 0)
    throw new Error(`commit ${source.commit} is not in ${source.ref} of ${source.cloneUrl}`);
  const treeish = contextDir === "." ? source.commit : `${source.commit}:${contextDir}`;
  const tarPath = join(options.scratch, "context.tar");
  const archived = await git(
    ["-C", gitDir, "archive", "--format=tar", `--output=${tarPath}`, treeish],
    "archive",
  );
  if (archived.code !== 0)
    throw new Error(`the commit has no directory ${contextDir}: ${lastLine(archived.stderr)}`);
  await mkdir(contextPath, { recursive: true, mode: 0o755 });
  await extractTar(tarPath, contextPath, false, options);
  await rm(gitDir, { recursive: true, force: true });
  await rm(tarPath, { force: true });
}

async function fetchArchive(
  source: Extract<BuildSource, { kind: "archive" }>,
  contextPath: string,
  contextDir: string,
  dockerfilePath: string,
  options: SourceOptions,
): Promise<void> {
  const file = join(options.scratch, "upload");
  const bytes = await options.download(file);
  options.onLine("stdout", `downloaded the uploaded ${source.format} (${bytes} bytes)`);
  if (source.format === "dockerfile") {
    // A lone Dockerfile: the context holds it and nothing else.
    const checked = checkDockerfilePath(dockerfilePath);
    if (!checked.ok) throw new Error(checked.error);
    const target = join(contextPath, checked.path);
    await mkdir(dirname(target), { recursive: true, mode: 0o755 });
    await rename(file, target);
    await chmod(target, 0o644);
    return;
  }
  const extracted = join(options.scratch, "extracted");
  await mkdir(extracted, { recursive: true, mode: 0o755 });
  await extractTar(file, extracted, source.format === "tar.gz", options);
  await rm(file, { force: true });
  const from = contextDir === "." ? extracted : join(extracted, contextDir);
  const info = await stat(from).catch(() => undefined);
  if (!info?.isDirectory()) throw new Error(`the uploaded archive has no directory ${contextDir}`);
  await rename(from, contextPath);
}

/**
 * GNU tar as a trusted process extracting untrusted input: it refuses `..` members, strips leading
 * `/`, and defers symlinks so no member is written through one. Owners are not restored.
 */
async function extractTar(
  file: string,
  into: string,
  gzip: boolean,
  options: SourceOptions,
): Promise<void> {
  const result = await run(
    "tar",
    [
      "-x",
      ...(gzip ? ["-z"] : []),
      "--no-same-owner",
      "--delay-directory-restore",
      "-f",
      file,
      "-C",
      into,
    ],
    { env: options.env, signal: options.signal, timeoutMs: 600_000 },
  );
  if (result.stopped === "aborted") throw new DOMException("aborted", "AbortError");
  if (result.code !== 0) throw new Error(`cannot unpack the source: ${lastLine(result.stderr)}`);
}

function lastLine(text: string): string {
  return (text.trim().split("\n").at(-1) ?? "").trim() || "no error output";
}
