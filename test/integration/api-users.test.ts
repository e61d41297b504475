// Management API: authentication (app token as Bearer, Basic with password or app token, robots
// refused, failed logins announced), users (POST /users, GET/PATCH /user) and app tokens.
import { env } from "cloudflare:test";
import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { beforeEach, describe, expect, it } from "vitest";
import { appTokens, namespaces, robots, users } from "../../schema/db/d1.ts";
import { hashSecretToken, newSecretToken } from "../../workers/registry/auth/secret-tokens.ts";
import {
  admin,
  basic,
  call,
  eventSince,
  events,
  expectApiError,
  expectNoChange,
  expectStatus,
  json,
  kindsSince,
  makeUser,
  unique,
} from "./api-helpers.ts";

const orm = drizzle(env.DB);

beforeEach(() => {
  events.length = 0;
});

describe("authentication", () => {
  it("asks anonymous callers to authenticate, with a challenge and no event", async () => {
    const res = await call("GET", "/user");
    expect(res.headers.get("WWW-Authenticate")).toMatch(/^Bearer /);
    await expectApiError(res, 401, "UNAUTHORIZED");
    expect(events).toEqual([]);
  });

  it("accepts an app token as Bearer", async () => {
    const user = await makeUser();
    const res = await expectStatus(await call("GET", "/user", { as: user }), 200);
    const me = await json(res);
    expect(me).toMatchObject({ username: user.name, superuser: false, authenticatedWith: "token" });
  });

  it("accepts Basic with a password and with an app token", async () => {
    const user = await makeUser({ password: "correct horse battery" });
    const byPassword = await json(
      await expectStatus(await call("GET", "/user", { as: basic(user.name, user.password!) }), 200),
    );
    expect(byPassword).toMatchObject({ username: user.name, authenticatedWith: "password" });
    const byToken = await json(
      await expectStatus(await call("GET", "/user", { as: basic(user.name, user.token) }), 200),
    );
    expect(byToken).toMatchObject({ username: user.name, authenticatedWith: "token" });
  });

  it("refuses a wrong token or password with 401 and emits login.failed", async () => {
    const user = await makeUser({ password: "correct horse battery" });
    await expectNoChange(
      () => call("GET", "/user", { as: { authorization: `Bearer ${newSecretToken("app")}` } }),
      401,
      "UNAUTHORIZED",
    );
    await expectNoChange(
      () => call("GET", "/user", { as: basic(user.name, "wrong password") }),
      401,
      "UNAUTHORIZED",
    );
    await expectNoChange(() => call("GET", "/user", { as: basic("", "") }), 401, "UNAUTHORIZED");
    expect(kindsSince(0)).toEqual(["login.failed", "login.failed", "login.failed"]);
    expect(events[0]!.metadata).toMatchObject({ via: "management-api", scheme: "bearer" });
    expect(events[1]).toMatchObject({ actor: { kind: "anonymous", name: user.name } });
  });

  it("refuses registry JWTs and other schemes as Bearer or Authorization", async () => {
    await expectApiError(
      await call("GET", "/user", { as: { authorization: "Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig" } }),
      401,
    );
    await expectApiError(await call("GET", "/user", { as: { authorization: "Digest x=y" } }), 401);
  });

  it("refuses revoked, expired and disabled accounts' tokens", async () => {
    const revoked = await makeUser();
    await orm
      .update(appTokens)
      .set({ revokedAt: new Date() })
      .where(eq(appTokens.id, revoked.tokenId));
    await expectApiError(await call("GET", "/user", { as: revoked }), 401);
    const expired = await makeUser();
    await orm
      .update(appTokens)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(appTokens.id, expired.tokenId));
    await expectApiError(await call("GET", "/user", { as: expired }), 401);
    const disabled = await makeUser();
    await orm.update(users).set({ disabled: true }).where(eq(users.id, disabled.id));
    await expectApiError(await call("GET", "/user", { as: disabled }), 401);
  });

  it("refuses robots with 403", async () => {
    const owner = await makeUser();
    const token = newSecretToken("robot");
    await orm.insert(robots).values({
      id: crypto.randomUUID(),
      namespace: owner.name,
      shortname: "ci",
      tokenHash: await hashSecretToken(token),
      createdAt: new Date(),
    });
    const error = await expectNoChange(
      () => call("GET", "/user", { as: basic(`${owner.name}+ci`, token) }),
      403,
      "FORBIDDEN",
    );
    expect(error.message).toMatch(/robot/);
    expect(events).toEqual([]);
  });

  it("answers unknown endpoints with a JSON 404 (after authentication)", async () => {
    const user = await makeUser();
    await expectApiError(await call("GET", "/nope", { as: user }), 404, "NOT_FOUND");
    await expectApiError(await call("GET", "/nope"), 401);
  });

  it("mounts the audit log (GET /logs) behind the same authentication", async () => {
    const user = await makeUser();
    const res = await expectStatus(await call("GET", "/logs", { as: user }), 200);
    expect(await json(res)).toMatchObject({ logs: expect.any(Array) });
    await expectApiError(await call("GET", "/logs"), 401);
  });

  it("records the last use of an app token", async () => {
    const user = await makeUser();
    await call("GET", "/user", { as: user });
    const row = await orm.select().from(appTokens).where(eq(appTokens.id, user.tokenId)).get();
    expect(row?.lastUsedAt).toBeInstanceOf(Date);
  });
});

describe("POST /users", () => {
  it("lets a superuser create a user with a namespace, who can then log in", async () => {
    const root = await admin();
    const username = unique("new");
    const res = await expectStatus(
      await call("POST", "/users", {
        as: root,
        body: { username, email: `${username}@example.test`, password: "a long password" },
      }),
      201,
    );
    expect(await json(res)).toMatchObject({
      username,
      superuser: false,
      email: `${username}@example.test`,
    });
    const ns = await orm.select().from(namespaces).where(eq(namespaces.name, username)).get();
    expect(ns?.kind).toBe("user");
    expect(eventSince(0, "user.create")).toMatchObject({
      namespace: username,
      actor: { kind: "token", name: root.name },
    });
    const me = await call("GET", "/user", { as: basic(username, "a long password") });
    expect((await json(await expectStatus(me, 200))).username).toBe(username);
  });

  it("refuses non-superusers with 403 and changes nothing", async () => {
    const user = await makeUser();
    await expectNoChange(
      () =>
        call("POST", "/users", {
          as: user,
          body: { username: unique(), password: "a long password" },
        }),
      403,
      "FORBIDDEN",
    );
  });

  it("refuses taken names (users or organizations) with 409", async () => {
    const root = await admin();
    const other = await makeUser();
    await expectNoChange(
      () =>
        call("POST", "/users", {
          as: root,
          body: { username: other.name, password: "a long password" },
        }),
      409,
      "CONFLICT",
    );
    const org = unique("org");
    await expectStatus(
      await call("POST", "/organizations", { as: other, body: { name: org } }),
      201,
    );
    await expectNoChange(
      () =>
        call("POST", "/users", { as: root, body: { username: org, password: "a long password" } }),
      409,
    );
  });

  it("validates the body", async () => {
    const root = await admin();
    const bad = [
      { username: "Bad Name", password: "a long password" },
      { username: "x+y", password: "a long password" },
      { username: unique(), password: "short" },
      { username: unique(), password: "a long password", email: "not-an-email" },
      { username: unique(), password: "a long password", superuser: "yes" },
      { username: unique(), password: "a long password", role: "admin" },
      { password: "a long password" },
      "not json",
      "[]",
    ];
    for (const body of bad) {
      const error = await expectNoChange(() => call("POST", "/users", { as: root, body }), 400);
      expect(error.code).toBe("INVALID_REQUEST");
    }
  });
});

describe("GET /user", () => {
  it("describes the caller and their organizations", async () => {
    const user = await makeUser();
    const org = unique("org");
    await expectStatus(
      await call("POST", "/organizations", { as: user, body: { name: org } }),
      201,
    );
    const me = await json(await expectStatus(await call("GET", "/user", { as: user }), 200));
    expect(me).toMatchObject({
      username: user.name,
      email: `${user.name}@example.test`,
      organizations: [{ name: org, role: "admin" }],
    });
    expect(JSON.stringify(me)).not.toMatch(/password|hash/i);
  });
});

describe("PATCH /user", () => {
  it("changes the password only with the current one; the old one stops working at once", async () => {
    const user = await makeUser({ password: "first password" });
    // Warm the registry's credential cache with the old password.
    await expectStatus(await call("GET", "/user", { as: basic(user.name, "first password") }), 200);
    const error = await expectNoChange(
      () =>
        call("PATCH", "/user", {
          as: user,
          body: { currentPassword: "not it at all", newPassword: "second password" },
        }),
      403,
      "FORBIDDEN",
    );
    expect(error.message).toMatch(/current password/);
    expect(kindsSince(0)).toEqual(["login.failed"]);

    const mark = events.length;
    const res = await call("PATCH", "/user", {
      as: user,
      body: { currentPassword: "first password", newPassword: "second password" },
    });
    expect((await json(await expectStatus(res, 200))).username).toBe(user.name);
    expect(eventSince(mark, "user.update").metadata).toEqual({ fields: ["password"] });
    await expectApiError(
      await call("GET", "/user", { as: basic(user.name, "first password") }),
      401,
    );
    await expectStatus(
      await call("GET", "/user", { as: basic(user.name, "second password") }),
      200,
    );
  });

  it("changes the email", async () => {
    const user = await makeUser({ password: "first password" });
    const res = await call("PATCH", "/user", {
      as: user,
      body: { currentPassword: "first password", email: "new@example.test" },
    });
    expect(await json(await expectStatus(res, 200))).toMatchObject({ email: "new@example.test" });
    expect(eventSince(0, "user.update").metadata).toEqual({ fields: ["email"] });
  });

  it("refuses to change the bootstrap admin's password (it comes from the configuration)", async () => {
    const bootstrap = await makeUser({
      name: env.REGISTRY_ADMIN_USER,
      superuser: true,
      password: "first password",
    });
    const error = await expectNoChange(
      () =>
        call("PATCH", "/user", {
          as: bootstrap,
          body: { currentPassword: "first password", newPassword: "second password" },
        }),
      409,
    );
    expect(error.message).toMatch(/REGISTRY_ADMIN_PASSWORD/);
  });

  it("refuses empty changes, weak passwords and missing current passwords", async () => {
    const user = await makeUser({ password: "first password" });
    for (const body of [
      { currentPassword: "first password" },
      { currentPassword: "first password", newPassword: "short" },
      { newPassword: "second password" },
    ]) {
      await expectNoChange(
        () => call("PATCH", "/user", { as: user, body }),
        400,
        "INVALID_REQUEST",
      );
    }
  });
});

describe("app tokens", () => {
  it("creates a token shown once, stored as its SHA-256, that authenticates", async () => {
    const user = await makeUser();
    const res = await expectStatus(
      await call("POST", "/user/tokens", {
        as: user,
        body: { name: "ci laptop", expiresInDays: 30 },
      }),
      201,
    );
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    const created = await json<{ id: string; token: string; name: string; expiresAt: string }>(res);
    expect(created.token).toMatch(/^era_[A-Za-z0-9_-]{43}$/);
    expect(created.name).toBe("ci laptop");
    const days = (Date.parse(created.expiresAt) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThanOrEqual(30);
    const row = await orm.select().from(appTokens).where(eq(appTokens.id, created.id)).get();
    expect(row?.tokenHash).toBe(await hashSecretToken(created.token));
    expect(JSON.stringify(row)).not.toContain(created.token);
    expect(eventSince(0, "token.create")).toMatchObject({
      namespace: user.name,
      metadata: { tokenId: created.id, name: "ci laptop" },
    });
    const me = await call("GET", "/user", { as: { authorization: `Bearer ${created.token}` } });
    expect((await json(await expectStatus(me, 200))).username).toBe(user.name);
  });

  it("validates name and expiry", async () => {
    const user = await makeUser();
    for (const body of [
      {},
      { name: "" },
      { name: "x", expiresInDays: 0 },
      { name: "x", expiresInDays: 1.5 },
      { name: "x", expiresInDays: "3" },
      { name: "x", expiresInDays: 100_000 },
    ]) {
      await expectNoChange(() => call("POST", "/user/tokens", { as: user, body }), 400);
    }
  });

  it("lists the caller's tokens without secrets, newest first, a page at a time", async () => {
    const user = await makeUser();
    const other = await makeUser();
    for (const name of ["a", "b", "c", "d"]) {
      await expectStatus(await call("POST", "/user/tokens", { as: user, body: { name } }), 201);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor ? `?limit=2&cursor=${cursor}` : "?limit=2";
      const page = await json<{ tokens: Record<string, unknown>[]; next_cursor: string | null }>(
        await expectStatus(await call("GET", `/user/tokens${query}`, { as: user }), 200),
      );
      for (const token of page.tokens) {
        expect(Object.keys(token).sort()).toEqual(
          ["createdAt", "expiresAt", "id", "lastUsedAt", "name", "revokedAt"].sort(),
        );
        seen.push(token.name as string);
      }
      cursor = page.next_cursor;
      pages += 1;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(5);
    expect(new Set(seen)).toEqual(new Set(["a", "b", "c", "d", "test"]));
    const others = await json<{ tokens: { name: string }[] }>(
      await call("GET", "/user/tokens", { as: other }),
    );
    expect(others.tokens.map((t) => t.name)).toEqual(["test"]);
    await expectApiError(await call("GET", "/user/tokens?cursor=garbage!", { as: user }), 400);
    await expectApiError(await call("GET", "/user/tokens?limit=0", { as: user }), 400);
  });

  it("revokes a token: it stops working at once, on Bearer and on Basic", async () => {
    const user = await makeUser();
    const created = await json<{ id: string; token: string }>(
      await call("POST", "/user/tokens", { as: user, body: { name: "to revoke" } }),
    );
    // Warm the registry's credential cache with the token over Basic.
    await expectStatus(await call("GET", "/user", { as: basic(user.name, created.token) }), 200);
    const mark = events.length;
    await expectStatus(await call("DELETE", `/user/tokens/${created.id}`, { as: user }), 204);
    expect(eventSince(mark, "token.revoke").metadata).toMatchObject({ tokenId: created.id });
    const row = await orm.select().from(appTokens).where(eq(appTokens.id, created.id)).get();
    expect(row?.revokedAt).toBeInstanceOf(Date);
    await expectApiError(
      await call("GET", "/user", { as: { authorization: `Bearer ${created.token}` } }),
      401,
    );
    await expectApiError(await call("GET", "/user", { as: basic(user.name, created.token) }), 401);
    // Again: nothing changes, nothing is announced.
    const again = events.length;
    await expectStatus(await call("DELETE", `/user/tokens/${created.id}`, { as: user }), 204);
    expect(kindsSince(again)).toEqual([]);
  });

  it("does not let anyone revoke another user's token (404, nothing changes)", async () => {
    const user = await makeUser();
    const victim = await makeUser();
    await expectNoChange(
      () => call("DELETE", `/user/tokens/${victim.tokenId}`, { as: user }),
      404,
      "NOT_FOUND",
    );
    await expectStatus(await call("GET", "/user", { as: victim }), 200);
  });
});
