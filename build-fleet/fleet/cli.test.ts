// The daemon's command line: where the credential comes from, defaults, and refusals.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

import { parseFleetArgs } from "./cli.ts";

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("build-fleet arguments", () => {
  it("reads the credential from a file, the command line (with a warning) or the environment", async () => {
    dir = await mkdtemp(join(tmpdir(), "fleet-cli-"));
    const file = join(dir, "credential");
    await writeFile(file, "erf_from-file\n", { mode: 0o600 });
    const fromFile = await parseFleetArgs(
      ["--registry", "http://127.0.0.1:8787", "--credential-file", file],
      {},
    );
    expect(fromFile.ok && fromFile.config).toMatchObject({
      credential: "erf_from-file",
      concurrency: 1,
      driver: "auto",
      kvmAccel: "kvm",
      shutdownGraceMs: 60_000,
      jobTimeoutMs: 3_600_000,
      allowLocalGit: false,
      warnings: [],
    });
    const fromArgv = await parseFleetArgs(
      ["--registry", "http://r", "--credential", "erf_argv"],
      {},
    );
    expect(fromArgv.ok && fromArgv.config.warnings[0]).toMatch(/visible in the process list/);
    const fromEnv = await parseFleetArgs(
      ["--registry", "https://r", "--concurrency", "4", "--driver", "namespace"],
      {
        BUILD_FLEET_CREDENTIAL: "erf_env",
      },
    );
    expect(fromEnv.ok && fromEnv.config).toMatchObject({
      credential: "erf_env",
      concurrency: 4,
      driver: "namespace",
    });
  });

  it("refuses what it cannot use, with the usage", async () => {
    const cases: [string[], RegExp][] = [
      [["--credential", "x"], /--registry is required/],
      [["--registry", "ftp://r", "--credential", "x"], /http:\/\/ or https:\/\//],
      [["--registry", "http://r"], /no fleet credential/],
      [["--registry", "http://r", "--credential", "x", "--driver", "docker"], /--driver must be/],
      [
        ["--registry", "http://r", "--credential", "x", "--concurrency", "0"],
        /--concurrency must be a positive integer/,
      ],
      [["--registry", "http://r", "--credential", "x", "--host-id", "a b"], /--host-id/],
      [["--registry", "http://r", "--credential", "x", "--surprise"], /Unknown option/],
    ];
    for (const [argv, error] of cases) {
      const parsed = await parseFleetArgs(argv, {});
      expect(parsed.ok, argv.join(" ")).toBe(false);
      expect(!parsed.ok && parsed.error).toMatch(error);
      expect(!parsed.ok && parsed.error).toContain("usage: build-fleet");
    }
  });
});
