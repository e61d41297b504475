// End-to-end dispatch, exactly as a fleet host and a user meet it: the registry started as
// `npm start` does; a fleet host that is Node's own WebSocket client connects through the front
// door with the bootstrap FLEET_CREDENTIAL from the state folder's `.dev.vars`; a manual build
// (a Dockerfile uploaded through the API) is pushed to it; it fetches the source and pushes an
// image with the build token; the CLI, run as its own process, follows the log live and exits 0
// when the build completes; afterwards the token is refused. Measures request → job pushed.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { parseEnv } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BuildJob, FleetCoordinatorMessage, FleetHostMessage } from "../../schema/builds.ts";
import { type RunningRegistry, startRegistry } from "../support/registry-process.ts";

const repoRoot = path.resolve(import.meta.dirname, "../..");
const CLI = path.join(repoRoot, "scripts", "cli.ts");

let registry: RunningRegistry;
let admin: string;
/** In the admin's own namespace, which exists from the start. */
let REPOSITORY: string;

beforeAll(async () => {
  registry = await startRegistry();
  REPOSITORY = `${registry.adminUser}/built`;
  admin = `Basic ${Buffer.from(`${registry.adminUser}:${registry.adminPassword}`).toString("base64")}`;
  const res = await fetch(`${registry.url}/api/v1/repositories`, {
    method: "POST",
    headers: { Authorization: admin, "Content-Type": "application/json" },
    body: JSON.stringify({ name: REPOSITORY }),
  });
  expect(res.status, await res.text()).toBe(201);
});

afterAll(async () => {
  await registry?.stop();
});

/** A fleet host: Node's WebSocket, messages awaited in order. */
class Host {
  readonly messages: FleetCoordinatorMessage[] = [];
  private wake: (() => void) | undefined;
  readonly ws: WebSocket;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.addEventListener("message", (event) => {
      this.messages.push(JSON.parse(String(event.data)) as FleetCoordinatorMessage);
      this.wake?.();
    });
  }

  static async connect(credential: string): Promise<Host> {
    const url = `${registry.url.replace(/^http/, "ws")}/fleet/v1/connect`;
    const ws = new (
      WebSocket as unknown as new (
        url: string,
        init: { headers: Record<string, string> },
      ) => WebSocket
    )(url, { headers: { Authorization: `Bearer ${credential}` } });
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error("fleet connect failed")), { once: true });
    });
    const host = new Host(ws);
    host.send({
      type: "hello",
      hostId: "e2e-host",
      driver: "none",
      concurrency: 1,
      version: "e2e",
    });
    await host.next("welcome");
    return host;
  }

  send(message: FleetHostMessage): void {
    this.ws.send(JSON.stringify(message));
  }

  async next<T extends FleetCoordinatorMessage["type"]>(
    type: T,
    timeoutMs = 15_000,
  ): Promise<Extract<FleetCoordinatorMessage, { type: T }>> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const index = this.messages.findIndex((m) => m.type === type);
      if (index >= 0)
        return this.messages.splice(index, 1)[0] as Extract<FleetCoordinatorMessage, { type: T }>;
      if (Date.now() > until) throw new Error(`no ${type}: ${JSON.stringify(this.messages)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}

function cli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...env, XDG_CONFIG_HOME: registry.stateDir },
      stdio: ["ignore", "pipe", "pipe"],
    });
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
  });
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return `sha256:${Buffer.from(hash).toString("hex")}`;
}

/** What the fleet's push does, by hand: a config blob and a manifest, with the build token. */
async function pushImage(job: BuildJob): Promise<string> {
  const config = new TextEncoder().encode(JSON.stringify({ architecture: "amd64", os: "linux" }));
  const configDigest = await sha256(config);
  const auth = { Authorization: `Bearer ${job.token}` };
  const blob = await fetch(
    `${registry.url}/v2/${job.repository}/blobs/uploads/?digest=${configDigest}`,
    {
      method: "POST",
      headers: { ...auth, "Content-Type": "application/octet-stream" },
      body: config,
    },
  );
  expect(blob.status, await blob.text()).toBe(201);
  const manifest = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: configDigest,
        size: config.byteLength,
      },
      layers: [],
    }),
  );
  const put = await fetch(`${registry.url}/v2/${job.repository}/manifests/${job.tags[0]}`, {
    method: "PUT",
    headers: { ...auth, "Content-Type": "application/vnd.oci.image.manifest.v1+json" },
    body: manifest,
  });
  expect(put.status, await put.text()).toBe(201);
  return sha256(manifest);
}

describe("a build dispatched to a Node fleet host", () => {
  it("is pushed, built, followed live with the CLI, and its token dies with it", async () => {
    const vars = parseEnv(readFileSync(path.join(registry.stateDir, ".dev.vars"), "utf8"));
    const host = await Host.connect(vars.FLEET_CREDENTIAL!);

    const dockerfile = "FROM scratch\nCOPY hello /hello\n";
    const requested = performance.now();
    const res = await fetch(`${registry.url}/api/v1/repositories/${REPOSITORY}/builds?tags=v1`, {
      method: "POST",
      headers: { Authorization: admin, "Content-Type": "text/plain" },
      body: dockerfile,
    });
    expect(res.status, await res.clone().text()).toBe(202);
    const { buildId } = (await res.json()) as { buildId: string };
    const { job } = await host.next("job");
    const dispatchMs = performance.now() - requested;
    console.log(`build request → job pushed to the fleet host: ${dispatchMs.toFixed(0)} ms`);
    expect(job).toMatchObject({ buildId, attempt: 1, repository: REPOSITORY, tags: ["v1"] });

    const source = await fetch(`${registry.url}/fleet/v1/builds/${buildId}/source`, {
      headers: { Authorization: `Bearer ${job.token}` },
    });
    expect(await source.text()).toBe(dockerfile);

    // The CLI follows the log from the start, with an app token of the admin.
    const token = await fetch(`${registry.url}/api/v1/user/tokens`, {
      method: "POST",
      headers: { Authorization: admin, "Content-Type": "application/json" },
      body: JSON.stringify({ name: "e2e" }),
    });
    const { token: appToken } = (await token.json()) as { token: string };
    const env = { REGISTRY_URL: registry.url, REGISTRY_TOKEN: appToken };
    const following = cli(["logs", REPOSITORY, buildId, "--follow"], env);

    const at = Date.now();
    host.send({ type: "phase", buildId, attempt: 1, phase: "pulling" });
    host.send({ type: "phase", buildId, attempt: 1, phase: "building" });
    host.send({
      type: "log",
      buildId,
      attempt: 1,
      lines: [
        { at, stream: "stdout", text: "STEP 1/2: FROM scratch" },
        { at, stream: "stdout", text: "STEP 2/2: COPY hello /hello" },
      ],
    });
    host.send({ type: "heartbeat", running: [{ buildId, attempt: 1 }] });
    host.send({ type: "phase", buildId, attempt: 1, phase: "pushing" });
    const digest = await pushImage(job);
    host.send({ type: "result", buildId, attempt: 1, ok: true, digest, tags: ["v1"] });

    const followed = await following;
    expect(followed.code, followed.stderr).toBe(0);
    expect(followed.stdout).toContain("STEP 2/2: COPY hello /hello");
    expect(followed.stderr).toContain(`ended: complete ${digest}`);

    const list = await cli(["builds", REPOSITORY, "--json"], env);
    expect(list.code, list.stderr).toBe(0);
    const builds = (
      JSON.parse(list.stdout) as { builds: { id: string; phase: string; digest: string }[] }
    ).builds;
    expect(builds.find((b) => b.id === buildId)).toMatchObject({ phase: "complete", digest });

    const after = await fetch(`${registry.url}/v2/${REPOSITORY}/manifests/v1`, {
      headers: {
        Authorization: `Bearer ${job.token}`,
        Accept: "application/vnd.oci.image.manifest.v1+json",
      },
    });
    expect(after.status).toBe(401);
    host.ws.close(1000);
  });
});
