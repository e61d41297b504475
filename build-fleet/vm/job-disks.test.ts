import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { createOutDisk, OUT_DATA_OFFSET, readOutDisk, writeJobDisk } from "./job-disks.ts";

const exec = promisify(execFile);

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "job-disks-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("writeJobDisk", () => {
  it("packs the job without out/, the runner and the agent, keeping symlinks as symlinks", async () => {
    const job = join(dir, "job");
    await mkdir(join(job, "context", "sub"), { recursive: true });
    await mkdir(join(job, "bases", "b0"), { recursive: true });
    await mkdir(join(job, "out"), { recursive: true });
    await writeFile(join(job, "job.env"), "AGENT_NONCE=00\n");
    await writeFile(join(job, "context", "Dockerfile"), "FROM scratch\n");
    await writeFile(join(job, "bases", "b0", "manifest.json"), "{}");
    await writeFile(join(job, "out", "stale.tar"), "old");
    // A context may hold a link to a host file: it must travel as a link, never as the file.
    await symlink("/etc/shadow", join(job, "context", "sub", "shadow"));

    const disk = join(dir, "job.tar");
    await writeJobDisk(job, disk);
    const listing = (await exec("tar", ["-tvf", disk])).stdout;
    const names = listing
      .trim()
      .split("\n")
      .map((line) => line.split(/\s+/).slice(5).join(" "));

    expect(names).toEqual(
      expect.arrayContaining([
        "job/job.env",
        "job/context/Dockerfile",
        "job/bases/b0/manifest.json",
        "job/context/sub/shadow -> /etc/shadow",
        "edge/run-job.sh",
        "edge/build-agent.sh",
      ]),
    );
    expect(names.some((name) => name.startsWith("job/out"))).toBe(false);
    expect(names.some((name) => name.startsWith("/") || name.includes(".."))).toBe(false);
  });
});

describe("out disk", () => {
  async function disk(header: string, payload: Buffer, capacity = 4096): Promise<string> {
    const path = join(dir, `out-${Math.random().toString(16).slice(2)}.img`);
    await createOutDisk(path, capacity);
    const bytes = await readFile(path);
    Buffer.from(header, "latin1").copy(bytes, 0);
    payload.copy(bytes, OUT_DATA_OFFSET);
    await writeFile(path, bytes);
    return path;
  }

  it("is sparse-sized to hold the limit and refuses to overwrite an existing file", async () => {
    const path = join(dir, "out.img");
    await createOutDisk(path, 4096);
    expect((await readFile(path)).length).toBe(OUT_DATA_OFFSET + 4096);
    await expect(createOutDisk(path, 4096)).rejects.toThrow(/EEXIST/);
  });

  it("copies exactly the announced bytes", async () => {
    const image = Buffer.from("an oci archive");
    const path = await disk(
      `EDGE-OUT-1 ${image.length}\n`,
      Buffer.concat([image, Buffer.from("trailing junk")]),
    );
    const destination = join(dir, "image.tar");
    expect(await readOutDisk(path, destination)).toEqual({ ok: true, bytes: image.length });
    expect(await readFile(destination)).toEqual(image);
  });

  it.each([
    ["no header (the VM died before writing it)", ""],
    ["another magic", "EDGE-OUT-2 5\n"],
    ["a size beyond the disk", `EDGE-OUT-1 ${4097}\n`],
    ["a zero size", "EDGE-OUT-1 0\n"],
    ["garbage after the header line", "EDGE-OUT-1 5\nx"],
    ["a negative size", "EDGE-OUT-1 -5\n"],
  ])("copies nothing for %s", async (_name, header) => {
    const path = await disk(header, Buffer.from("hello"));
    const destination = join(dir, "image.tar");
    const result = await readOutDisk(path, destination);
    expect(result.ok).toBe(false);
    await expect(readFile(destination)).rejects.toThrow(/ENOENT/);
  });
});
