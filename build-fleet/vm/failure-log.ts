// What a failed builder VM leaves behind: the VM's directory (and its console log) is deleted
// when the VM ends, so the guest console's last lines are shown in the build log and the whole
// console kept in `<failures dir>/`, the newest few only, for the operator.
import { constants } from "node:fs";
import { mkdir, open, readdir, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Console lines shown in the build log of a failed VM. */
export const CONSOLE_TAIL_LINES = 50;
/** Failed VMs whose console is kept on disk. */
export const KEPT_FAILURES = 10;
/** The most of a console log read back: the end is what explains a failure. */
const MAX_CONSOLE_BYTES = 256 * 1024;
const MAX_LINE_CHARS = 500;

/** The last `bytes` of a file as text, nothing when it cannot be read. */
export async function readTail(path: string, bytes = MAX_CONSOLE_BYTES): Promise<string> {
  try {
    const file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const { size } = await file.stat();
      const length = Math.min(size, bytes);
      const buffer = Buffer.alloc(length);
      await file.read(buffer, 0, length, size - length);
      const text = buffer.toString("utf8");
      // Read from the middle: the first line is partial, so it goes.
      return length < size ? text.slice(text.indexOf("\n") + 1) : text;
    } finally {
      await file.close();
    }
  } catch {
    return "";
  }
}

/**
 * The last non-empty lines of guest-written text, made safe to print: the guest (root in its VM
 * after a container escape) controls them, so terminal escapes and other controls are dropped.
 */
export function lastLines(text: string, count = CONSOLE_TAIL_LINES): string[] {
  return text
    .split(/\r\n|\r|\n/)
    .map((line) => printable(line).trimEnd().slice(0, MAX_LINE_CHARS))
    .filter((line) => line.trim() !== "")
    .slice(-count);
}

/** Drops ANSI escape sequences (ESC [ … final byte) and other control characters but tab. */
function printable(line: string): string {
  let out = "";
  for (let i = 0; i < line.length; i++) {
    const code = line.charCodeAt(i);
    if (code === 0x1b && line[i + 1] === "[") {
      i += 2;
      while (i < line.length && !/[@-~]/.test(line[i] ?? "")) i++;
      continue;
    }
    if ((code < 0x20 && code !== 0x09) || code === 0x7f) continue;
    out += line[i];
  }
  return out;
}

/**
 * Where a job's failures go when the driver is not told: `<work dir>/failures` beside the
 * daemon's `<work dir>/jobs/<folder>/job` (fleet/job-runner.ts lays jobs out so), else nowhere.
 */
export function defaultFailuresDir(jobDir: string): string | undefined {
  const jobs = dirname(dirname(jobDir));
  return basename(jobs) === "jobs" ? join(dirname(jobs), "failures") : undefined;
}

export interface FailureRecord {
  buildId: string;
  attempt: number;
  /** One line: how the VM ended. */
  summary: string;
  qemuErrors: string[];
  console: string;
}

/** Writes one failure's record and deletes all but the newest `keep`; returns its path. */
export async function keepFailure(
  dir: string,
  record: FailureRecord,
  keep = KEPT_FAILURES,
  now = new Date(),
): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const safeId = record.buildId.replace(/[^A-Za-z0-9_-]/g, "").slice(0, 64);
  // The timestamp first, so names sort oldest to newest.
  const name = `${now.toISOString().replace(/[:.]/g, "-")}-${safeId}-${record.attempt}.log`;
  const path = join(dir, name);
  const text = [
    `build ${record.buildId} attempt ${record.attempt}: ${record.summary}`,
    "--- qemu stderr",
    ...record.qemuErrors,
    "--- guest console",
    record.console,
  ].join("\n");
  await writeFile(path, text, { mode: 0o600 });
  const records = (await readdir(dir)).filter((file) => file.endsWith(".log")).sort();
  for (const old of records.slice(0, Math.max(0, records.length - keep)))
    await rm(join(dir, old), { force: true });
  return path;
}
