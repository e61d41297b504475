// Quota events end to end: `quota.warning` once per upward crossing of the warning threshold
// (re-armed when usage falls below it), `quota.exceeded` for a refused push, both through the
// `registry-events` queue into the audit log. Requests go through SELF; the queue is Miniflare's.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { api, expectError, pushImage, randomBytes } from "./helpers.ts";
import { createOrg } from "./identity-fixtures.ts";

interface AuditRow {
  kind: string;
  actor_kind: string | null;
  metadata: string | null;
}

async function auditRows(namespace: string, kind: string): Promise<AuditRow[]> {
  const { results } = await env.DB.prepare(
    "SELECT kind, actor_kind, metadata FROM audit_log WHERE namespace = ? AND kind = ? ORDER BY at, id",
  )
    .bind(namespace, kind)
    .all<AuditRow>();
  return results;
}

/** Polls until `count` rows of `kind` are in the audit log (the queue batches for up to 1 s). */
async function eventually(namespace: string, kind: string, count: number): Promise<AuditRow[]> {
  const deadline = Date.now() + 8_000;
  for (;;) {
    const rows = await auditRows(namespace, kind);
    if (rows.length >= count) return rows;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${count} ${kind}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function putQuota(namespace: string, body: Record<string, number>): Promise<void> {
  const res = await api(`/api/v1/namespaces/${namespace}/quota`, {
    method: "PUT",
    body: JSON.stringify(body),
    headers: { "Content-Type": "application/json" },
  });
  expect(res.status).toBe(200);
}

describe("quota events", { timeout: 20_000 }, () => {
  it("warns once per upward crossing of the threshold, re-armed when usage falls below", async () => {
    const ns = await createOrg();
    const repo = `${ns}/app`;
    await putQuota(ns, { limitBytes: 20_000, warningPercent: 50 });

    const big = await pushImage(repo, { tag: "big", layers: [randomBytes(12_000)] }); // crosses
    await pushImage(repo, { tag: "small", layers: [randomBytes(500)] }); // stays above
    expect((await api(`/v2/${repo}/manifests/${big.digest}`, { method: "DELETE" })).status).toBe(
      202,
    ); // falls below: re-armed
    await pushImage(repo, { tag: "again", layers: [randomBytes(12_000)] }); // crosses again
    // Still above: setting the same limit again is no new crossing. Its quota.set, sent after
    // every warning above, marks the point where all of them have been delivered.
    await putQuota(ns, { limitBytes: 20_000, warningPercent: 50 });
    await eventually(ns, "quota.set", 2);

    const warnings = await auditRows(ns, "quota.warning");
    expect(warnings).toHaveLength(2);
    for (const warning of warnings) {
      expect(warning.actor_kind).toBe("system");
      const metadata = JSON.parse(warning.metadata!) as Record<string, number>;
      expect(metadata).toMatchObject({
        limitBytes: 20_000,
        warningPercent: 50,
        thresholdBytes: 10_000,
      });
      expect(metadata.usageBytes).toBeGreaterThanOrEqual(10_000);
    }
  });

  it("warns at once when a new limit puts usage past the threshold", async () => {
    const ns = await createOrg();
    await pushImage(`${ns}/app`, { tag: "v1", layers: [randomBytes(3000)] });
    await putQuota(ns, { limitBytes: 3200, warningPercent: 90 });
    const [warning] = await eventually(ns, "quota.warning", 1);
    expect(JSON.parse(warning!.metadata!)).toMatchObject({ limitBytes: 3200, warningPercent: 90 });
  });

  it("records a refused push as quota.exceeded, with who was refused", async () => {
    const ns = await createOrg();
    const repo = `${ns}/app`;
    await pushImage(repo, { tag: "v1" });
    await putQuota(ns, { limitBytes: 0 });
    const res = await api(`/v2/${repo}/blobs/uploads/`, {
      method: "POST",
      headers: { "Content-Length": "0" },
    });
    await expectError(res, 403, "DENIED");
    const [exceeded] = await eventually(ns, "quota.exceeded", 1);
    expect(exceeded!.actor_kind).toBe("user");
    expect(JSON.parse(exceeded!.metadata!)).toMatchObject({ limitBytes: 0, newBytes: 0 });
  });
});
