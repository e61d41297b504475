// The audit log end to end inside the Worker: a registry action emits an event after the
// response, the `registry-events` queue delivers it to this Worker's own consumer, the consumer
// writes D1, and GET /api/v1/logs serves it. Nothing is called directly: requests go through
// SELF, and the queue is Miniflare's (batches flush after max_batch_timeout, 1 s).
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { utcDay } from "../../workers/registry/queue/consumer.ts";
import { api, pushImage, uniqueRepo } from "./helpers.ts";

interface AuditRow {
  kind: string;
  namespace: string | null;
  repository: string | null;
  actor_kind: string | null;
  actor: string | null;
  client_ip: string | null;
  metadata: string | null;
}

/** Polls D1 until `query` returns rows (the queue delivers within a couple of seconds). */
async function eventually<T>(
  query: () => Promise<T[]>,
  what: string,
  timeoutMs = 8_000,
): Promise<T[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await query();
    if (rows.length > 0) return rows;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function auditRows(repository: string, kind: string): Promise<AuditRow[]> {
  const { results } = await env.DB.prepare(
    "SELECT * FROM audit_log WHERE repository = ? AND kind = ? ORDER BY id",
  )
    .bind(repository, kind)
    .all<AuditRow>();
  return results;
}

describe("audit log through the queue", { timeout: 20_000 }, () => {
  it("records a push with who, what, where and from which address", async () => {
    const repo = uniqueRepo("audit");
    const image = await pushImage(repo, { tag: "v1" });
    const [push] = await eventually(() => auditRows(repo, "manifest.push"), "manifest.push");
    expect(push).toMatchObject({
      namespace: repo.split("/")[0],
      repository: repo,
      actor_kind: "user",
      actor: env.REGISTRY_ADMIN_USER,
    });
    expect(JSON.parse(push!.metadata!)).toMatchObject({ digest: image.digest });
    const [tag] = await eventually(() => auditRows(repo, "tag.push"), "tag.push");
    expect(JSON.parse(tag!.metadata!)).toMatchObject({ digest: image.digest, tag: "v1" });
  });

  it("records a failed login at the token service, naming the account tried", async () => {
    const user = `nobody${crypto.randomUUID().slice(0, 8)}`;
    const res = await api("/v2/auth?service=edge-registry", {
      headers: { Authorization: `Basic ${btoa(`${user}:wrong`)}` },
    });
    expect(res.status).toBe(401);
    const rows = await eventually(async () => {
      const { results } = await env.DB.prepare(
        "SELECT * FROM audit_log WHERE kind = 'login.failed' AND actor = ?",
      )
        .bind(user)
        .all<AuditRow>();
      return results;
    }, "login.failed");
    expect(rows[0]).toMatchObject({ actor_kind: "anonymous", actor: user });
  });

  it("counts a manifest pull per repository and UTC day", async () => {
    const repo = uniqueRepo("pulls");
    await pushImage(repo, { tag: "latest" });
    for (let i = 0; i < 2; i++) {
      const res = await api(`/v2/${repo}/manifests/latest`, {
        headers: { Accept: "application/vnd.oci.image.manifest.v1+json" },
      });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    const count = async () => {
      const row = await env.DB.prepare(
        "SELECT count FROM pull_counts WHERE repository = ? AND day = ?",
      )
        .bind(repo, utcDay(Date.now()))
        .first<{ count: number }>();
      return row ? [row.count] : [];
    };
    await eventually(async () => ((await count())[0] === 2 ? [2] : []), "two counted pulls");
    // HEAD checks existence and is no pull (STYLE: HEAD has no side effects): after a queue
    // flush (max_batch_timeout is 1 s) the count is unchanged.
    const head = await api(`/v2/${repo}/manifests/latest`, { method: "HEAD" });
    expect(head.status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(await count()).toEqual([2]);
  });

  it("serves the rows on GET /api/v1/logs to the superuser", async () => {
    const repo = uniqueRepo("apilogs");
    await pushImage(repo, { tag: "v1" });
    await eventually(() => auditRows(repo, "tag.push"), "tag.push");
    const res = await api(`/api/v1/logs?repository=${repo}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      logs: { at: string; kind: string; repository: string; actor: { name: string } }[];
      next_cursor: string | null;
    };
    const kinds = body.logs.map((entry) => entry.kind);
    expect(kinds).toContain("manifest.push");
    expect(kinds).toContain("tag.push");
    expect(body.logs.every((entry) => entry.repository === repo)).toBe(true);
    expect(body.logs.every((entry) => entry.actor.name === env.REGISTRY_ADMIN_USER)).toBe(true);
    const times = body.logs.map((entry) => Date.parse(entry.at));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    expect(body.next_cursor).toBeNull();
  });
});
