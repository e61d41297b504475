// Management API: namespace quotas. Members and admins of a namespace and superusers may read its
// quota (anyone else gets 404, as for the namespace itself); only superusers may set or remove it
// (an organization's own admins get 403). Changes are audited; refusals change nothing.
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { namespaceObjectName } from "../../durable-objects/namespace-object.ts";
import type { QuotaView } from "../../schema/rpc.ts";
import {
  admin,
  call,
  eventSince,
  events,
  expectApiError,
  expectNoChange,
  expectStatus,
  json,
  makeUser,
  type TestUser,
  unique,
} from "./api-helpers.ts";

beforeEach(() => {
  events.length = 0;
});

/** An organization owned by `owner`, with a member-role team holding `member`. */
async function orgWith(owner: TestUser, member: TestUser): Promise<string> {
  const org = unique("org");
  await expectStatus(await call("POST", "/organizations", { as: owner, body: { name: org } }), 201);
  await expectStatus(
    await call("POST", `/organizations/${org}/teams`, {
      as: owner,
      body: { name: "readers", role: "member" },
    }),
    201,
  );
  await expectStatus(
    await call("PUT", `/organizations/${org}/teams/readers/members/${member.name}`, { as: owner }),
    201,
  );
  return org;
}

function quotaOf(namespace: string): Promise<QuotaView> {
  return env.NAMESPACE.getByName(namespaceObjectName(namespace)).describe();
}

describe("GET /namespaces/:ns/quota", () => {
  it("shows usage and limits to members, admins and superusers; 404 to anyone else", async () => {
    const [owner, member, outsider] = [await makeUser(), await makeUser(), await makeUser()];
    const org = await orgWith(owner, member);
    for (const who of [owner, member, await admin()]) {
      const res = await expectStatus(
        await call("GET", `/namespaces/${org}/quota`, { as: who }),
        200,
      );
      expect(await json(res)).toEqual({
        usageBytes: 0,
        limitBytes: null,
        warningPercent: 80,
        blobs: 0,
      });
    }
    await expectApiError(
      await call("GET", `/namespaces/${org}/quota`, { as: outsider }),
      404,
      "NOT_FOUND",
    );
    await expectApiError(await call("GET", `/namespaces/${org}/quota`), 401);
    // A missing namespace looks the same as one the caller may not see, even to a superuser.
    await expectApiError(
      await call("GET", `/namespaces/${unique("none")}/quota`, { as: await admin() }),
      404,
      "NOT_FOUND",
    );
  });

  it("shows a user their own namespace's quota, and hides it from other users", async () => {
    const [user, other] = [await makeUser(), await makeUser()];
    await expectStatus(await call("GET", `/namespaces/${user.name}/quota`, { as: user }), 200);
    await expectApiError(
      await call("GET", `/namespaces/${user.name}/quota`, { as: other }),
      404,
      "NOT_FOUND",
    );
  });
});

describe("PUT and DELETE /namespaces/:ns/quota", () => {
  it("lets a superuser set and remove a limit, audited", async () => {
    const [owner, member] = [await makeUser(), await makeUser()];
    const org = await orgWith(owner, member);
    const root = await admin();
    const set = await expectStatus(
      await call("PUT", `/namespaces/${org}/quota`, {
        as: root,
        body: { limitBytes: 1_000_000, warningPercent: 90 },
      }),
      200,
    );
    expect(await json(set)).toEqual({
      usageBytes: 0,
      limitBytes: 1_000_000,
      warningPercent: 90,
      blobs: 0,
    });
    expect(eventSince(0, "quota.set")).toMatchObject({
      namespace: org,
      actor: { kind: "token", name: root.name },
      metadata: { limitBytes: 1_000_000, warningPercent: 90 },
    });

    // Without warningPercent, the threshold stays what it was.
    await expectStatus(
      await call("PUT", `/namespaces/${org}/quota`, { as: root, body: { limitBytes: 5 } }),
      200,
    );
    expect(await quotaOf(org)).toMatchObject({ limitBytes: 5, warningPercent: 90 });

    const mark = events.length;
    await expectStatus(await call("DELETE", `/namespaces/${org}/quota`, { as: root }), 204);
    expect(eventSince(mark, "quota.delete")).toMatchObject({ namespace: org });
    expect(await quotaOf(org)).toMatchObject({ limitBytes: null });
    // Removing a limit that is not there changes nothing, and says nothing.
    const after = events.length;
    await expectStatus(await call("DELETE", `/namespaces/${org}/quota`, { as: root }), 204);
    expect(events.length).toBe(after);
  });

  it("refuses organization admins and members (403) and outsiders (404); nothing changes", async () => {
    const [owner, member, outsider] = [await makeUser(), await makeUser(), await makeUser()];
    const org = await orgWith(owner, member);
    await expectStatus(
      await call("PUT", `/namespaces/${org}/quota`, {
        as: await admin(),
        body: { limitBytes: 4096 },
      }),
      200,
    );
    const before = await quotaOf(org);
    for (const [who, status] of [
      [owner, 403],
      [member, 403],
      [outsider, 404],
    ] as const) {
      const refusal = await expectNoChange(
        () => call("PUT", `/namespaces/${org}/quota`, { as: who, body: { limitBytes: 1 << 30 } }),
        status,
      );
      if (status === 403) expect(refusal.message).toContain("only superusers");
      await expectNoChange(() => call("DELETE", `/namespaces/${org}/quota`, { as: who }), status);
    }
    await expectNoChange(
      () => call("PUT", `/namespaces/${org}/quota`, { body: { limitBytes: 1 } }),
      401,
    );
    expect(await quotaOf(org)).toEqual(before);
  });

  it("refuses a user setting their own namespace's quota", async () => {
    const user = await makeUser();
    await expectNoChange(
      () => call("PUT", `/namespaces/${user.name}/quota`, { as: user, body: { limitBytes: 1 } }),
      403,
      "FORBIDDEN",
    );
    expect(await quotaOf(user.name)).toMatchObject({ limitBytes: null });
  });

  it.each([
    ["no limit", {}],
    ["a negative limit", { limitBytes: -1 }],
    ["a fractional limit", { limitBytes: 1.5 }],
    ["a string limit", { limitBytes: "10GB" }],
    ["a threshold of 0", { limitBytes: 10, warningPercent: 0 }],
    ["a threshold over 100", { limitBytes: 10, warningPercent: 101 }],
    ["an unknown field", { limitBytes: 10, hard: true }],
  ])("refuses %s with 400 and changes nothing", async (_label, body) => {
    const org = await orgWith(await makeUser(), await makeUser());
    const root = await admin();
    await expectNoChange(
      () => call("PUT", `/namespaces/${org}/quota`, { as: root, body }),
      400,
      "INVALID_REQUEST",
    );
    expect(await quotaOf(org)).toMatchObject({ limitBytes: null, warningPercent: 80 });
  });

  it("refuses a superuser a namespace that does not exist (404)", async () => {
    const root = await admin();
    await expectNoChange(
      () =>
        call("PUT", `/namespaces/${unique("none")}/quota`, { as: root, body: { limitBytes: 1 } }),
      404,
      "NOT_FOUND",
    );
  });
});
