// The local runner end to end: start, answer, refuse TLS fast, keep state across restarts, stop.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { parseEnv } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, type RunningRegistry, startRegistry } from "../test/support/registry-process.ts";

const stateDir = mkdtempSync(path.join(os.tmpdir(), "registry-start-test-"));
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

/** Pids of workerd processes whose parent is `pid` (Linux /proc; empty elsewhere). */
function workerdChildren(pid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc").filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  return entries.map(Number).filter((child) => {
    try {
      const stat = readFileSync(`/proc/${child}/stat`, "utf8");
      // "pid (comm) state ppid ..."; comm may hold spaces, so split after the last ')'.
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      return ppid === pid && comm.startsWith("workerd");
    } catch {
      return false;
    }
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function readSecrets(): Record<string, string | undefined> {
  return parseEnv(readFileSync(path.join(stateDir, ".dev.vars"), "utf8"));
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

describe("npm start (scripts/start.ts)", () => {
  let registry: RunningRegistry;
  let firstSecrets: Record<string, string | undefined>;

  it("starts, prints the readiness line and a banner, and answers GET /v2/", async () => {
    registry = await startRegistry({ stateDir, port: await freePort() });
    expect(registry.url).toBe(`http://127.0.0.1:${registry.port}`);
    const res = await fetch(`${registry.url}/v2/`);
    // 200 while /v2/ is open; 401 (with a challenge) once authentication lands.
    expect([200, 401]).toContain(res.status);
    await res.body?.cancel();

    firstSecrets = readSecrets();
    expect(firstSecrets.URL_SIGNING_SECRET).toMatch(/^[0-9a-f]{64}$/);
    expect(registry.adminPassword).toBe(firstSecrets.REGISTRY_ADMIN_PASSWORD);
    expect(registry.adminUser).toBe("admin");
    expect(registry.output()).toContain(`skopeo login --tls-verify=false`);
  });

  it("refuses a TLS ClientHello within a second", async () => {
    const started = Date.now();
    const outcome = await new Promise<string>((resolve) => {
      const socket = tls.connect({
        host: "127.0.0.1",
        port: registry.port,
        rejectUnauthorized: false,
      });
      socket.once("secureConnect", () => resolve("handshake completed"));
      socket.once("error", (error) => resolve(`error: ${error.message}`));
      socket.setTimeout(5_000, () => {
        socket.destroy();
        resolve("timeout");
      });
    });
    expect(outcome).toMatch(/^error: /);
    expect(Date.now() - started).toBeLessThan(1_000);
    // The plain-HTTP path still works after the probe.
    const res = await fetch(`${registry.url}/v2/`);
    expect(res.status).toBeLessThan(500);
    await res.body?.cancel();
  });

  it("exits with a clear message when the port is taken", async () => {
    const other = mkdtempSync(path.join(os.tmpdir(), "registry-start-test-busy-"));
    try {
      await expect(startRegistry({ stateDir: other, port: registry.port })).rejects.toThrow(
        /already in use/,
      );
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it("refuses a second registry on the same state folder", async () => {
    await expect(startRegistry({ stateDir })).rejects.toThrow(/is using/);
  });

  it("stops on SIGTERM: exits 0, workerd gone, port free", async () => {
    const workerds = workerdChildren(registry.pid);
    if (process.platform === "linux") expect(workerds.length).toBeGreaterThan(0);
    const { code } = await registry.stop();
    expect(code).toBe(0);
    expect(await canConnect(registry.port)).toBe(false);
    for (const pid of workerds) expect(isAlive(pid)).toBe(false);
  });

  it("restarts on the same state folder and keeps its secrets", async () => {
    registry = await startRegistry({ stateDir, port: registry.port });
    expect(readSecrets()).toEqual(firstSecrets);
    expect(registry.adminPassword).toBe(firstSecrets.REGISTRY_ADMIN_PASSWORD);
    expect(registry.output()).toMatch(/secrets .*\(kept\)/);
    const res = await fetch(`${registry.url}/v2/`);
    expect(res.status).toBeLessThan(500);
    await res.body?.cancel();
    expect((await registry.stop()).code).toBe(0);
  });

  it("lets REGISTRY_ADMIN_USER / REGISTRY_ADMIN_PASSWORD override without persisting", async () => {
    registry = await startRegistry({
      stateDir,
      env: { REGISTRY_ADMIN_USER: "root", REGISTRY_ADMIN_PASSWORD: "from-env" },
    });
    expect(registry.adminUser).toBe("root");
    expect(registry.adminPassword).toBe("from-env");
    expect(readSecrets()).toEqual(firstSecrets);
    expect((await registry.stop()).code).toBe(0);
  });
});
