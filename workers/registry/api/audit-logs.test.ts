// GET /api/v1/logs and /repositories/:name/pulls on workerd: who sees which rows, the filters,
// newest-first cursor pages, and input errors. Rows are written by the real queue consumer
// (`writeEvents`); accounts, teams and grants are made straight in D1.
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { drizzle } from "drizzle-orm/d1";
import { Hono } from "hono";
import { beforeAll, describe, expect, it } from "vitest";
import {
  namespaces,
  type PermissionRole,
  permissions,
  repositories,
  type TeamRole,
  teamMembers,
  teams,
  type Visibility,
} from "../../../schema/db/d1.ts";
import type { EventKind, RegistryEvent } from "../../../schema/events.ts";
import {
  expectApiError,
  makeUser,
  type TestUser,
  unique,
} from "../../../test/integration/api-helpers.ts";
import type { AppEnv } from "../env.ts";
import { utcDay, writeEvents } from "../queue/consumer.ts";
import { IdentityError } from "../services/identity/errors.ts";
import { renderError } from "./context.ts";
import { managementApi } from "./index.ts";

const harness = new Hono<AppEnv>();
harness.use("*", async (c, next) => {
  c.set("events", { emit() {} });
  await next();
});
harness.route("/api/v1", managementApi);
// As in api/index.ts: the management API renders IdentityErrors once, at the top.
harness.onError((error) => {
  if (error instanceof IdentityError) return renderError(error);
  throw error;
});

async function get(path: string, as?: TestUser): Promise<Response> {
  const headers = new Headers();
  if (as) headers.set("Authorization", `Bearer ${as.token}`);
  const ctx = createExecutionContext();
  const res = await harness.request(`http://registry.test/api/v1${path}`, { headers }, env, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

interface LogEntry {
  id: string;
  at: string;
  kind: string;
  namespace: string | null;
  repository: string | null;
  actor: { kind: string | null; name: string | null };
  clientIp: string | null;
  metadata: Record<string, unknown> | null;
}
interface LogPage {
  logs: LogEntry[];
  next_cursor: string | null;
}

async function logs(query: string, as: TestUser): Promise<LogPage> {
  const res = await get(`/logs${query}`, as);
  if (res.status !== 200) expect.fail(`GET /logs${query}: ${res.status} ${await res.text()}`);
  return (await res.json()) as LogPage;
}

/** Every page of a query, following next_cursor. */
async function allLogs(query: string, as: TestUser, limit = 3): Promise<LogEntry[]> {
  const entries: LogEntry[] = [];
  let cursor: string | null = null;
  do {
    const sep: string = query ? "&" : "?";
    const page = await logs(`${query}${sep}limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`, as);
    expect(page.logs.length).toBeLessThanOrEqual(limit);
    entries.push(...page.logs);
    cursor = page.next_cursor;
  } while (cursor);
  return entries;
}

const orm = drizzle(env.DB);

async function org(name: string, members: [TestUser, TeamRole][]): Promise<void> {
  await orm.insert(namespaces).values({ name, kind: "org", createdAt: new Date() });
  for (const [user, role] of members) {
    const teamId = crypto.randomUUID();
    await orm.insert(teams).values({ id: teamId, org: name, name: `${role}-${user.name}`, role });
    await orm.insert(teamMembers).values({ teamId, userId: user.id });
  }
}

async function repo(name: string, visibility: Visibility = "private"): Promise<void> {
  await orm.insert(repositories).values({
    name,
    namespace: name.split("/")[0]!,
    visibility,
    createdAt: new Date(),
  });
}

async function grant(repository: string, user: TestUser, role: PermissionRole): Promise<void> {
  await orm
    .insert(permissions)
    .values({ repository, principalKind: "user", principalId: user.id, role });
}

const T0 = Date.UTC(2026, 4, 1, 10, 0, 0);
let seq = 0;
function ev(
  kind: EventKind,
  where: { namespace?: string; repository?: string },
  actor = "alice",
): RegistryEvent {
  seq += 1;
  return {
    id: crypto.randomUUID(),
    at: T0 + seq * 1000,
    kind,
    ...where,
    actor: { kind: "user", name: actor },
    clientIp: "198.51.100.9",
    metadata: { n: seq },
  };
}

// One world for the whole file: two organizations, their repositories, and people with every
// kind of standing.
let root: TestUser;
let orgAdmin: TestUser;
let repoAdmin: TestUser;
let reader: TestUser;
let stranger: TestUser;
let acme: string;
let other: string;
let app: string;
let lib: string;
let pub: string;
let otherRepo: string;
const written: RegistryEvent[] = [];

beforeAll(async () => {
  [root, orgAdmin, repoAdmin, reader, stranger] = await Promise.all([
    makeUser({ superuser: true }),
    makeUser(),
    makeUser(),
    makeUser(),
    makeUser(),
  ]);
  acme = unique("acme");
  other = unique("other");
  app = `${acme}/app`;
  lib = `${acme}/lib`;
  pub = `${acme}/pub`;
  otherRepo = `${other}/thing`;
  await org(acme, [
    [orgAdmin, "admin"],
    [reader, "member"],
  ]);
  await org(other, []);
  await repo(app);
  await repo(lib);
  await repo(pub, "public");
  await repo(otherRepo);
  await grant(app, repoAdmin, "admin");
  await grant(app, reader, "read");

  written.push(
    ev("organization.create", { namespace: acme }),
    ev("repository.create", { namespace: acme, repository: app }),
    ev("manifest.push", { namespace: acme, repository: app }),
    ev("tag.push", { namespace: acme, repository: app }),
    ev("manifest.push", { namespace: acme, repository: lib }, "bob"),
    ev("team.create", { namespace: acme }),
    ev("team.member.add", { namespace: acme }),
    ev("repository.create", { namespace: other, repository: otherRepo }),
    ev("token.create", { namespace: repoAdmin.name }, repoAdmin.name),
    {
      ...ev("login.failed", {}, repoAdmin.name),
      actor: { kind: "anonymous", name: repoAdmin.name },
    },
    { ...ev("login.failed", {}, stranger.name), actor: { kind: "anonymous", name: stranger.name } },
    ev("tag.delete", { namespace: acme, repository: app }),
    ev("manifest.pull", { namespace: acme, repository: pub }),
  );
  await writeEvents(env.DB, written);
});

const ids = (entries: LogEntry[]) => entries.map((e) => e.id);
const newestFirst = (events: RegistryEvent[]) =>
  [...events].sort((a, b) => b.at - a.at).map((e) => e.id);
const where = (test: (e: RegistryEvent) => boolean) => newestFirst(written.filter(test));

describe("GET /api/v1/logs", () => {
  it("needs credentials", async () => {
    await expectApiError(await get("/logs"), 401, "UNAUTHORIZED");
  });

  it("shows a superuser everything a filter selects, newest first, over cursor pages", async () => {
    const acmeRows = await allLogs(`?namespace=${acme}`, root);
    expect(ids(acmeRows)).toEqual(where((e) => e.namespace === acme));
    const entry = acmeRows.find((e) => e.id === written[2]!.id)!;
    expect(entry).toEqual({
      id: written[2]!.id,
      at: new Date(written[2]!.at).toISOString(),
      kind: "manifest.push",
      namespace: acme,
      repository: app,
      actor: { kind: "user", name: "alice" },
      clientIp: "198.51.100.9",
      metadata: { n: written[2]!.metadata!.n },
    });
    const otherRows = await allLogs(`?namespace=${other}`, root);
    expect(ids(otherRows)).toEqual(where((e) => e.namespace === other));
  });

  it("pages without gaps or repeats when several rows share a timestamp", async () => {
    const ns = unique("same");
    const at = T0 + 999_000;
    const same = Array.from({ length: 7 }, (_, i) => ({
      ...ev("tag.push", { namespace: ns, repository: `${ns}/r` }),
      at: i < 5 ? at : at + 1,
    }));
    await writeEvents(env.DB, same);
    const rows = await allLogs(`?namespace=${ns}`, root, 2);
    expect(rows).toHaveLength(7);
    expect(new Set(ids(rows)).size).toBe(7);
    expect(rows.slice(0, 2).every((r) => r.at === new Date(at + 1).toISOString())).toBe(true);
  });

  it("shows an organization admin their organization and their own namespace only", async () => {
    const rows = await allLogs("", orgAdmin, 50);
    expect(new Set(rows.map((e) => e.namespace))).toEqual(new Set([acme]));
    expect(ids(rows)).toEqual(where((e) => e.namespace === acme));
    expect(ids(await allLogs(`?namespace=${acme}`, orgAdmin))).toEqual(ids(rows));
    expect(ids(await allLogs(`?repository=${lib}`, orgAdmin))).toEqual(
      where((e) => e.repository === lib),
    );
    await expectApiError(await get(`/logs?namespace=${other}`, orgAdmin), 404, "NOT_FOUND");
    await expectApiError(await get(`/logs?repository=${otherRepo}`, orgAdmin), 404, "NOT_FOUND");
  });

  it("shows a repository admin that repository, their namespace, and failed logins as them", async () => {
    const rows = await allLogs("", repoAdmin, 50);
    expect(ids(rows)).toEqual(
      where(
        (e) =>
          e.repository === app ||
          e.namespace === repoAdmin.name ||
          (e.kind === "login.failed" && e.actor.name === repoAdmin.name),
      ),
    );
    // The namespace filter narrows to the repositories they administer in it.
    expect(ids(await allLogs(`?namespace=${acme}`, repoAdmin))).toEqual(
      where((e) => e.repository === app),
    );
    expect(ids(await allLogs(`?repository=${app}`, repoAdmin))).toEqual(
      where((e) => e.repository === app),
    );
    // lib is private and not theirs: not found. pub is public: visible, so forbidden.
    await expectApiError(await get(`/logs?repository=${lib}`, repoAdmin), 404, "NOT_FOUND");
    await expectApiError(await get(`/logs?repository=${pub}`, repoAdmin), 403, "FORBIDDEN");
  });

  it("refuses readers and strangers as the rest of the API does", async () => {
    await expectApiError(await get(`/logs?repository=${app}`, reader), 403, "FORBIDDEN");
    await expectApiError(await get(`/logs?namespace=${acme}`, reader), 403, "FORBIDDEN");
    await expectApiError(await get(`/logs?repository=${app}`, stranger), 404, "NOT_FOUND");
    await expectApiError(await get(`/logs?namespace=${acme}`, stranger), 404, "NOT_FOUND");
    // Unfiltered, a stranger sees only what concerns them.
    expect(ids(await allLogs("", stranger))).toEqual(
      where((e) => e.kind === "login.failed" && e.actor.name === stranger.name),
    );
    expect(ids(await allLogs("", reader))).toEqual([]);
  });

  it("filters by kind, kind family, actor and time range", async () => {
    const q = `?namespace=${acme}`;
    expect(ids(await allLogs(`${q}&kind=manifest.push`, root))).toEqual(
      where((e) => e.namespace === acme && e.kind === "manifest.push"),
    );
    expect(ids(await allLogs(`${q}&kind=team.*,tag.delete`, root))).toEqual(
      where((e) => e.namespace === acme && (e.kind.startsWith("team.") || e.kind === "tag.delete")),
    );
    expect(ids(await allLogs(`${q}&actor=bob`, root))).toEqual(
      where((e) => e.namespace === acme && e.actor.name === "bob"),
    );
    const from = written[2]!.at;
    const to = written[6]!.at;
    const inRange = where((e) => e.namespace === acme && e.at >= from && e.at < to);
    expect(inRange.length).toBeGreaterThan(0);
    expect(ids(await allLogs(`${q}&since=${from}&until=${to}`, root))).toEqual(inRange);
    const iso = (ms: number) => encodeURIComponent(new Date(ms).toISOString());
    expect(ids(await allLogs(`${q}&since=${iso(from)}&until=${iso(to)}`, root))).toEqual(inRange);
  });

  it("keeps pulls in the log (the consumer also counts them)", async () => {
    expect(ids(await allLogs(`?repository=${pub}&kind=manifest.pull`, root))).toEqual(
      where((e) => e.kind === "manifest.pull"),
    );
  });

  it("rejects bad input with 400", async () => {
    for (const query of [
      "?since=yesterday",
      "?until=2026-13-45T99:00:00Z",
      "?since=2026-05-02&until=2026-05-01",
      "?kind=DROP%20TABLE",
      "?kind=tag.%25",
      "?cursor=not-a-cursor",
      "?limit=0",
      "?repo=acme/app",
      "?repository=Not..Valid",
    ]) {
      await expectApiError(await get(`/logs${query}`, root), 400, "INVALID_REQUEST");
    }
  });
});

describe("GET /api/v1/repositories/:name/pulls", () => {
  it("returns pulls per UTC day to those who may pull, zero-filled", async () => {
    const name = `${acme}/pulled`;
    await repo(name);
    const now = Date.now();
    const yesterday = now - 86_400_000;
    // What the RepositoryObject's pull counter adds to D1.
    await env.DB.batch(
      [
        [utcDay(now), 2],
        [utcDay(yesterday), 1],
      ].map(([day, count]) =>
        env.DB.prepare("INSERT INTO pull_counts (repository, day, count) VALUES (?, ?, ?)").bind(
          name,
          day,
          count,
        ),
      ),
    );

    const res = await get(`/repositories/${name}/pulls?days=3`, orgAdmin);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { days: { day: string; count: number }[]; total: number };
    expect(body).toEqual({
      repository: name,
      days: [
        { day: utcDay(now - 2 * 86_400_000), count: 0 },
        { day: utcDay(yesterday), count: 1 },
        { day: utcDay(now), count: 2 },
      ],
      total: 3,
    });
    await expectApiError(await get(`/repositories/${name}/pulls`, stranger), 404, "NOT_FOUND");
    await expectApiError(await get(`/repositories/${name}/pulls?days=0`, root), 400);
    const defaults = (await (await get(`/repositories/${pub}/pulls`, stranger)).json()) as {
      days: unknown[];
    };
    expect(defaults.days).toHaveLength(30);
  });
});
