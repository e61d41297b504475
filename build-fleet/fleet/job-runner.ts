// One attempt of one build, start to end, in the trusted fleet process: source → base images →
// the sandbox (the driver runs the agent) → push. The build token is used here only (token
// exchange and skopeo's arguments); the job directory the sandbox sees holds no secret.
import { chmod, mkdir, mkdtemp, open, realpath, rm } from "node:fs/promises";
import { join, sep } from "node:path";

import type { BuildJob } from "../../schema/builds.ts";
import {
  type BaseImageEntry,
  checkDockerfilePath,
  createJobLayout,
  newNonce,
  writeBaseList,
  writeJobEnv,
} from "../agent/job-dir.ts";
import type { SandboxDriver } from "../drivers/driver.ts";
import { type BaseImage, parseBaseImage } from "./base-images.ts";
import { dockerfileBases } from "./dockerfile-bases.ts";
import type { RegistryClient } from "./registry-client.ts";
import { fetchSource } from "./source.ts";

/** A Dockerfile bigger than this is refused before it is parsed. */
const MAX_DOCKERFILE_BYTES = 1024 * 1024;

export interface JobReporter {
  phase(phase: "pulling" | "building" | "pushing", detail?: string): void;
  log(stream: "stdout" | "stderr" | "system", text: string): void;
}

export interface JobRunnerDeps {
  driver: SandboxDriver;
  registry: RegistryClient;
  /** The daemon's work directory; each attempt gets a private directory under `jobs/`. */
  workDir: string;
  /** Environment of helper programs (git, skopeo, tar): PATH and little else. */
  env: NodeJS.ProcessEnv;
  allowLocalGit: boolean;
  /** Limit of the sandbox run. */
  timeoutMs: number;
}

/** Why the daemon stopped a job: the coordinator cancelled it, or the host hands it back. */
export type AbortReason = { kind: "cancel"; reason: string } | { kind: "release"; reason: string };

export interface JobTimings {
  receivedAt: number;
  buildingAt?: number;
  pushedAt?: number;
}

export type JobEnd =
  | { kind: "complete"; digest: string; tags: string[]; timings: JobTimings }
  | { kind: "error"; error: string; timings: JobTimings }
  | { kind: "aborted"; reason: AbortReason; timings: JobTimings };

class BuildFailure extends Error {}

export async function runJob(
  job: BuildJob,
  deps: JobRunnerDeps,
  reporter: JobReporter,
  signal: AbortSignal,
  receivedAt = Date.now(),
): Promise<JobEnd> {
  const timings: JobTimings = { receivedAt };
  const aborted = (): JobEnd => ({
    kind: "aborted",
    reason: signal.reason as AbortReason,
    timings,
  });
  await mkdir(join(deps.workDir, "jobs"), { recursive: true, mode: 0o711 });
  await chmod(join(deps.workDir, "jobs"), 0o711);
  // Unguessable and not listable by others (the namespace sandbox's root must traverse it).
  const folder = await mkdtemp(join(deps.workDir, "jobs", `${job.buildId}-${job.attempt}-`));
  await chmod(folder, 0o711);
  try {
    const jobDir = join(folder, "job");
    const scratch = join(folder, "fleet");
    await mkdir(scratch, { mode: 0o700 });
    await createJobLayout(jobDir);
    const contextPath = join(jobDir, "context");
    const onLine = (stream: "stdout" | "stderr", line: string) => reporter.log(stream, line);

    reporter.phase("pulling");
    const dockerfile = checkDockerfilePath(job.dockerfilePath);
    if (!dockerfile.ok) throw new BuildFailure(dockerfile.error);
    await fetchSource(job.source, contextPath, job, {
      scratch,
      env: deps.env,
      signal,
      allowLocalGit: deps.allowLocalGit,
      onLine,
      download: (destination) =>
        deps.registry.downloadSource(job.buildId, job.token, destination, signal),
    });
    if (signal.aborted) return aborted();
    const text = await readDockerfile(contextPath, dockerfile.path);
    const bases = await resolveBases(text, deps.registry.host);
    if (bases.length > 0) {
      const token = await deps.registry.pullToken(
        job.token,
        [...new Set(bases.map((b) => b.repository))],
        signal,
      );
      const entries: BaseImageEntry[] = [];
      for (const [index, base] of bases.entries()) {
        reporter.log("system", `pulling base image ${base.reference}`);
        const dir = `base-${index}`;
        await deps.registry.fetchBase(base, token, join(jobDir, "bases", dir), { signal, onLine });
        entries.push({ dir, localName: base.localName });
      }
      await writeBaseList(jobDir, entries);
    }
    if (signal.aborted) return aborted();

    await writeJobEnv(jobDir, { nonce: newNonce(), dockerfile: dockerfile.path });
    const sandbox = await deps.driver.run(
      { buildId: job.buildId, attempt: job.attempt, jobDir, timeoutMs: deps.timeoutMs },
      {
        signal,
        onLog: (line) => reporter.log(line.stream, line.text),
        onControl: (control) => {
          if (control.kind === "phase" && control.phase === "building") {
            timings.buildingAt = Date.now();
            reporter.phase("building");
          }
        },
      },
    );
    if (!sandbox.ok) {
      if (sandbox.reason === "cancelled" && signal.aborted) return aborted();
      throw new BuildFailure(sandbox.error);
    }

    reporter.phase("pushing");
    const digest = await deps.registry.push(
      sandbox.imageArchive,
      job.repository,
      job.tags,
      job.token,
      join(scratch, "digest"),
      { signal, onLine },
    );
    timings.pushedAt = Date.now();
    reporter.log("system", `pushed ${job.repository}@${digest} as ${job.tags.join(", ")}`);
    return { kind: "complete", digest, tags: job.tags, timings };
  } catch (error) {
    if (signal.aborted) return aborted();
    const message = error instanceof Error ? error.message : String(error);
    return { kind: "error", error: message, timings };
  } finally {
    await rm(folder, { recursive: true, force: true }).catch(() => {});
  }
}

/** Reads the Dockerfile only if it really lies inside the context (no symlink out of it). */
async function readDockerfile(contextPath: string, path: string): Promise<string> {
  const root = await realpath(contextPath);
  const resolved = await realpath(join(contextPath, path)).catch(() => undefined);
  if (resolved === undefined)
    throw new BuildFailure(`no Dockerfile at ${path} in the build context`);
  if (!resolved.startsWith(root + sep))
    throw new BuildFailure(`the Dockerfile ${path} points outside the build context`);
  const file = await open(resolved, "r");
  try {
    const info = await file.stat();
    if (!info.isFile()) throw new BuildFailure(`${path} is not a file`);
    if (info.size > MAX_DOCKERFILE_BYTES) throw new BuildFailure(`${path} is larger than 1 MiB`);
    return await file.readFile("utf8");
  } finally {
    await file.close();
  }
}

async function resolveBases(dockerfile: string, registryHost: string): Promise<BaseImage[]> {
  const bases: BaseImage[] = [];
  for (const reference of dockerfileBases(dockerfile).images) {
    const parsed = parseBaseImage(reference, registryHost);
    if (!parsed.ok) throw new BuildFailure(parsed.error);
    bases.push(parsed.image);
  }
  return bases;
}
