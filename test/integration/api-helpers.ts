// Shared helpers for the management API suites (api-*.test.ts): the API mounted the way app.ts
// mounts it, with a recording EventSink so each test can see what was announced; accounts made
// straight in D1 (a superuser included); a snapshot of every identity table to prove that a
// refused call changed nothing.
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { drizzle } from "drizzle-orm/d1";
import { Hono } from "hono";
import { expect } from "vitest";
import { appTokens, namespaces, users } from "../../schema/db/d1.ts";
import type { EventKind, RegistryEvent } from "../../schema/events.ts";
import { managementApi } from "../../workers/registry/api/index.ts";
import { hashPassword } from "../../workers/registry/auth/passwords.ts";
import { hashSecretToken, newSecretToken } from "../../workers/registry/auth/secret-tokens.ts";
import type { AppEnv } from "../../workers/registry/env.ts";
import type { RegistryServices } from "../../workers/registry/services/registry-services.ts";
import { objectDirectory } from "../../workers/registry/storage/repository-stubs.ts";

export const ORIGIN = "http://registry.test";

/** Every event the API emitted, in order; tests clear it in beforeEach. */
export const events: RegistryEvent[] = [];

const harness = new Hono<AppEnv>();
harness.use("*", async (c, next) => {
  // The management API uses only `objects` of the registry services (to empty a repository).
  c.set("services", { objects: objectDirectory(c.env) } as unknown as RegistryServices);
  c.set("events", {
    emit(event) {
      events.push({ id: crypto.randomUUID(), at: Date.now(), ...event });
    },
  });
  await next();
});
harness.route("/api/v1", managementApi);

export interface TestUser {
  id: string;
  name: string;
  /** An app token (era_…) made for the user in D1. */
  token: string;
  tokenId: string;
  password?: string;
  superuser: boolean;
}

export type As = TestUser | { authorization: string } | undefined;

/** One API call. `as` is a user (their app token as Bearer), a raw Authorization, or anonymous. */
export async function call(
  method: string,
  path: string,
  options: {
    as?: As;
    body?: unknown;
    /** Sent as is, instead of `body` as JSON (set its Content-Type in `headers`). */
    raw?: BodyInit;
    headers?: Record<string, string>;
  } = {},
): Promise<Response> {
  const headers = new Headers(options.headers);
  if (options.as && "authorization" in options.as) {
    headers.set("Authorization", options.as.authorization);
  } else if (options.as) {
    headers.set("Authorization", `Bearer ${options.as.token}`);
  }
  let body: BodyInit | undefined = options.raw;
  if (options.body !== undefined) {
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    headers.set("Content-Type", "application/json");
  }
  const ctx = createExecutionContext();
  const res = await harness.request(`${ORIGIN}/api/v1${path}`, { method, headers, body }, env, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

export function basic(user: string, secret: string): { authorization: string } {
  return { authorization: `Basic ${btoa(`${user}:${secret}`)}` };
}

let counter = 0;
/** A name no other test uses: lowercase, valid as a namespace, team or robot name. */
export function unique(prefix = "n"): string {
  counter += 1;
  return `${prefix}${Date.now().toString(36)}${counter}${Math.floor(Math.random() * 1e6).toString(36)}`;
}

/** A user made straight in D1 (with their namespace and an app token); hashing only if asked. */
export async function makeUser(
  options: { name?: string; superuser?: boolean; password?: string } = {},
): Promise<TestUser> {
  const orm = drizzle(env.DB);
  const name = options.name ?? unique("u");
  const id = crypto.randomUUID();
  const token = newSecretToken("app");
  const tokenId = crypto.randomUUID();
  const now = new Date();
  await orm.batch([
    orm.insert(users).values({
      id,
      username: name,
      email: `${name}@example.test`,
      passwordHash: options.password ? await hashPassword(options.password) : null,
      superuser: options.superuser ?? false,
      createdAt: now,
    }),
    orm.insert(namespaces).values({ name, kind: "user", createdAt: now }),
    orm.insert(appTokens).values({
      id: tokenId,
      userId: id,
      name: "test",
      tokenHash: await hashSecretToken(token),
      createdAt: now,
    }),
  ]);
  return {
    id,
    name,
    token,
    tokenId,
    superuser: options.superuser ?? false,
    ...(options.password ? { password: options.password } : {}),
  };
}

let superuser: Promise<TestUser> | undefined;
/** One superuser per test file (the bootstrap admin's stand-in). */
export function admin(): Promise<TestUser> {
  superuser ??= makeUser({ name: unique("root"), superuser: true });
  return superuser;
}

export async function json<T = Record<string, unknown>>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

/** Asserts the API's error shape: status, JSON `{error: {code, message}}`, and the code. */
export async function expectApiError(
  res: Response,
  status: number,
  code?: string,
): Promise<{ code: string; message: string }> {
  const text = await res.text();
  expect(res.status, `status of ${text}`).toBe(status);
  expect(res.headers.get("Content-Type") ?? "").toMatch(/^application\/json/);
  const body = JSON.parse(text) as { error: { code: string; message: string } };
  expect(typeof body.error.code).toBe("string");
  expect(body.error.message.length).toBeGreaterThan(0);
  if (code) expect(body.error.code).toBe(code);
  return body.error;
}

export async function expectStatus(res: Response, status: number): Promise<Response> {
  if (res.status !== status) {
    expect.fail(`expected ${status}, got ${res.status}: ${await res.clone().text()}`);
  }
  return res;
}

const TABLES: Record<string, string> = {
  users: "SELECT * FROM users ORDER BY id",
  namespaces: "SELECT * FROM namespaces ORDER BY name",
  teams: "SELECT * FROM teams ORDER BY id",
  team_members: "SELECT * FROM team_members ORDER BY team_id, user_id",
  robots: "SELECT * FROM robots ORDER BY id",
  // last_used_at is bookkeeping a refused call with a valid token may update.
  app_tokens:
    "SELECT id, user_id, name, token_hash, created_at, expires_at, revoked_at FROM app_tokens ORDER BY id",
  repositories: "SELECT * FROM repositories ORDER BY name",
  permissions: "SELECT * FROM permissions ORDER BY repository, principal_kind, principal_id",
  default_permissions:
    "SELECT * FROM default_permissions ORDER BY org, principal_kind, principal_id",
};

export async function snapshot(): Promise<Record<string, unknown[]>> {
  const entries = await Promise.all(
    Object.entries(TABLES).map(
      async ([table, query]) => [table, (await env.DB.prepare(query).all()).results] as const,
    ),
  );
  return Object.fromEntries(entries);
}

/**
 * Runs a call that must be refused and proves it changed nothing: every identity table is the
 * same afterwards and no event other than `login.failed` was emitted.
 */
export async function expectNoChange(
  run: () => Promise<Response>,
  status: number,
  code?: string,
): Promise<{ code: string; message: string }> {
  const before = await snapshot();
  const mark = events.length;
  const error = await expectApiError(await run(), status, code);
  expect(await snapshot()).toEqual(before);
  expect(events.slice(mark).filter((e) => e.kind !== "login.failed")).toEqual([]);
  return error;
}

/** The events emitted since `mark` (an index into `events`), as kinds. */
export function kindsSince(mark: number): EventKind[] {
  return events.slice(mark).map((event) => event.kind);
}

/** The single event of `kind` emitted since `mark`. */
export function eventSince(mark: number, kind: EventKind): RegistryEvent {
  const found = events.slice(mark).filter((event) => event.kind === kind);
  expect(found, `events since ${mark}: ${kindsSince(mark).join(", ")}`).toHaveLength(1);
  return found[0]!;
}
