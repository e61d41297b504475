// Management API: organizations, their teams and members (no change may leave an organization
// without an admin), and their default permissions. Outsiders get 404, members who are not
// admins get 403, and neither changes anything.
import { env } from "cloudflare:test";
import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { beforeEach, describe, expect, it } from "vitest";
import { namespaces, robots, teams } from "../../schema/db/d1.ts";
import {
  admin,
  call,
  eventSince,
  events,
  expectApiError,
  expectNoChange,
  expectStatus,
  json,
  kindsSince,
  makeUser,
  type TestUser,
  unique,
} from "./api-helpers.ts";

const orm = drizzle(env.DB);

beforeEach(() => {
  events.length = 0;
});

/** An organization owned by `owner`, plus a member-role team "readers" holding `member`. */
async function orgWith(owner: TestUser, member?: TestUser): Promise<string> {
  const org = unique("org");
  await expectStatus(await call("POST", "/organizations", { as: owner, body: { name: org } }), 201);
  if (member) {
    await expectStatus(
      await call("POST", `/organizations/${org}/teams`, {
        as: owner,
        body: { name: "readers", role: "member" },
      }),
      201,
    );
    await expectStatus(
      await call("PUT", `/organizations/${org}/teams/readers/members/${member.name}`, {
        as: owner,
      }),
      201,
    );
  }
  return org;
}

describe("organizations", () => {
  it("creates an organization with an owners admin team holding its creator", async () => {
    const owner = await makeUser();
    const org = unique("org");
    const res = await expectStatus(
      await call("POST", "/organizations", { as: owner, body: { name: org } }),
      201,
    );
    expect(await json(res)).toMatchObject({ name: org, role: "admin", admin: true });
    expect((await orm.select().from(namespaces).where(eq(namespaces.name, org)).get())?.kind).toBe(
      "org",
    );
    const owners = await orm.select().from(teams).where(eq(teams.org, org)).all();
    expect(owners.map((t) => [t.name, t.role])).toEqual([["owners", "admin"]]);
    expect(eventSince(0, "organization.create")).toMatchObject({
      namespace: org,
      actor: { kind: "token", name: owner.name },
    });
    const members = await json<{ members: { username: string }[] }>(
      await call("GET", `/organizations/${org}/teams/owners/members`, { as: owner }),
    );
    expect(members.members).toEqual([{ username: owner.name }]);
  });

  it("refuses taken and invalid names", async () => {
    const owner = await makeUser();
    const org = await orgWith(owner);
    const other = await makeUser();
    await expectNoChange(
      () => call("POST", "/organizations", { as: other, body: { name: org } }),
      409,
    );
    await expectNoChange(
      () => call("POST", "/organizations", { as: other, body: { name: owner.name } }),
      409,
    );
    await expectNoChange(
      () => call("POST", "/organizations", { as: other, body: { name: "Not/Valid" } }),
      400,
    );
    await expectNoChange(() => call("POST", "/organizations", { body: { name: unique() } }), 401);
  });

  it("shows an organization to its members and superusers only", async () => {
    const owner = await makeUser();
    const member = await makeUser();
    const outsider = await makeUser();
    const org = await orgWith(owner, member);
    const seen = await json(
      await expectStatus(await call("GET", `/organizations/${org}`, { as: member }), 200),
    );
    expect(seen).toMatchObject({ name: org, role: "member", admin: false });
    const root = await admin();
    expect(
      await json(await expectStatus(await call("GET", `/organizations/${org}`, { as: root }), 200)),
    ).toMatchObject({ role: null, admin: true });
    const hidden = await expectApiError(
      await call("GET", `/organizations/${org}`, { as: outsider }),
      404,
    );
    const missing = await expectApiError(
      await call("GET", `/organizations/${unique("nope")}`, { as: outsider }),
      404,
    );
    // An outsider cannot tell a hidden organization from a missing one.
    expect(hidden.message.replace(org, "X")).toBe(missing.message.replace(/nope\w+/, "X"));
    // A user's namespace is not an organization.
    await expectApiError(await call("GET", `/organizations/${owner.name}`, { as: owner }), 404);
  });

  it("deletes an empty organization with its teams and robots; refuses others", async () => {
    const owner = await makeUser();
    const member = await makeUser();
    const outsider = await makeUser();
    const org = await orgWith(owner, member);
    await expectStatus(
      await call("POST", `/namespaces/${org}/robots`, { as: owner, body: { name: "ci" } }),
      201,
    );
    await expectNoChange(() => call("DELETE", `/organizations/${org}`, { as: outsider }), 404);
    await expectNoChange(() => call("DELETE", `/organizations/${org}`, { as: member }), 403);
    await expectStatus(
      await call("POST", "/repositories", { as: owner, body: { name: `${org}/app` } }),
      201,
    );
    const error = await expectNoChange(
      () => call("DELETE", `/organizations/${org}`, { as: owner }),
      409,
      "CONFLICT",
    );
    expect(error.message).toMatch(/1 repository/);
    await expectStatus(await call("DELETE", `/repositories/${org}/app`, { as: owner }), 204);

    const mark = events.length;
    await expectStatus(await call("DELETE", `/organizations/${org}`, { as: owner }), 204);
    expect(eventSince(mark, "organization.delete").namespace).toBe(org);
    expect(await orm.select().from(teams).where(eq(teams.org, org)).all()).toEqual([]);
    expect(await orm.select().from(robots).where(eq(robots.namespace, org)).all()).toEqual([]);
    await expectApiError(await call("GET", `/organizations/${org}`, { as: owner }), 404);
  });
});

describe("teams", () => {
  it("creates, lists (paged), describes, re-roles and deletes teams", async () => {
    const owner = await makeUser();
    const org = await orgWith(owner);
    const created = await call("POST", `/organizations/${org}/teams`, {
      as: owner,
      body: { name: "builders", role: "creator" },
    });
    expect(await json(await expectStatus(created, 201))).toMatchObject({
      name: "builders",
      organization: org,
      role: "creator",
      members: 0,
    });
    expect(eventSince(0, "team.create").metadata).toEqual({ team: "builders", role: "creator" });

    const first = await json<{ teams: { name: string; members: number }[]; next_cursor: string }>(
      await call("GET", `/organizations/${org}/teams?limit=1`, { as: owner }),
    );
    expect(first.teams.map((t) => t.name)).toEqual(["builders"]);
    const second = await json<{ teams: { name: string; members: number }[]; next_cursor: null }>(
      await call("GET", `/organizations/${org}/teams?limit=1&cursor=${first.next_cursor}`, {
        as: owner,
      }),
    );
    expect(second).toEqual({
      teams: [expect.objectContaining({ name: "owners", members: 1 })],
      next_cursor: null,
    });

    let mark = events.length;
    const patched = await call("PATCH", `/organizations/${org}/teams/builders`, {
      as: owner,
      body: { role: "admin" },
    });
    expect((await json(await expectStatus(patched, 200))).role).toBe("admin");
    expect(eventSince(mark, "team.update" as never).metadata).toEqual({
      team: "builders",
      from: "creator",
      to: "admin",
    });
    mark = events.length;
    await expectStatus(
      await call("PATCH", `/organizations/${org}/teams/builders`, {
        as: owner,
        body: { role: "admin" },
      }),
      200,
    );
    expect(kindsSince(mark)).toEqual([]);

    mark = events.length;
    await expectStatus(
      await call("DELETE", `/organizations/${org}/teams/builders`, { as: owner }),
      204,
    );
    expect(eventSince(mark, "team.delete").metadata).toMatchObject({ team: "builders" });
    await expectApiError(
      await call("GET", `/organizations/${org}/teams/builders`, { as: owner }),
      404,
    );
  });

  it("refuses bad input, duplicates, members who are not admins, and outsiders", async () => {
    const owner = await makeUser();
    const member = await makeUser();
    const outsider = await makeUser();
    const org = await orgWith(owner, member);
    const path = `/organizations/${org}/teams`;
    await expectNoChange(
      () => call("POST", path, { as: owner, body: { name: "readers", role: "member" } }),
      409,
    );
    await expectNoChange(
      () => call("POST", path, { as: owner, body: { name: "x", role: "owner" } }),
      400,
    );
    await expectNoChange(
      () => call("POST", path, { as: owner, body: { name: "X Y", role: "member" } }),
      400,
    );
    for (const [who, status] of [
      [member, 403],
      [outsider, 404],
    ] as const) {
      await expectNoChange(
        () => call("POST", path, { as: who, body: { name: "new", role: "admin" } }),
        status,
      );
      await expectNoChange(() => call("GET", path, { as: who }), status);
      await expectNoChange(
        () => call("PATCH", `${path}/readers`, { as: who, body: { role: "admin" } }),
        status,
      );
      await expectNoChange(() => call("DELETE", `${path}/readers`, { as: who }), status);
      await expectNoChange(
        () => call("PUT", `${path}/readers/members/${who.name}`, { as: who }),
        status,
      );
      await expectNoChange(
        () => call("DELETE", `${path}/readers/members/${member.name}`, { as: who }),
        status,
      );
      await expectNoChange(() => call("GET", `${path}/readers/members`, { as: who }), status);
    }
    await expectNoChange(
      () => call("PATCH", `${path}/nope`, { as: owner, body: { role: "admin" } }),
      404,
    );
    await expectNoChange(() => call("DELETE", `${path}/nope`, { as: owner }), 404);
  });

  it("adds and removes members; a new admin can administer at once", async () => {
    const owner = await makeUser();
    const second = await makeUser();
    const org = await orgWith(owner);
    const path = `/organizations/${org}/teams/owners/members`;
    await expectNoChange(
      () =>
        call("POST", `/organizations/${org}/teams`, {
          as: second,
          body: { name: "t", role: "member" },
        }),
      404,
    );
    await expectStatus(await call("PUT", `${path}/${second.name}`, { as: owner }), 201);
    expect(eventSince(0, "team.member.add").metadata).toMatchObject({
      team: "owners",
      username: second.name,
    });
    let mark = events.length;
    await expectStatus(await call("PUT", `${path}/${second.name}`, { as: owner }), 200);
    expect(kindsSince(mark)).toEqual([]);
    await expectStatus(
      await call("POST", `/organizations/${org}/teams`, {
        as: second,
        body: { name: "t", role: "member" },
      }),
      201,
    );
    const list = await json<{ members: { username: string }[] }>(
      await call("GET", path, { as: second }),
    );
    expect(list.members.map((m) => m.username).sort()).toEqual([owner.name, second.name].sort());

    await expectNoChange(() => call("PUT", `${path}/${unique("ghost")}`, { as: owner }), 404);
    await expectNoChange(() => call("PUT", `${path}/${org}+ci`, { as: owner }), 400);

    mark = events.length;
    await expectStatus(await call("DELETE", `${path}/${owner.name}`, { as: second }), 204);
    expect(eventSince(mark, "team.member.remove").metadata).toEqual({
      team: "owners",
      username: owner.name,
    });
    await expectNoChange(() => call("DELETE", `${path}/${owner.name}`, { as: second }), 404);
    // The removed owner lost admin at once.
    await expectNoChange(() => call("GET", `/organizations/${org}/teams`, { as: owner }), 404);
  });

  it("never leaves an organization without an admin", async () => {
    const owner = await makeUser();
    const org = await orgWith(owner);
    const teamsPath = `/organizations/${org}/teams`;
    const error = await expectNoChange(
      () => call("DELETE", `${teamsPath}/owners/members/${owner.name}`, { as: owner }),
      409,
    );
    expect(error.message).toMatch(/without an administrator/);
    await expectNoChange(() => call("DELETE", `${teamsPath}/owners`, { as: owner }), 409);
    await expectNoChange(
      () => call("PATCH", `${teamsPath}/owners`, { as: owner, body: { role: "member" } }),
      409,
    );
    // With a second admin team holding the same person, the owners team may go.
    await expectStatus(
      await call("POST", teamsPath, { as: owner, body: { name: "admins", role: "admin" } }),
      201,
    );
    await expectStatus(
      await call("PUT", `${teamsPath}/admins/members/${owner.name}`, { as: owner }),
      201,
    );
    await expectStatus(
      await call("PATCH", `${teamsPath}/owners`, { as: owner, body: { role: "member" } }),
      200,
    );
    await expectNoChange(() => call("DELETE", `${teamsPath}/admins`, { as: owner }), 409);
  });

  it("deleting a team removes its repository permissions and default permissions", async () => {
    const owner = await makeUser();
    const org = await orgWith(owner);
    await call("POST", `/organizations/${org}/teams`, {
      as: owner,
      body: { name: "devs", role: "member" },
    });
    await expectStatus(
      await call("POST", "/repositories", { as: owner, body: { name: `${org}/app` } }),
      201,
    );
    await expectStatus(
      await call("PUT", `/repositories/${org}/app/permissions/team/devs`, {
        as: owner,
        body: { role: "write" },
      }),
      200,
    );
    await expectStatus(
      await call("PUT", `/organizations/${org}/default-permissions/team/devs`, {
        as: owner,
        body: { role: "read" },
      }),
      200,
    );
    await expectStatus(
      await call("DELETE", `/organizations/${org}/teams/devs`, { as: owner }),
      204,
    );
    const perms = await json<{ permissions: { kind: string }[] }>(
      await call("GET", `/repositories/${org}/app/permissions`, { as: owner }),
    );
    expect(perms.permissions.filter((p) => p.kind === "team")).toEqual([]);
    const defaults = await json<{ permissions: unknown[] }>(
      await call("GET", `/organizations/${org}/default-permissions`, { as: owner }),
    );
    expect(defaults.permissions).toEqual([]);
  });
});

describe("default permissions", () => {
  it("sets, lists, applies to new repositories, and removes defaults", async () => {
    const owner = await makeUser();
    const reader = await makeUser();
    const org = await orgWith(owner);
    await call("POST", `/organizations/${org}/teams`, {
      as: owner,
      body: { name: "devs", role: "member" },
    });
    await call("POST", `/namespaces/${org}/robots`, { as: owner, body: { name: "ci" } });
    const base = `/organizations/${org}/default-permissions`;
    const grants = [
      ["user", reader.name, "read"],
      ["team", `${org}/devs`, "write"],
      ["robot", `${org}+ci`, "write"],
    ] as const;
    for (const [kind, id, role] of grants) {
      const mark = events.length;
      const res = await call("PUT", `${base}/${kind}/${id}`, { as: owner, body: { role } });
      expect(await json(await expectStatus(res, 200))).toEqual({ kind, name: id, role });
      expect(eventSince(mark, "default-permission.grant")).toMatchObject({
        namespace: org,
        metadata: { kind, name: id, role, previous: null },
      });
    }
    // The same grant again changes nothing.
    const mark = events.length;
    await expectStatus(
      await call("PUT", `${base}/user/${reader.name}`, { as: owner, body: { role: "read" } }),
      200,
    );
    expect(kindsSince(mark)).toEqual([]);

    const listed = await json<{ permissions: { kind: string; name: string; role: string }[] }>(
      await call("GET", base, { as: owner }),
    );
    expect(listed.permissions).toHaveLength(3);
    expect(new Set(listed.permissions.map((p) => `${p.kind}:${p.name}:${p.role}`))).toEqual(
      new Set(grants.map(([k, n, r]) => `${k}:${n}:${r}`)),
    );

    await expectStatus(
      await call("POST", "/repositories", { as: owner, body: { name: `${org}/svc` } }),
      201,
    );
    const onRepo = await json<{ permissions: { kind: string; name: string; role: string }[] }>(
      await call("GET", `/repositories/${org}/svc/permissions`, { as: owner }),
    );
    // ensureRepository also grants the creating org admin an explicit admin permission.
    expect(new Set(onRepo.permissions.map((p) => `${p.kind}:${p.name}:${p.role}`))).toEqual(
      new Set([...grants.map(([k, n, r]) => `${k}:${n}:${r}`), `user:${owner.name}:admin`]),
    );
    // The reader sees the new repository at once.
    await expectStatus(await call("GET", `/repositories/${org}/svc`, { as: reader }), 200);

    const before = events.length;
    await expectStatus(await call("DELETE", `${base}/team/devs`, { as: owner }), 204);
    expect(eventSince(before, "default-permission.revoke").metadata).toMatchObject({
      kind: "team",
      name: `${org}/devs`,
    });
    await expectNoChange(() => call("DELETE", `${base}/team/devs`, { as: owner }), 404);
  });

  it("refuses teams and robots of other namespaces, unknown grantees, and non-admins", async () => {
    const owner = await makeUser();
    const member = await makeUser();
    const outsider = await makeUser();
    const org = await orgWith(owner, member);
    const elsewhere = await orgWith(owner);
    const base = `/organizations/${org}/default-permissions`;
    const body = { role: "read" };
    await expectNoChange(
      () => call("PUT", `${base}/team/${elsewhere}/owners`, { as: owner, body }),
      400,
    );
    await expectNoChange(
      () => call("PUT", `${base}/robot/${elsewhere}+ci`, { as: owner, body }),
      400,
    );
    await expectNoChange(() => call("PUT", `${base}/robot/ci`, { as: owner, body }), 404);
    await expectNoChange(
      () => call("PUT", `${base}/user/${unique("ghost")}`, { as: owner, body }),
      404,
    );
    await expectNoChange(() => call("PUT", `${base}/group/x`, { as: owner, body }), 400);
    await expectNoChange(
      () => call("PUT", `${base}/user/${member.name}`, { as: owner, body: { role: "owner" } }),
      400,
    );
    await expectNoChange(
      () => call("PUT", `${base}/user/${member.name}`, { as: member, body }),
      403,
    );
    await expectNoChange(
      () => call("PUT", `${base}/user/${member.name}`, { as: outsider, body }),
      404,
    );
    await expectNoChange(() => call("GET", base, { as: member }), 403);
    await expectNoChange(() => call("GET", base, { as: outsider }), 404);
  });
});
