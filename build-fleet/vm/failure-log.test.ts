import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { defaultFailuresDir, keepFailure, lastLines, readTail } from "./failure-log.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "failure-log-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("failure log", () => {
  it("reads the end of a console and keeps its last non-empty lines, stripped of controls", async () => {
    const path = join(dir, "console.log");
    const lines = Array.from({ length: 80 }, (_, i) => `line ${i}`);
    await writeFile(path, `${lines.join("\r\n")}\n\n\x1b[31mred\x1b[0m\x07\n`);
    const tail = lastLines(await readTail(path));
    expect(tail).toHaveLength(50);
    expect(tail.at(-2)).toBe("line 79");
    expect(tail.at(-1)).toBe("red");
    expect(lastLines(await readTail(path, 20), 2)).toEqual(["red"]);
    expect(await readTail(join(dir, "missing"))).toBe("");
  });

  it("finds the daemon's failures dir from the job layout, and none elsewhere", () => {
    expect(defaultFailuresDir("/var/fleet/jobs/b1-1-abc/job")).toBe("/var/fleet/failures");
    expect(defaultFailuresDir("/tmp/somewhere/job")).toBeUndefined();
  });

  it("keeps each failure's record, private, and only the newest ones", async () => {
    const failures = join(dir, "failures");
    const paths: string[] = [];
    for (let i = 0; i < 4; i++) {
      paths.push(
        await keepFailure(
          failures,
          {
            buildId: `b/${i}`,
            attempt: 1,
            summary: "sandbox: no output for 120 s; VM stalled",
            qemuErrors: ["qemu: oops"],
            console: `console of ${i}`,
          },
          3,
          new Date(Date.UTC(2025, 0, 1, 0, 0, i)),
        ),
      );
    }
    const kept = (await readdir(failures)).sort();
    expect(kept).toEqual(paths.slice(1).map((path) => path.slice(failures.length + 1)));
    expect(kept[0]).toMatch(/^2025-01-01T00-00-01-000Z-b1-1\.log$/);
    const text = await readFile(paths[3]!, "utf8");
    expect(text).toContain("build b/3 attempt 1: sandbox: no output for 120 s; VM stalled");
    expect(text).toContain("qemu: oops");
    expect(text).toContain("console of 3");
    expect((await stat(paths[3]!)).mode & 0o777).toBe(0o600);
    expect((await stat(failures)).mode & 0o777).toBe(0o700);
  });
});
