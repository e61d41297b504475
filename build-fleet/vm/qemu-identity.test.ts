import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

import { handOver, kvmAccessHint, launcherArgs, qemuIdentity } from "./qemu-identity.ts";

describe("qemu identity", () => {
  it("always asks for death with the daemon and no new privileges", () => {
    expect(launcherArgs(undefined)).toEqual(["--pdeathsig", "SIGKILL", "--no-new-privs", "--"]);
  });

  it("drops to the VM's own uid with no groups, or only the KVM device's", () => {
    expect(launcherArgs({ uid: 2_147_000_003, gid: 2_147_000_003, groups: [] })).toEqual([
      "--pdeathsig",
      "SIGKILL",
      "--no-new-privs",
      "--reuid",
      "2147000003",
      "--regid",
      "2147000003",
      "--clear-groups",
      "--",
    ]);
    expect(launcherArgs({ uid: 5, gid: 5, groups: [108] })).toContain("--groups");
    expect(kvmAccessHint({ uid: 5, gid: 5, groups: [] })).toMatch(
      /must be read-write for its group/,
    );
    expect(kvmAccessHint({ uid: 5, gid: 5, groups: [108] })).toBe("");
  });

  it.skipIf(process.getuid?.() !== 0)(
    "gives each slot its own uid when the daemon is root",
    async () => {
      const first = await qemuIdentity(0, 2_147_000_000, "tcg");
      const second = await qemuIdentity(1, 2_147_000_000, "tcg");
      expect(first).toEqual({ uid: 2_147_000_000, gid: 2_147_000_000, groups: [] });
      expect(second?.uid).toBe(2_147_000_001);

      const dir = await mkdtemp(join(tmpdir(), "qemu-identity-"));
      try {
        const file = join(dir, "out.img");
        await writeFile(file, "");
        await handOver(second, [dir, file]);
        expect((await stat(file)).uid).toBe(2_147_000_001);
        expect((await stat(dir)).gid).toBe(2_147_000_001);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
});
