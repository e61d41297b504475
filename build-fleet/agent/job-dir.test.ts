// The job directory as the fleet writes it for the agent.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

import {
  checkDockerfilePath,
  createJobLayout,
  newNonce,
  readJobNonce,
  writeBaseList,
  writeJobEnv,
} from "./job-dir.ts";

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("job directory", () => {
  it("normalizes Dockerfile paths and refuses those leaving the context", () => {
    expect(checkDockerfilePath("./docker//Dockerfile")).toEqual({
      ok: true,
      path: "docker/Dockerfile",
    });
    expect(checkDockerfilePath("Dockerfile")).toEqual({ ok: true, path: "Dockerfile" });
    for (const bad of ["", "/etc/passwd", "../Dockerfile", "a/../../b", ".", "a\nb", "x\u0000"]) {
      expect(checkDockerfilePath(bad).ok, bad).toBe(false);
    }
  });

  it("writes job.env and bases/list the agent reads", async () => {
    dir = await mkdtemp(join(tmpdir(), "job-dir-"));
    await createJobLayout(dir);
    const nonce = newNonce();
    expect(nonce).toMatch(/^[0-9a-f]{32}$/);
    await writeJobEnv(dir, { nonce, dockerfile: "./sub/Dockerfile" });
    expect(await readFile(join(dir, "job.env"), "utf8")).toBe(
      `AGENT_NONCE=${nonce}\nDOCKERFILE=sub/Dockerfile\nISOLATION=auto\nNETWORK=none\n`,
    );
    expect(await readJobNonce(dir)).toBe(nonce);
    await writeBaseList(dir, [{ dir: "base-0", localName: "127.0.0.1:8787/team/base:1" }]);
    expect(await readFile(join(dir, "bases", "list"), "utf8")).toBe(
      "base-0 127.0.0.1:8787/team/base:1\n",
    );
    await expect(writeBaseList(dir, [{ dir: "../x", localName: "a" }])).rejects.toThrow(/bad base/);
    await expect(writeJobEnv(dir, { nonce, dockerfile: "../Dockerfile" })).rejects.toThrow(
      /leaves the context/,
    );
  });
});
