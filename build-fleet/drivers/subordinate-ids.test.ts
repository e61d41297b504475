// Subordinate id ranges for the namespace sandbox.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

import {
  freeRangeStart,
  parseSubidFile,
  ROOT_RANGE_COUNT,
  SANDBOX_ID_COUNT,
  sandboxSlice,
  subordinateRanges,
} from "./subordinate-ids.ts";

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("subordinate ids", () => {
  it("parses entries and finds a start above all of them", () => {
    const entries = parseSubidFile("# comment\nalice:100000:65536\nbob:165536:65536\nbroken\n");
    expect(entries).toEqual([
      { owner: "alice", start: 100000, count: 65536 },
      { owner: "bob", start: 165536, count: 65536 },
    ]);
    expect(freeRangeStart(entries)).toBe(231072);
    expect(freeRangeStart([])).toBe(100000);
  });

  it("gives concurrent sandboxes disjoint slices, reused beyond the range", () => {
    const ranges = {
      uid: { start: 100000, count: SANDBOX_ID_COUNT * 2 },
      gid: { start: 200000, count: SANDBOX_ID_COUNT * 2 },
    };
    expect(sandboxSlice(ranges, 0).uid.start).toBe(100000);
    expect(sandboxSlice(ranges, 1)).toEqual({
      uid: { start: 100000 + SANDBOX_ID_COUNT, count: SANDBOX_ID_COUNT },
      gid: { start: 200000 + SANDBOX_ID_COUNT, count: SANDBOX_ID_COUNT },
    });
    expect(sandboxSlice(ranges, 2).uid.start).toBe(100000);
  });

  it("adds a range for root only when asked, and otherwise says what to run", async () => {
    dir = await mkdtemp(join(tmpdir(), "subid-"));
    const subuidPath = join(dir, "subuid");
    const subgidPath = join(dir, "subgid");
    await writeFile(subuidPath, "someone:100000:65536");
    await writeFile(subgidPath, "");
    const { username, uid } = userInfo();
    const refused = await subordinateRanges({ subuidPath, subgidPath, createForRoot: false });
    expect(refused.ok).toBe(false);
    expect(!refused.ok && refused.reason).toContain("usermod --add-subuids 165536-231071");
    if (uid !== 0) return;
    const created = await subordinateRanges({ subuidPath, subgidPath, createForRoot: true });
    expect(created).toEqual({
      ok: true,
      ranges: {
        uid: { start: 165536, count: ROOT_RANGE_COUNT },
        gid: { start: 100000, count: ROOT_RANGE_COUNT },
      },
    });
    expect(await readFile(subuidPath, "utf8")).toBe(
      `someone:100000:65536\n${username}:165536:${ROOT_RANGE_COUNT}\n`,
    );
    // Found, not added again.
    expect(await subordinateRanges({ subuidPath, subgidPath, createForRoot: true })).toEqual(
      created,
    );
    expect(await readFile(subgidPath, "utf8")).toBe(`${username}:100000:${ROOT_RANGE_COUNT}\n`);
  });
});
