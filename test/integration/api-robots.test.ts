// Management API: robot accounts of a namespace, for its administrators; tokens shown once,
// regenerated and revoked with immediate effect on the registry's credential check.
import { env } from "cloudflare:test";
import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { beforeEach, describe, expect, it } from "vitest";
import { namespaces, permissions, robots } from "../../schema/db/d1.ts";
import { authenticate } from "../../workers/registry/auth/principals.ts";
import { hashSecretToken } from "../../workers/registry/auth/secret-tokens.ts";
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
  unique,
} from "./api-helpers.ts";

const orm = drizzle(env.DB);

beforeEach(() => {
  events.length = 0;
});

interface CreatedRobot {
  name: string;
  shortname: string;
  namespace: string;
  description: string | null;
  token: string;
}

describe("robots in a user's namespace", () => {
  it("creates a robot whose token is shown once, stored hashed, and logs in", async () => {
    const user = await makeUser();
    const res = await expectStatus(
      await call("POST", `/namespaces/${user.name}/robots`, {
        as: user,
        body: { name: "ci", description: "builds on main" },
      }),
      201,
    );
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    const robot = await json<CreatedRobot>(res);
    expect(robot).toMatchObject({
      name: `${user.name}+ci`,
      shortname: "ci",
      namespace: user.name,
      description: "builds on main",
    });
    expect(robot.token).toMatch(/^err_[A-Za-z0-9_-]{43}$/);
    const row = await orm.select().from(robots).where(eq(robots.namespace, user.name)).get();
    expect(row?.tokenHash).toBe(await hashSecretToken(robot.token));
    expect(eventSince(0, "robot.create")).toMatchObject({
      namespace: user.name,
      metadata: { robot: `${user.name}+ci` },
    });
    expect(await authenticate(env.DB, robot.name, robot.token)).toMatchObject({
      kind: "robot",
      name: robot.name,
    });
  });

  it("accepts the full name, refuses another namespace's, duplicates and bad names", async () => {
    const user = await makeUser();
    const path = `/namespaces/${user.name}/robots`;
    await expectStatus(
      await call("POST", path, { as: user, body: { name: `${user.name}+full` } }),
      201,
    );
    await expectNoChange(() => call("POST", path, { as: user, body: { name: "full" } }), 409);
    await expectNoChange(() => call("POST", path, { as: user, body: { name: "other+x" } }), 400);
    await expectNoChange(() => call("POST", path, { as: user, body: { name: "Bad" } }), 400);
    await expectNoChange(() => call("POST", path, { as: user, body: {} }), 400);
    await expectNoChange(
      () => call("POST", path, { as: user, body: { name: "d", description: "x".repeat(501) } }),
      400,
    );
  });

  it("lists robots a page at a time, without secrets", async () => {
    const user = await makeUser();
    const path = `/namespaces/${user.name}/robots`;
    for (const name of ["a", "b", "c"]) {
      await expectStatus(await call("POST", path, { as: user, body: { name } }), 201);
    }
    const first = await json<{ robots: Record<string, unknown>[]; next_cursor: string }>(
      await call("GET", `${path}?limit=2`, { as: user }),
    );
    expect(first.robots.map((r) => r.shortname)).toEqual(["a", "b"]);
    expect(Object.keys(first.robots[0]!).sort()).toEqual(
      ["createdAt", "description", "name", "namespace", "shortname"].sort(),
    );
    const second = await json<{ robots: { shortname: string }[]; next_cursor: null }>(
      await call("GET", `${path}?limit=2&cursor=${first.next_cursor}`, { as: user }),
    );
    expect(second.robots.map((r) => r.shortname)).toEqual(["c"]);
    expect(second.next_cursor).toBeNull();
    const one = await call("GET", `${path}/${user.name}+b`, { as: user });
    expect((await json(await expectStatus(one, 200))).name).toBe(`${user.name}+b`);
    await expectApiError(await call("GET", `${path}/zz`, { as: user }), 404);
  });

  it("regenerates a token: the old one stops working at once", async () => {
    const user = await makeUser();
    const path = `/namespaces/${user.name}/robots`;
    const robot = await json<CreatedRobot>(
      await call("POST", path, { as: user, body: { name: "ci" } }),
    );
    // Warm the registry's credential cache with the old token.
    expect(await authenticate(env.DB, robot.name, robot.token)).not.toBeNull();
    const mark = events.length;
    const res = await expectStatus(await call("POST", `${path}/ci/regenerate`, { as: user }), 200);
    const renewed = await json<CreatedRobot>(res);
    expect(renewed.token).toMatch(/^err_/);
    expect(renewed.token).not.toBe(robot.token);
    expect(eventSince(mark, "robot.token.regenerate").metadata).toEqual({ robot: robot.name });
    expect(await authenticate(env.DB, robot.name, robot.token)).toBeNull();
    expect(await authenticate(env.DB, robot.name, renewed.token)).toMatchObject({ kind: "robot" });
  });

  it("deletes a robot, its permissions and its access at once", async () => {
    const user = await makeUser();
    const path = `/namespaces/${user.name}/robots`;
    const robot = await json<CreatedRobot>(
      await call("POST", path, { as: user, body: { name: "ci" } }),
    );
    await expectStatus(
      await call("POST", "/repositories", { as: user, body: { name: `${user.name}/app` } }),
      201,
    );
    await expectStatus(
      await call("PUT", `/repositories/${user.name}/app/permissions/robot/ci`, {
        as: user,
        body: { role: "write" },
      }),
      200,
    );
    expect(await authenticate(env.DB, robot.name, robot.token)).not.toBeNull();
    const mark = events.length;
    await expectStatus(await call("DELETE", `${path}/${robot.name}`, { as: user }), 204);
    expect(eventSince(mark, "robot.delete").metadata).toEqual({ robot: robot.name });
    expect(await authenticate(env.DB, robot.name, robot.token)).toBeNull();
    expect(
      await orm
        .select()
        .from(permissions)
        .where(eq(permissions.repository, `${user.name}/app`))
        .all(),
    ).toEqual([]);
    await expectNoChange(() => call("DELETE", `${path}/ci`, { as: user }), 404);
  });

  it("creates the user's namespace row when an older account has none", async () => {
    const user = await makeUser();
    await orm.delete(namespaces).where(eq(namespaces.name, user.name));
    await expectStatus(
      await call("POST", `/namespaces/${user.name}/robots`, { as: user, body: { name: "ci" } }),
      201,
    );
    expect(
      (await orm.select().from(namespaces).where(eq(namespaces.name, user.name)).get())?.kind,
    ).toBe("user");
  });
});

describe("who may manage robots", () => {
  it("org admins may; members get 403; outsiders and other users' namespaces 404", async () => {
    const owner = await makeUser();
    const member = await makeUser();
    const outsider = await makeUser();
    const org = unique("org");
    await call("POST", "/organizations", { as: owner, body: { name: org } });
    await call("POST", `/organizations/${org}/teams`, {
      as: owner,
      body: { name: "r", role: "creator" },
    });
    await call("PUT", `/organizations/${org}/teams/r/members/${member.name}`, { as: owner });
    const path = `/namespaces/${org}/robots`;
    await expectStatus(await call("POST", path, { as: owner, body: { name: "ci" } }), 201);

    for (const [who, status] of [
      [member, 403],
      [outsider, 404],
    ] as const) {
      await expectNoChange(() => call("POST", path, { as: who, body: { name: "x" } }), status);
      await expectNoChange(() => call("GET", path, { as: who }), status);
      await expectNoChange(() => call("GET", `${path}/ci`, { as: who }), status);
      await expectNoChange(() => call("DELETE", `${path}/ci`, { as: who }), status);
      await expectNoChange(() => call("POST", `${path}/ci/regenerate`, { as: who }), status);
    }
    const others = `/namespaces/${owner.name}/robots`;
    await expectNoChange(() => call("POST", others, { as: outsider, body: { name: "x" } }), 404);
    await expectNoChange(() => call("GET", others, { as: outsider }), 404);
    const missing = await expectNoChange(
      () => call("GET", `/namespaces/${unique("nope")}/robots`, { as: outsider }),
      404,
    );
    expect(missing.message).toMatch(/not found/);
    await expectNoChange(() => call("GET", path), 401);
  });

  it("superusers may manage any namespace's robots", async () => {
    const root = await admin();
    const user = await makeUser();
    await expectStatus(
      await call("POST", `/namespaces/${user.name}/robots`, { as: root, body: { name: "ops" } }),
      201,
    );
    const list = await json<{ robots: { name: string }[] }>(
      await call("GET", `/namespaces/${user.name}/robots`, { as: user }),
    );
    expect(list.robots.map((r) => r.name)).toEqual([`${user.name}+ops`]);
  });
});
