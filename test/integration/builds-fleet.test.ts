// Fleet credentials and the fleet door: superusers create (shown once), list and revoke them;
// everyone else is refused and nothing changes; /fleet/v1/connect takes the bootstrap credential
// or a live created one, refuses the rest (audited), and revoking disconnects the hosts using it.
import { env, SELF } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { FleetCredentialView } from "../../workers/registry/services/builds-fleet-credentials.ts";
import {
  apiAs,
  connectFleet,
  eventually,
  expectJson,
  FakeHost,
  resetCoordinator,
} from "./builds-helpers.ts";
import { createUser } from "./identity-fixtures.ts";

beforeEach(resetCoordinator);
afterEach(resetCoordinator);

async function credentialRows(): Promise<unknown[]> {
  return (await env.DB.prepare("SELECT * FROM fleet_credentials ORDER BY id").all()).results;
}

describe("fleet credentials API", () => {
  it("a superuser creates one (the secret once), lists it without the secret, and revokes it", async () => {
    const root = await createUser({ superuser: true });
    const created = await expectJson<FleetCredentialView & { credential: string }>(
      await apiAs(root, "POST", "/fleet/credentials", { name: "rack 1" }),
      201,
    );
    expect(created.credential).toMatch(/^erf_[A-Za-z0-9_-]{43}$/);
    expect(created).toMatchObject({ name: "rack 1", revokedAt: null });

    const listed = await expectJson<{ credentials: FleetCredentialView[] }>(
      await apiAs(root, "GET", "/fleet/credentials?limit=100"),
      200,
    );
    const mine = listed.credentials.find((c) => c.id === created.id);
    expect(mine).toEqual({
      id: created.id,
      name: "rack 1",
      createdAt: created.createdAt,
      lastUsedAt: null,
      revokedAt: null,
    });
    expect(JSON.stringify(listed)).not.toContain(created.credential);

    const host = await FakeHost.connect({ credential: created.credential });
    await eventually(async () => {
      const page = await expectJson<{ credentials: FleetCredentialView[] }>(
        await apiAs(root, "GET", "/fleet/credentials?limit=100"),
        200,
      );
      expect(page.credentials.find((c) => c.id === created.id)!.lastUsedAt).not.toBeNull();
    });
    const revoked = await expectJson<FleetCredentialView>(
      await apiAs(root, "DELETE", `/fleet/credentials/${created.id}`),
      200,
    );
    expect(revoked.revokedAt).not.toBeNull();
    expect((await host.closedWith()).code).toBe(4003);
    expect((await connectFleet(created.credential)).status).toBe(401);
    const events = await eventually(async () => {
      const rows = (
        await env.DB.prepare(
          "SELECT kind FROM audit_log WHERE kind LIKE 'fleet-credential.%' AND actor = ? ORDER BY id",
        )
          .bind(root.name)
          .all<{ kind: string }>()
      ).results;
      expect(rows).toHaveLength(2);
      return rows;
    }, 5000);
    expect(events.map((e) => e.kind)).toEqual([
      "fleet-credential.create",
      "fleet-credential.revoke",
    ]);
  });

  it("refuses everyone but superusers, changing nothing", async () => {
    const root = await createUser({ superuser: true });
    const person = await createUser();
    const existing = await expectJson<{ id: string }>(
      await apiAs(root, "POST", "/fleet/credentials", { name: "kept" }),
      201,
    );
    const before = await credentialRows();
    for (const [method, path, body] of [
      ["POST", "/fleet/credentials", { name: "mine" }],
      ["GET", "/fleet/credentials", undefined],
      ["DELETE", `/fleet/credentials/${existing.id}`, undefined],
      ["GET", "/fleet/hosts", undefined],
    ] as const) {
      expect((await apiAs(person, method, path, body)).status, `${method} ${path}`).toBe(403);
      expect((await apiAs(null, method, path, body)).status, `${method} ${path}`).toBe(401);
    }
    expect(await credentialRows()).toEqual(before);
  });

  it("refuses bad input: no name, unknown fields, unknown ids", async () => {
    const root = await createUser({ superuser: true });
    expect((await apiAs(root, "POST", "/fleet/credentials", {})).status).toBe(400);
    expect(
      (await apiAs(root, "POST", "/fleet/credentials", { name: "x", admin: true })).status,
    ).toBe(400);
    expect((await apiAs(root, "DELETE", "/fleet/credentials/nope")).status).toBe(404);
  });

  it("shows the connected hosts to superusers", async () => {
    const root = await createUser({ superuser: true });
    const host = await FakeHost.connect({ concurrency: 3 });
    const status = await expectJson<{
      hosts: { hostId: string; concurrency: number; running: number }[];
    }>(await apiAs(root, "GET", "/fleet/hosts"), 200);
    expect(status.hosts).toContainEqual(
      expect.objectContaining({ hostId: host.hostId, concurrency: 3, running: 0, driver: "fake" }),
    );
    host.close();
  });
});

describe("the fleet door", () => {
  it("refuses missing, wrong and non-fleet credentials, and audits the failed ones", async () => {
    const person = await createUser();
    expect((await connectFleet(null)).status).toBe(401);
    for (const wrong of ["erf_wrong", person.appToken, `${env.FLEET_CREDENTIAL}x`]) {
      const res = await connectFleet(wrong);
      expect(res.status).toBe(401);
      expect(res.headers.get("WWW-Authenticate")).toBe('Bearer realm="fleet"');
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("UNAUTHORIZED");
    }
    const failed = await eventually(async () => {
      const n = await env.DB.prepare(
        "SELECT count(*) AS n FROM audit_log WHERE kind = 'login.failed' AND metadata LIKE '%\"via\":\"fleet\"%'",
      ).first<number>("n");
      expect(n).toBeGreaterThanOrEqual(3);
      return n;
    }, 5000);
    expect(failed).toBeGreaterThanOrEqual(3);
  });

  it("wants a WebSocket", async () => {
    const res = await fetchPlain();
    expect(res.status).toBe(426);
  });
});

function fetchPlain(): Promise<Response> {
  return SELF.fetch("http://registry.test/fleet/v1/connect", {
    headers: { Authorization: `Bearer ${env.FLEET_CREDENTIAL}` },
  });
}
