// The job directory every driver hands to the build agent (agent/PROTOCOL.md): its layout, and
// writing and reading `job.env` and `bases/list`. Written by the trusted fleet process only.
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const JOB_ENV = "job.env";
export const CONTEXT_DIR = "context";
export const BASES_DIR = "bases";
export const BASES_LIST = "list";
export const OUT_DIR = "out";
export const IMAGE_ARCHIVE = "image.tar";

export interface JobEnv {
  /** Fresh per job; only the agent reads it, so RUN steps cannot forge control lines. */
  nonce: string;
  /** The Dockerfile's path inside `context/`. */
  dockerfile: string;
  /** `auto` lets the agent pick oci (runc) when it has cgroups, chroot otherwise. */
  isolation?: "auto" | "oci" | "chroot";
  /** `none` (the default): RUN steps get no network at all. */
  network?: "none" | "host";
}

export interface BaseImageEntry {
  /** Directory name under `bases/`, holding a `dir:` image. */
  dir: string;
  /** The name the agent gives the image, so the Dockerfile's FROM finds it locally. */
  localName: string;
}

export function newNonce(): string {
  return randomBytes(16).toString("hex");
}

/** Creates `<jobDir>/{context,bases,out}`; the caller fills the context and the bases. */
export async function createJobLayout(jobDir: string): Promise<void> {
  await mkdir(join(jobDir, CONTEXT_DIR), { recursive: true, mode: 0o755 });
  await mkdir(join(jobDir, BASES_DIR), { recursive: true, mode: 0o755 });
  await mkdir(join(jobDir, OUT_DIR), { recursive: true, mode: 0o755 });
}

/**
 * A relative path inside the context, normalized (`./a//b` → `a/b`), or an error message. Refuses
 * absolute paths, `..`, control characters and anything the agent's line format cannot carry.
 */
export function checkDockerfilePath(
  path: string,
): { ok: true; path: string } | { ok: false; error: string } {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (path === "" || /[\u0000-\u001f\u007f]/.test(path)) {
    return { ok: false, error: "the Dockerfile path is empty or has control characters" };
  }
  if (path.startsWith("/"))
    return { ok: false, error: `the Dockerfile path must be relative: ${path}` };
  const parts = path.split("/").filter((part) => part !== "" && part !== ".");
  if (parts.includes(".."))
    return { ok: false, error: `the Dockerfile path leaves the context: ${path}` };
  if (parts.length === 0) return { ok: false, error: `the Dockerfile path names no file: ${path}` };
  return { ok: true, path: parts.join("/") };
}

export async function writeJobEnv(jobDir: string, env: JobEnv): Promise<void> {
  const checked = checkDockerfilePath(env.dockerfile);
  if (!checked.ok) throw new Error(checked.error);
  if (!/^[0-9a-f]{16,64}$/.test(env.nonce)) throw new Error("the agent nonce must be hex");
  const lines = [
    `AGENT_NONCE=${env.nonce}`,
    `DOCKERFILE=${checked.path}`,
    `ISOLATION=${env.isolation ?? "auto"}`,
    `NETWORK=${env.network ?? "none"}`,
  ];
  await writeFile(join(jobDir, JOB_ENV), `${lines.join("\n")}\n`, { mode: 0o644 });
}

export async function readJobNonce(jobDir: string): Promise<string> {
  const text = await readFile(join(jobDir, JOB_ENV), "utf8");
  const match = /^AGENT_NONCE=([0-9a-f]+)$/m.exec(text);
  if (match?.[1] === undefined) throw new Error(`${JOB_ENV} has no AGENT_NONCE`);
  return match[1];
}

export async function writeBaseList(jobDir: string, bases: BaseImageEntry[]): Promise<void> {
  for (const base of bases) {
    if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(base.dir) || /\s/.test(base.localName)) {
      throw new Error(`bad base image entry: ${base.dir} ${base.localName}`);
    }
  }
  const text = bases.map((base) => `${base.dir} ${base.localName}\n`).join("");
  await writeFile(join(jobDir, BASES_DIR, BASES_LIST), text, { mode: 0o644 });
}
