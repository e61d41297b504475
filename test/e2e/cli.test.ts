// End-to-end: the registry started exactly as `npm start` does, administered with the CLI run as
// a separate process exactly as a user runs it (`edge-registry …` = `node scripts/cli.ts …`),
// with its own config folder. Log in as the bootstrap admin, create an organization, a robot and
// a repository, grant the robot write, prove the grant with the token service, read the audit
// log (which arrives through the event queue), and log out.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningRegistry, startRegistry } from "../support/registry-process.ts";

const repoRoot = path.resolve(import.meta.dirname, "../..");
const CLI = path.join(repoRoot, "scripts", "cli.ts");

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

let registry: RunningRegistry;
let configHome: string;

/** Runs the CLI with this test's config folder; nothing from the caller's environment leaks in. */
function cli(args: string[], options: { stdin?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      XDG_CONFIG_HOME: configHome,
      HOME: configHome,
    };
    delete env.REGISTRY_URL;
    delete env.REGISTRY_TOKEN;
    const child = spawn(process.execPath, [CLI, ...args], { cwd: repoRoot, env, stdio: "pipe" });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.stdin ?? "");
  });
}

/** Runs the CLI and requires success; returns stdout parsed as JSON when --json was given. */
async function ok<T = unknown>(args: string[], options: { stdin?: string } = {}): Promise<T> {
  const result = await cli(args, options);
  if (result.code !== 0) {
    expect.fail(
      `edge-registry ${args.join(" ")} exited ${result.code}\n${result.stderr}${result.stdout}`,
    );
  }
  return (args.includes("--json") ? JSON.parse(result.stdout) : result.stdout) as T;
}

beforeAll(async () => {
  configHome = mkdtempSync(path.join(os.tmpdir(), "cli-e2e-"));
  registry = await startRegistry();
});

afterAll(async () => {
  await registry?.stop();
  if (configHome) rmSync(configHome, { recursive: true, force: true });
});

interface LogEntry {
  kind: string;
  namespace: string | null;
  repository: string | null;
  actor: { kind: string; name: string };
  metadata: Record<string, unknown> | null;
}

describe("edge-registry CLI against the running registry", () => {
  const org = `acme${Date.now().toString(36)}`;
  const repo = `${org}/app`;
  const robot = `${org}+ci`;
  let robotToken = "";

  it("logs in as the admin and stores the token 0600", async () => {
    const text = await ok(
      ["login", registry.url, "--username", registry.adminUser, "--password-stdin"],
      { stdin: `${registry.adminPassword}\n` },
    );
    expect(text).toContain(`logged in to ${registry.url} as ${registry.adminUser}`);
    const config = path.join(configHome, "edge-registry", "config.json");
    expect(statSync(config).mode & 0o777).toBe(0o600);
    const me = await ok<{ username: string; superuser: boolean; authenticatedWith: string }>([
      "whoami",
      "--json",
    ]);
    expect(me).toMatchObject({
      username: registry.adminUser,
      superuser: true,
      authenticatedWith: "token",
    });
  });

  it("creates an organization, a robot and a repository, and grants the robot write", async () => {
    expect(await ok(["org", "create", org])).toContain(`created organization ${org}`);
    const created = await ok<{ name: string; token: string }>(["robot", "create", robot, "--json"]);
    expect(created.name).toBe(robot);
    expect(created.token).toMatch(/^err_/);
    robotToken = created.token;
    expect(await ok(["robot", "list", org])).toContain(robot);

    const repository = await ok<{ name: string; visibility: string }>([
      "repo",
      "create",
      repo,
      "--json",
    ]);
    expect(repository).toMatchObject({ name: repo, visibility: "private" });
    expect(await ok(["perm", "grant", repo, robot, "write"])).toBe(
      `robot ${robot} has write on ${repo}\n`,
    );
    const { permissions } = await ok<{
      permissions: { kind: string; name: string; role: string }[];
    }>(["perm", "list", repo, "--json"]);
    expect(permissions).toContainEqual({ kind: "robot", name: robot, role: "write" });
    expect(await ok(["repo", "list", "--namespace", org])).toMatch(
      new RegExp(`^${repo}\\s+private\\s+normal`, "m"),
    );
  });

  it("gave the robot push on the repository (asked of the token service)", async () => {
    const scope = `repository:${repo}:pull,push`;
    const res = await fetch(
      `${registry.url}/v2/auth?service=edge-registry&scope=${encodeURIComponent(scope)}`,
      {
        headers: {
          Authorization: `Basic ${Buffer.from(`${robot}:${robotToken}`).toString("base64")}`,
        },
      },
    );
    expect(res.status).toBe(200);
    const { token } = (await res.json()) as { token: string };
    const claims = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")) as {
      access: { type: string; name: string; actions: string[] }[];
    };
    expect(claims.access).toContainEqual(
      expect.objectContaining({
        type: "repository",
        name: repo,
        actions: expect.arrayContaining(["pull", "push"]),
      }),
    );
  });

  it("fails with the documented exit codes", async () => {
    const again = await cli(["repo", "create", repo]);
    expect(again.code).toBe(6);
    expect(again.stderr).toMatch(/already exists/);
    const missing = await cli(["org", "show", `${org}nope`]);
    expect(missing.code).toBe(5);
    const usage = await cli(["perm", "grant", repo, robot, "owner"]);
    expect(usage.code).toBe(2);
  });

  it("shows the changes in the audit log, newest first", async () => {
    const wanted = ["organization.create", "robot.create", "repository.create", "permission.grant"];
    // Events reach the log through the queue, a moment after each response.
    let entries: LogEntry[] = [];
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      entries = (await ok<{ logs: LogEntry[] }>(["logs", "--namespace", org, "--json"])).logs;
      if (wanted.every((kind) => entries.some((entry) => entry.kind === kind))) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(entries.map((entry) => entry.kind)).toEqual(expect.arrayContaining(wanted));
    // Newest first: the grant came after the organization.
    const kinds = entries.map((entry) => entry.kind);
    expect(kinds.indexOf("permission.grant")).toBeLessThan(kinds.indexOf("organization.create"));
    for (const entry of entries.filter((e) => wanted.includes(e.kind))) {
      expect(entry.actor).toMatchObject({ kind: "token", name: registry.adminUser });
    }
    const grant = entries.find((entry) => entry.kind === "permission.grant")!;
    expect(grant.repository).toBe(repo);

    const table = await ok(["logs", "--repository", repo, "--kind", "permission.*"]);
    expect(table).toMatch(/^TIME\s+KIND\s+ACTOR\s+TARGET/);
    expect(table).toMatch(
      new RegExp(`permission\\.grant\\s+${registry.adminUser} \\(token\\)\\s+${repo}`),
    );
  });

  it("logs out: the token is revoked and forgotten", async () => {
    expect(await ok(["logout"])).toContain("token revoked");
    const after = await cli(["whoami"]);
    expect(after.code).toBe(3);
    expect(after.stderr).toMatch(/not logged in/);
  });
});
