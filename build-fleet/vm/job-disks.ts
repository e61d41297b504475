// The two disks that carry a job into a builder VM and its image out. No host directory is ever
// shared with the guest: the job goes in as a tar archive on a read-only disk, the image comes
// back as raw bytes on a fixed-size disk, behind a header the host parses itself (a tar or a
// filesystem written by a hostile guest could smuggle in symlinks or exhaust the host's disk).
//
// Job disk (a tar, extracted at / by guest/init):
//   job/...              the job directory (agent/PROTOCOL.md) without out/
//   edge/run-job.sh      the in-VM runner (guest/run-job.sh)
//   edge/build-agent.sh  the build agent, the same file every driver runs
//
// Out disk (written by guest/run-job.sh):
//   bytes 0..511         `EDGE-OUT-1 <size>\n`, NUL-padded; written last, after the image
//   bytes 1 MiB..        the image archive (oci-archive), <size> bytes
import { constants, createReadStream, createWriteStream } from "node:fs";
import { open } from "node:fs/promises";
import { dirname } from "node:path";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";

import { type RunResult, run } from "../lib/process.ts";

export const RUN_JOB_SCRIPT = fileURLToPath(new URL("./guest/run-job.sh", import.meta.url));
export const AGENT_SCRIPT = fileURLToPath(new URL("../agent/build-agent.sh", import.meta.url));
/** Where the image starts on the out disk; must match `seek=1 bs=1M` in guest/run-job.sh. */
export const OUT_DATA_OFFSET = 1024 * 1024;
const OUT_HEADER_BYTES = 512;
const OUT_HEADER = /^EDGE-OUT-1 (\d{1,15})\n\0*$/;

const TAR_ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" };

/**
 * Writes the job disk: the job directory (without `out/`) under `job/`, then the runner and the
 * agent under `edge/`. Symlinks in the context stay symlinks (never followed on the host), and
 * their targets are not rewritten (the `S` transform flag).
 */
export async function writeJobDisk(jobDir: string, diskPath: string): Promise<void> {
  await checked(
    run(
      "tar",
      [
        "--create",
        "--file",
        diskPath,
        "--format=gnu",
        "--directory",
        jobDir,
        "--exclude=./out",
        "--transform=s,^\\.,job,S",
        ".",
      ],
      { env: TAR_ENV },
    ),
    "cannot pack the job directory",
  );
  await checked(
    run(
      "tar",
      [
        "--append",
        "--file",
        diskPath,
        "--transform=s,^,edge/,S",
        "--directory",
        dirname(RUN_JOB_SCRIPT),
        "run-job.sh",
        "--directory",
        dirname(AGENT_SCRIPT),
        "build-agent.sh",
      ],
      { env: TAR_ENV },
    ),
    "cannot add the agent to the job disk",
  );
}

/** A sparse file the guest may fill up to `maxImageBytes`; nothing is allocated until written. */
export async function createOutDisk(diskPath: string, maxImageBytes: number): Promise<void> {
  const file = await open(
    diskPath,
    constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY,
    0o600,
  );
  try {
    await file.truncate(OUT_DATA_OFFSET + maxImageBytes);
  } finally {
    await file.close();
  }
}

export type OutDiskResult = { ok: true; bytes: number } | { ok: false; error: string };

/**
 * Copies the image the guest left on the out disk to `destination`. Everything on the disk is
 * untrusted: the header must be exact and the size must fit the disk, or nothing is copied.
 */
export async function readOutDisk(diskPath: string, destination: string): Promise<OutDiskResult> {
  const disk = await open(diskPath, constants.O_RDONLY | constants.O_NOFOLLOW);
  let size: number;
  try {
    const header = Buffer.alloc(OUT_HEADER_BYTES);
    await disk.read(header, 0, OUT_HEADER_BYTES, 0);
    const match = OUT_HEADER.exec(header.toString("latin1"));
    if (match?.[1] === undefined)
      return { ok: false, error: "the VM wrote no image to its out disk" };
    size = Number(match[1]);
    const capacity = (await disk.stat()).size - OUT_DATA_OFFSET;
    if (size === 0 || size > capacity) {
      return {
        ok: false,
        error: `the out disk header claims ${size} bytes (the disk holds ${capacity})`,
      };
    }
  } finally {
    await disk.close();
  }
  await pipeline(
    createReadStream(diskPath, { start: OUT_DATA_OFFSET, end: OUT_DATA_OFFSET + size - 1 }),
    createWriteStream(destination, { mode: 0o644 }),
  );
  return { ok: true, bytes: size };
}

async function checked(running: Promise<RunResult>, what: string): Promise<void> {
  const result = await running;
  if (result.code !== 0)
    throw new Error(`${what}: ${result.stderr.trim() || `tar exit status ${result.code}`}`);
}
