// Auto-prune policies (per namespace or repository): keep the N newest tags, or remove tags
// older than an age, optionally only tags matching a glob. Applied continuously: when a policy
// is added, after every tag push, and by the RepositoryObject's alarm when the next tag comes of
// age (no polling). Pruned tags enter history (restorable inside the window) and are audited in
// batches by the "system" actor. Immutable tags are never pruned and do not count.
import { beforeEach, describe, expect, it } from "vitest";
import {
  call,
  eventSince,
  events,
  expectApiError,
  expectNoChange,
  expectStatus,
  json,
} from "./api-helpers.ts";
import { api } from "./helpers.ts";
import {
  alarmAt,
  eventuallyAudited,
  history,
  inObject,
  makeOrg,
  type Org,
  objectPolicy,
  pushTagged,
  repoIn,
  runAlarm,
  tagRows,
} from "./lifecycle-fixtures.ts";

const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;

beforeEach(() => {
  events.length = 0;
});

interface PolicyView {
  id: string;
  scope: string;
  method: string;
  keepCount: number | null;
  olderThan: string | null;
  olderThanSeconds: number | null;
  tagPattern: string | null;
}

async function addPolicy(org: Org, path: string, body: unknown): Promise<PolicyView> {
  return json<PolicyView>(
    await expectStatus(await call("POST", `${path}/prune-policies`, { as: org.owner, body }), 201),
  );
}

async function tags(repo: string): Promise<string[]> {
  const res = await api(`/v2/${repo}/tags/list`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { tags: string[] }).tags;
}

describe("prune policies through the API", () => {
  it("adds and removes policies; a repository lists its own and its namespace's", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    let mark = events.length;
    const count = await addPolicy(org, `/namespaces/${org.name}`, {
      keepCount: 5,
      tagPattern: "build-*",
    });
    expect(count).toMatchObject({
      scope: "namespace",
      method: "keep-count",
      keepCount: 5,
      olderThan: null,
      tagPattern: "build-*",
    });
    expect(eventSince(mark, "prune-policy.create")).toMatchObject({
      namespace: org.name,
      metadata: { id: count.id, method: "keep-count", keepCount: 5, tagPattern: "build-*" },
    });
    const age = await addPolicy(org, `/repositories/${repo}`, { olderThan: "30d" });
    expect(age).toMatchObject({
      scope: "repository",
      method: "older-than",
      keepCount: null,
      olderThan: "30d",
      olderThanSeconds: 30 * 86_400,
      tagPattern: null,
    });
    expect((await objectPolicy(repo))!.prune).toEqual([
      { id: count.id, kind: "keep-count", count: 5, tagPattern: "build-*" },
      { id: age.id, kind: "older-than", olderThanMs: 30 * 24 * HOUR, tagPattern: null },
    ]);
    const listed = await json<{ policies: PolicyView[] }>(
      await expectStatus(
        await call("GET", `/repositories/${repo}/prune-policies`, { as: org.reader }),
        200,
      ),
    );
    expect(listed.policies.map((p) => p.id)).toEqual([count.id, age.id]);

    mark = events.length;
    await expectStatus(
      await call("DELETE", `/repositories/${repo}/prune-policies/${age.id}`, { as: org.owner }),
      204,
    );
    expect(eventSince(mark, "prune-policy.delete")).toMatchObject({ metadata: { id: age.id } });
    expect((await objectPolicy(repo))!.prune.map((p) => p.id)).toEqual([count.id]);
  });

  it("validates policies (400) and limits how many a scope holds (409)", async () => {
    const org = await makeOrg();
    const path = `/namespaces/${org.name}/prune-policies`;
    for (const body of [
      {},
      { keepCount: 3, olderThan: "1d" },
      { keepCount: 0 },
      { keepCount: 1.5 },
      { keepCount: "3" },
      { olderThan: "0s" },
      { olderThan: "1 day" },
      { olderThan: "1d", tagPattern: "a/b" },
      { keepCount: 2, pattern: "x" },
    ]) {
      await expectNoChange(
        () => call("POST", path, { as: org.owner, body }),
        400,
        "INVALID_REQUEST",
      );
    }
    for (let i = 0; i < 20; i++)
      await addPolicy(org, `/namespaces/${org.name}`, { keepCount: i + 1 });
    await expectNoChange(
      () => call("POST", path, { as: org.owner, body: { keepCount: 99 } }),
      409,
      "CONFLICT",
    );
  });

  it("refuses members and writers (403) and outsiders (404), changing nothing", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    const policy = await addPolicy(org, `/repositories/${repo}`, { keepCount: 10 });
    const before = await objectPolicy(repo);
    for (const [as, status] of [
      [org.writer, 403],
      [org.outsider, 404],
    ] as const) {
      await expectNoChange(
        () => call("POST", `/repositories/${repo}/prune-policies`, { as, body: { keepCount: 1 } }),
        status,
      );
      await expectNoChange(
        () => call("DELETE", `/repositories/${repo}/prune-policies/${policy.id}`, { as }),
        status,
      );
      await expectNoChange(
        () =>
          call("POST", `/namespaces/${org.name}/prune-policies`, { as, body: { keepCount: 1 } }),
        status,
      );
    }
    await expectApiError(
      await call("GET", `/repositories/${repo}/prune-policies`, { as: org.outsider }),
      404,
    );
    await expectApiError(
      await call("GET", `/namespaces/${org.name}/prune-policies`, { as: org.outsider }),
      404,
    );
    expect(await objectPolicy(repo)).toEqual(before);
    expect(await tags(repo)).toEqual(["seed"]);
  });
});

describe("keep the N newest tags", () => {
  it("prunes after each push: the oldest matching tag goes into history, audited", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    const policy = await addPolicy(org, `/repositories/${repo}`, {
      keepCount: 2,
      tagPattern: "build-*",
    });
    const first = await pushTagged(repo, "build-1");
    await pushTagged(repo, "build-2");
    expect(await tags(repo)).toEqual(["build-1", "build-2", "seed"]);
    await pushTagged(repo, "build-3");
    expect(await tags(repo)).toEqual(["build-2", "build-3", "seed"]);

    const [entry] = (await history(org.owner, repo, "?tag=build-1")).history;
    expect(entry).toMatchObject({ digest: first, endReason: "pruned", restorable: true });
    const [audit] = await eventuallyAudited(repo, "tag.prune");
    expect(audit).toMatchObject({ namespace: org.name, actor_kind: "system" });
    expect(JSON.parse(audit!.metadata!)).toEqual({
      trigger: "push",
      tags: [{ tag: "build-1", digest: first, policy: policy.id }],
    });

    // A pruned tag can be restored inside the window; it is then the newest, so it stays.
    await expectStatus(
      await call("POST", `/repositories/${repo}/tags/build-1/restore`, {
        as: org.owner,
        body: { digest: first },
      }),
      200,
    );
    expect(await tags(repo)).toEqual(["build-1", "build-3", "seed"]);
  });

  it("applies as soon as the policy is added", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    for (const tag of ["t1", "t2", "t3"]) await pushTagged(repo, tag);
    await addPolicy(org, `/repositories/${repo}`, { keepCount: 1 });
    expect(await tags(repo)).toEqual(["t3"]);
    const [audit] = await eventuallyAudited(repo, "tag.prune");
    const metadata = JSON.parse(audit!.metadata!);
    expect(metadata.trigger).toBe("policy");
    expect(metadata.tags.map((t: { tag: string }) => t.tag).sort()).toEqual(["seed", "t1", "t2"]);
  });

  it("never prunes immutable tags, and does not count them", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    await expectStatus(
      await call("POST", `/repositories/${repo}/immutability-rules`, {
        as: org.owner,
        body: { tagPattern: "v*" },
      }),
      201,
    );
    for (const tag of ["v1", "v2", "dev-1", "dev-2"]) await pushTagged(repo, tag);
    await addPolicy(org, `/repositories/${repo}`, { keepCount: 1 });
    expect(await tags(repo)).toEqual(["dev-2", "v1", "v2"]);
  });

  it("a namespace policy prunes in every repository of the namespace", async () => {
    const org = await makeOrg();
    const [one, two] = [await repoIn(org), await repoIn(org)];
    await addPolicy(org, `/namespaces/${org.name}`, { keepCount: 1, tagPattern: "tmp-*" });
    for (const repo of [one, two]) {
      await pushTagged(repo, "tmp-1");
      await pushTagged(repo, "tmp-2");
      expect(await tags(repo)).toEqual(["seed", "tmp-2"]);
    }
  });
});

describe("remove tags older than an age", () => {
  it("the alarm is set for when the next tag comes of age, and prunes it then", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    await pushTagged(repo, "pr-1");
    await pushTagged(repo, "pr-2");
    await addPolicy(org, `/repositories/${repo}`, { olderThan: "30m", tagPattern: "pr-*" });
    const rows = await tagRows(repo);
    const start = (tag: string) => rows.find((row) => row.name === tag)!.start_ms;
    expect(await alarmAt(repo)).toBe(start("pr-1") + 30 * MINUTE);

    // pr-1 comes of age (its push moved an hour back); the alarm prunes it, then waits for pr-2.
    await inObject(repo, "UPDATE tags SET start_ms = start_ms - ? WHERE name = 'pr-1'", HOUR);
    expect(await runAlarm(repo)).toBe(true);
    expect(await tags(repo)).toEqual(["pr-2", "seed"]);
    expect(await alarmAt(repo)).toBe(start("pr-2") + 30 * MINUTE);
    const [audit] = await eventuallyAudited(repo, "tag.prune");
    expect(JSON.parse(audit!.metadata!)).toMatchObject({
      trigger: "alarm",
      tags: [{ tag: "pr-1" }],
    });
  });

  it("a push also prunes what has come of age", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    await addPolicy(org, `/repositories/${repo}`, { olderThan: "1h" });
    await pushTagged(repo, "old");
    await inObject(repo, "UPDATE tags SET start_ms = start_ms - ? WHERE name = 'old'", 2 * HOUR);
    await pushTagged(repo, "new");
    expect(await tags(repo)).toEqual(["new", "seed"]);
  });
});
