// End-to-end: `npm start` runs the hooks Worker beside the registry, in one Miniflare, sharing D1
// and the `builds` queue. A trigger made through the registry's API accepts a generic hook signed
// exactly as the README shows (HMAC-SHA256 of "<t>.<body>"), and the registry's own builds
// consumer records the build; a replay and a forged hook change nothing.
import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningRegistry, startRegistry } from "../support/registry-process.ts";

let registry: RunningRegistry;

beforeAll(async () => {
  registry = await startRegistry();
});

afterAll(async () => {
  await registry?.stop();
});

function api(path: string, init: RequestInit = {}): Promise<Response> {
  const auth = Buffer.from(`${registry.adminUser}:${registry.adminPassword}`).toString("base64");
  return fetch(`${registry.url}/api/v1${path}`, {
    ...init,
    headers: {
      Authorization: `Basic ${auth}`,
      "Content-Type": "application/json",
      ...init.headers,
    },
  });
}

function signedHook(triggerId: string, secret: string, body: string, delivery: string) {
  const t = Math.floor(Date.now() / 1000);
  const v1 = createHmac("sha256", secret).update(`${t}.${body}`).digest("hex");
  return fetch(`${registry.hooksUrl}/hooks/generic/${triggerId}`, {
    method: "POST",
    body,
    headers: {
      "Content-Type": "application/json",
      "X-Registry-Delivery": delivery,
      "X-Registry-Signature": `t=${t},v1=${v1}`,
    },
  });
}

describe("hooks Worker under npm start", () => {
  it("turns a signed generic hook into a recorded build, refusing a replay and a forgery", async () => {
    const repo = `${registry.adminUser}/hooked`;
    expect(
      (await api("/repositories", { method: "POST", body: JSON.stringify({ name: repo }) })).status,
    ).toBe(201);
    const created = await api(`/repositories/${repo}/triggers`, {
      method: "POST",
      body: JSON.stringify({
        provider: "generic",
        cloneUrl: "git://127.0.0.1:9418/app.git",
        defaultBranch: "main",
        tagTemplates: ["latest@default", "{branch}-{sha:7}"],
      }),
    });
    expect(created.status).toBe(201);
    const trigger = (await created.json()) as { id: string; secret: string };

    const commit = "3f786850e387550fdab836ed7e6dc881de23001b";
    const body = JSON.stringify({ ref: "refs/heads/main", commit });
    const accepted = await signedHook(trigger.id, trigger.secret, body, "e2e-1");
    expect(accepted.status).toBe(202);
    const { buildId, tags } = (await accepted.json()) as { buildId: string; tags: string[] };
    expect(tags).toEqual(["latest", "main-3f78685"]);

    expect((await signedHook(trigger.id, trigger.secret, body, "e2e-1")).status).toBe(409);
    expect((await signedHook(trigger.id, "erh_wrong", body, "e2e-2")).status).toBe(401);

    // The registry Worker consumes the queue the hooks Worker produced to, and records the build.
    const deadline = Date.now() + 15_000;
    let builds: { id: string; triggerId: string; source: { commit?: string } }[] = [];
    while (Date.now() < deadline) {
      const res = await api(`/repositories/${repo}/builds`);
      if (res.status === 200) {
        builds = ((await res.json()) as { builds: typeof builds }).builds;
        if (builds.length > 0) break;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(builds.map((b) => [b.id, b.triggerId, b.source.commit])).toEqual([
      [buildId, trigger.id, commit],
    ]);
  });
});
