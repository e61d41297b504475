// Management API: build triggers of a repository. Only its administrators see or change them (a
// reader gets 403, a stranger to a private repository 404); the webhook secret is shown once and
// stored sealed; bad settings are a 400 naming the field, and no refusal changes anything.
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { openWebhookSecret } from "../../workers/registry/services/webhook-secrets.ts";
import {
  call,
  eventSince,
  events,
  expectApiError,
  expectStatus,
  json,
  kindsSince,
  makeUser,
  type TestUser,
  unique,
} from "./api-helpers.ts";

beforeEach(() => {
  events.length = 0;
});

interface Trigger {
  id: string;
  repository: string;
  provider: string;
  cloneUrl: string;
  dockerfilePath: string;
  contextDir: string;
  refFilter: { branches: string[]; tags: string[] };
  tagTemplates: string[];
  defaultBranch: string | null;
  enabled: boolean;
  webhookPath: string;
  secret?: string;
}

interface Fixture {
  owner: TestUser;
  reader: TestUser;
  writer: TestUser;
  stranger: TestUser;
  repo: string;
}

async function fixture(): Promise<Fixture> {
  const [owner, reader, writer, stranger] = await Promise.all([
    makeUser(),
    makeUser(),
    makeUser(),
    makeUser(),
  ]);
  const repo = `${owner.name}/${unique("app")}`;
  await expectStatus(await call("POST", "/repositories", { as: owner, body: { name: repo } }), 201);
  for (const [user, role] of [
    [reader, "read"],
    [writer, "write"],
  ] as const) {
    await expectStatus(
      await call("PUT", `/repositories/${repo}/permissions/user/${user.name}`, {
        as: owner,
        body: { role },
      }),
      200,
    );
  }
  return { owner, reader, writer, stranger, repo };
}

const GITHUB = { provider: "github", cloneUrl: "https://github.com/acme/app.git" };

async function createTrigger(f: Fixture, body: Record<string, unknown> = GITHUB) {
  return json<Trigger>(
    await expectStatus(
      await call("POST", `/repositories/${f.repo}/triggers`, { as: f.owner, body }),
      201,
    ),
  );
}

async function triggerRows(repository: string): Promise<Record<string, unknown>[]> {
  const { results } = await env.DB.prepare(
    "SELECT * FROM build_triggers WHERE repository = ? ORDER BY id",
  )
    .bind(repository)
    .all();
  return results;
}

/** Runs a refused call and proves the triggers of the repository are as they were. */
async function expectRefused(
  f: Fixture,
  run: () => Promise<Response>,
  status: number,
  code?: string,
): Promise<{ message: string }> {
  const before = await triggerRows(f.repo);
  const mark = events.length;
  const error = await expectApiError(await run(), status, code);
  expect(await triggerRows(f.repo)).toEqual(before);
  expect(kindsSince(mark)).toEqual([]);
  return error;
}

describe("build triggers API", () => {
  it("creates a trigger with defaults, shows the secret once and stores it sealed", async () => {
    const f = await fixture();
    const res = await call("POST", `/repositories/${f.repo}/triggers`, {
      as: f.owner,
      body: GITHUB,
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    const trigger = await json<Trigger>(res);
    expect(trigger).toMatchObject({
      repository: f.repo,
      provider: "github",
      cloneUrl: GITHUB.cloneUrl,
      dockerfilePath: "Dockerfile",
      contextDir: ".",
      refFilter: { branches: ["**"], tags: ["**"] },
      tagTemplates: ["latest@default", "{branch}", "{tag}"],
      defaultBranch: null,
      enabled: true,
      webhookPath: `/hooks/github/${trigger.id}`,
    });
    expect(trigger.secret).toMatch(/^erh_[A-Za-z0-9_-]{43}$/);

    const [row] = await triggerRows(f.repo);
    const sealed = row!.secret_sealed as string;
    expect(sealed).not.toContain(trigger.secret!.slice(4));
    expect(await openWebhookSecret(env.WEBHOOK_SECRET_KEY, trigger.id, sealed)).toBe(
      trigger.secret,
    );
    // Sealed for this trigger: the same ciphertext does not open for another id.
    await expect(
      openWebhookSecret(env.WEBHOOK_SECRET_KEY, crypto.randomUUID(), sealed),
    ).rejects.toThrow();
    expect(row!.owner_id).toBe(f.owner.id);

    const event = eventSince(0, "trigger.create");
    expect(event).toMatchObject({ repository: f.repo, actor: { name: f.owner.name } });
    expect(JSON.stringify(event)).not.toContain(trigger.secret);

    const shown = await json<Trigger>(
      await call("GET", `/repositories/${f.repo}/triggers/${trigger.id}`, { as: f.owner }),
    );
    expect(shown.secret).toBeUndefined();
    const listed = await json<{ triggers: Trigger[]; next_cursor: string | null }>(
      await call("GET", `/repositories/${f.repo}/triggers`, { as: f.owner }),
    );
    expect(listed.triggers.map((t) => t.id)).toEqual([trigger.id]);
    expect(listed.triggers[0]!.secret).toBeUndefined();
  });

  it("takes every setting, normalizing paths", async () => {
    const f = await fixture();
    const trigger = await createTrigger(f, {
      provider: "generic",
      cloneUrl: "git@git.example.com:acme/app.git",
      dockerfilePath: "./build//Dockerfile",
      contextDir: "services/api/",
      refFilter: { branches: ["main", "release/*"] },
      tagTemplates: ["latest@default", "{branch}-{sha:7}", "{branch}-{sha:7}"],
      defaultBranch: "trunk",
      enabled: false,
    });
    expect(trigger).toMatchObject({
      dockerfilePath: "build/Dockerfile",
      contextDir: "services/api",
      refFilter: { branches: ["main", "release/*"], tags: [] },
      tagTemplates: ["latest@default", "{branch}-{sha:7}"],
      defaultBranch: "trunk",
      enabled: false,
    });
  });

  it("refuses bad settings with a 400 naming the field, changing nothing", async () => {
    const f = await fixture();
    const post = (body: Record<string, unknown>) => () =>
      call("POST", `/repositories/${f.repo}/triggers`, { as: f.owner, body });
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...GITHUB, provider: "svn" }, /provider must be one of github, gitlab, generic/],
      [{ provider: "github" }, /cloneUrl is required/],
      [{ ...GITHUB, cloneUrl: "file:///etc" }, /cloneUrl scheme file:/],
      [{ ...GITHUB, cloneUrl: "https://u:pw@github.com/a.git" }, /password/],
      [{ ...GITHUB, dockerfilePath: "../Dockerfile" }, /dockerfilePath may not contain \.\./],
      [{ ...GITHUB, dockerfilePath: "/Dockerfile" }, /dockerfilePath must be relative/],
      [{ ...GITHUB, dockerfilePath: "." }, /dockerfilePath must name a file/],
      [{ ...GITHUB, contextDir: "a/../.." }, /contextDir may not contain \.\./],
      [{ ...GITHUB, tagTemplates: [] }, /tagTemplates must be a list of 1 to 20/],
      [{ ...GITHUB, tagTemplates: ["{version}"] }, /unknown placeholder \{version\}/],
      [{ ...GITHUB, tagTemplates: ["v/{tag}"] }, /literal text/],
      [{ ...GITHUB, refFilter: ["main"] }, /refFilter must be an object/],
      [{ ...GITHUB, refFilter: { heads: ["main"] } }, /refFilter has unknown field heads/],
      [{ ...GITHUB, refFilter: { branches: ["a b"] } }, /refFilter\.branches pattern "a b"/],
      [{ ...GITHUB, defaultBranch: "ma*n" }, /defaultBranch may not be a glob/],
      [{ ...GITHUB, enabled: "yes" }, /enabled must be true or false/],
      [{ ...GITHUB, secret: "mine" }, /unknown field secret/],
    ];
    for (const [body, message] of cases) {
      const error = await expectRefused(f, post(body), 400, "INVALID_REQUEST");
      expect(error.message).toMatch(message);
    }
  });

  it("lets only the repository's administrators manage triggers", async () => {
    const f = await fixture();
    const trigger = await createTrigger(f);
    const base = `/repositories/${f.repo}/triggers`;
    const one = `${base}/${trigger.id}`;
    const attempts: [string, string, Record<string, unknown>?][] = [
      ["GET", base],
      ["POST", base, GITHUB],
      ["GET", one],
      ["PATCH", one, { enabled: false }],
      ["DELETE", one],
      ["POST", `${one}/secret`],
    ];
    for (const [method, path, body] of attempts) {
      // Readers and writers see the repository, so they are told they may not (403)…
      for (const as of [f.reader, f.writer]) {
        await expectRefused(f, () => call(method, path, { as, body }), 403, "FORBIDDEN");
      }
      // …a stranger to the private repository cannot tell it exists (404), anonymous must log in.
      await expectRefused(f, () => call(method, path, { as: f.stranger, body }), 404, "NOT_FOUND");
      await expectRefused(f, () => call(method, path, { body }), 401, "UNAUTHORIZED");
    }
  });

  it("updates settings, making the caller the owner, and refuses a provider change", async () => {
    const f = await fixture();
    const trigger = await createTrigger(f);
    const coAdmin = await makeUser();
    await expectStatus(
      await call("PUT", `/repositories/${f.repo}/permissions/user/${coAdmin.name}`, {
        as: f.owner,
        body: { role: "admin" },
      }),
      200,
    );
    const mark = events.length;
    const res = await call("PATCH", `/repositories/${f.repo}/triggers/${trigger.id}`, {
      as: coAdmin,
      body: { refFilter: { tags: ["v*"] }, tagTemplates: ["{tag}"], enabled: false },
    });
    const updated = await json<Trigger>(await expectStatus(res, 200));
    expect(updated).toMatchObject({
      refFilter: { branches: [], tags: ["v*"] },
      tagTemplates: ["{tag}"],
      enabled: false,
      cloneUrl: GITHUB.cloneUrl,
    });
    expect(updated.secret).toBeUndefined();
    expect(eventSince(mark, "trigger.update").metadata).toMatchObject({
      trigger: trigger.id,
      changed: ["refFilter", "tagTemplates", "enabled"],
    });
    const [row] = await triggerRows(f.repo);
    expect(row!.owner_id).toBe(coAdmin.id);

    // The same values again change nothing and announce nothing.
    const again = events.length;
    await expectStatus(
      await call("PATCH", `/repositories/${f.repo}/triggers/${trigger.id}`, {
        as: f.owner,
        body: { enabled: false },
      }),
      200,
    );
    expect(kindsSince(again)).toEqual([]);

    await expectRefused(
      f,
      () =>
        call("PATCH", `/repositories/${f.repo}/triggers/${trigger.id}`, {
          as: f.owner,
          body: { provider: "gitlab" },
        }),
      400,
    );
    await expectRefused(
      f,
      () =>
        call("PATCH", `/repositories/${f.repo}/triggers/${trigger.id}`, { as: f.owner, body: {} }),
      400,
    );
  });

  it("regenerates the secret: shown once, the old one no longer opens", async () => {
    const f = await fixture();
    const trigger = await createTrigger(f);
    const res = await call("POST", `/repositories/${f.repo}/triggers/${trigger.id}/secret`, {
      as: f.owner,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    const renewed = await json<Trigger>(res);
    expect(renewed.secret).toMatch(/^erh_/);
    expect(renewed.secret).not.toBe(trigger.secret);
    const [row] = await triggerRows(f.repo);
    expect(
      await openWebhookSecret(env.WEBHOOK_SECRET_KEY, trigger.id, row!.secret_sealed as string),
    ).toBe(renewed.secret);
    expect(eventSince(0, "trigger.secret.regenerate").metadata).toEqual({ trigger: trigger.id });
  });

  it("deletes a trigger; a trigger is reached only through its own repository", async () => {
    const f = await fixture();
    const other = await fixture();
    const trigger = await createTrigger(f);
    // Another repository's administrator cannot address it through their repository.
    await expectRefused(
      f,
      () =>
        call("DELETE", `/repositories/${other.repo}/triggers/${trigger.id}`, { as: other.owner }),
      404,
    );
    await expectRefused(
      f,
      () => call("GET", `/repositories/${f.repo}/triggers/not-a-uuid`, { as: f.owner }),
      404,
    );
    const mark = events.length;
    await expectStatus(
      await call("DELETE", `/repositories/${f.repo}/triggers/${trigger.id}`, { as: f.owner }),
      204,
    );
    expect(eventSince(mark, "trigger.delete").metadata).toEqual({
      trigger: trigger.id,
      provider: "github",
    });
    expect(await triggerRows(f.repo)).toEqual([]);
    await expectApiError(
      await call("GET", `/repositories/${f.repo}/triggers/${trigger.id}`, { as: f.owner }),
      404,
    );
  });

  it("goes away with its repository", async () => {
    const f = await fixture();
    await createTrigger(f);
    await expectStatus(await call("DELETE", `/repositories/${f.repo}`, { as: f.owner }), 204);
    expect(await triggerRows(f.repo)).toEqual([]);
  });

  it("pages through a repository's triggers", async () => {
    const f = await fixture();
    const ids = new Set<string>();
    for (let i = 0; i < 3; i++) ids.add((await createTrigger(f)).id);
    const first = await json<{ triggers: Trigger[]; next_cursor: string }>(
      await call("GET", `/repositories/${f.repo}/triggers?limit=2`, { as: f.owner }),
    );
    expect(first.triggers).toHaveLength(2);
    const second = await json<{ triggers: Trigger[]; next_cursor: string | null }>(
      await call("GET", `/repositories/${f.repo}/triggers?limit=2&cursor=${first.next_cursor}`, {
        as: f.owner,
      }),
    );
    expect(second.next_cursor).toBeNull();
    expect(new Set([...first.triggers, ...second.triggers].map((t) => t.id))).toEqual(ids);
  });
});
