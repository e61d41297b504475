// The time machine: every tag move and delete is a lifetime row; the API lists them newest
// first, restores a tag to a digest it held inside the namespace's retention window, and erases
// an entry for good. The window is a namespace setting pushed into every RepositoryObject.
// Refusals are 404 where a private name must not leak, 403 otherwise, and change nothing.
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_TAG_RETENTION_MS } from "../../schema/lifecycle.ts";
import {
  call,
  eventSince,
  events,
  expectApiError,
  expectNoChange,
  expectStatus,
  json,
  kindsSince,
} from "./api-helpers.ts";
import { api } from "./helpers.ts";
import {
  history,
  inObject,
  makeOrg,
  manifestDigests,
  objectPolicy,
  pushTagged,
  repoIn,
  runAlarm,
  tagDigest,
  tagRows,
} from "./lifecycle-fixtures.ts";

const DAY = 24 * 60 * 60 * 1000;

beforeEach(() => {
  events.length = 0;
});

/** A repository where v1 went A → B (so A is history), as the org's owner sees it. */
async function movedTag() {
  const org = await makeOrg();
  const repo = await repoIn(org);
  const a = await pushTagged(repo, "v1");
  const b = await pushTagged(repo, "v1");
  return { org, repo, a, b };
}

describe("GET /repositories/<name>/tag-history", () => {
  it("lists every lifetime newest first and says why each one ended", async () => {
    const { org, repo, a, b } = await movedTag();
    await pushTagged(repo, "x");
    expect((await api(`/v2/${repo}/manifests/x`, { method: "DELETE" })).status).toBe(202);

    const page = await history(org.reader, repo);
    expect(page.retention).toBe("2w");
    expect(page.next_cursor).toBeNull();
    expect(page.history.map((e) => [e.tag, e.current, e.endReason])).toEqual([
      ["x", false, "deleted"],
      ["v1", true, null],
      ["v1", false, "moved"],
      ["seed", true, null],
    ]);
    const [, current, old] = page.history;
    expect(current).toMatchObject({ digest: b, restorable: false, manifestPresent: true });
    expect(old).toMatchObject({ digest: a, restorable: true, manifestPresent: true });
    expect(old!.endedAt).toBe(current!.startedAt);
    expect(Number(page.history[0]!.id)).toBeGreaterThan(Number(current!.id));
  });

  it("filters by tag and pages with a cursor", async () => {
    const { org, repo, a, b } = await movedTag();
    const c = await pushTagged(repo, "v1");
    const seen: string[] = [];
    let cursor: string | null = "";
    while (cursor !== null) {
      const query: string = `?tag=v1&limit=1${cursor ? `&cursor=${cursor}` : ""}`;
      const page = await history(org.owner, repo, query);
      expect(page.history).toHaveLength(1);
      seen.push(page.history[0]!.digest);
      cursor = page.next_cursor;
    }
    expect(seen).toEqual([c, b, a]);
  });

  it("refuses malformed queries with 400", async () => {
    const { org, repo } = await movedTag();
    for (const query of ["?tag=-bad", "?cursor=zzz", "?limit=0", "?color=red"]) {
      await expectApiError(
        await call("GET", `/repositories/${repo}/tag-history${query}`, { as: org.owner }),
        400,
        "INVALID_REQUEST",
      );
    }
  });

  it("is readable with pull access and a 404 for whoever cannot see the repository", async () => {
    const { org, repo } = await movedTag();
    expect((await history(org.reader, repo)).history.length).toBeGreaterThan(0);
    await expectNoChange(
      () => call("GET", `/repositories/${repo}/tag-history`, { as: org.outsider }),
      404,
      "NOT_FOUND",
    );
    await expectApiError(
      await call("GET", `/repositories/${org.name}/missing/tag-history`, { as: org.owner }),
      404,
    );
  });
});

describe("POST /repositories/<name>/tags/<tag>/restore", () => {
  it("moves the tag back; the move itself becomes history and is audited", async () => {
    const { org, repo, a, b } = await movedTag();
    const mark = events.length;
    const res = await call("POST", `/repositories/${repo}/tags/v1/restore`, {
      as: org.owner,
      body: { digest: a },
    });
    expect(await json(await expectStatus(res, 200))).toEqual({
      tag: "v1",
      digest: a,
      previousDigest: b,
      moved: true,
    });
    expect(await tagDigest(repo, "v1")).toBe(a);
    const entries = (await history(org.owner, repo, "?tag=v1")).history;
    expect(entries.map((e) => [e.digest, e.current, e.endReason])).toEqual([
      [a, true, null],
      [b, false, "restored"],
      [a, false, "moved"],
    ]);
    expect(entries[1]!.restorable).toBe(true);
    const event = eventSince(mark, "tag.restore");
    expect(event).toMatchObject({
      repository: repo,
      namespace: org.name,
      actor: { kind: "token", name: org.owner.name },
      metadata: { tag: "v1", digest: a, previousDigest: b },
    });

    // Restoring to where it already points changes nothing and announces nothing.
    const again = await call("POST", `/repositories/${repo}/tags/v1/restore`, {
      as: org.owner,
      body: { digest: a },
    });
    expect(await json(await expectStatus(again, 200))).toMatchObject({ moved: false });
    expect(kindsSince(mark)).toEqual(["tag.restore"]);
  });

  it("recreates a deleted tag", async () => {
    const { org, repo, b } = await movedTag();
    expect((await api(`/v2/${repo}/manifests/v1`, { method: "DELETE" })).status).toBe(202);
    expect(await tagDigest(repo, "v1")).toBeNull();
    const res = await call("POST", `/repositories/${repo}/tags/v1/restore`, {
      as: org.owner,
      body: { digest: b },
    });
    expect(await json(await expectStatus(res, 200))).toMatchObject({ previousDigest: null });
    expect(await tagDigest(repo, "v1")).toBe(b);
  });

  it("refuses, changing nothing: a digest the tag never held, outside the window, manifest gone", async () => {
    const { org, repo, a, b } = await movedTag();
    const restore = (digest: string) => () =>
      call("POST", `/repositories/${repo}/tags/v1/restore`, { as: org.owner, body: { digest } });
    const seed = (await history(org.owner, repo, "?tag=seed")).history[0]!.digest;
    const before = await tagRows(repo);

    const never = await expectNoChange(restore(seed), 404, "NOT_FOUND");
    expect(never.message).toContain("never pointed");

    // Fifteen days ago is outside the default fourteen-day window.
    await inObject(
      repo,
      "UPDATE tags SET end_ms = end_ms - ? WHERE name = 'v1' AND digest = ?",
      15 * DAY,
      a,
    );
    const moved = await tagRows(repo);
    const outside = await expectNoChange(restore(a), 409, "CONFLICT");
    expect(outside.message).toContain("outside the retention window");
    expect((await history(org.owner, repo, "?tag=v1")).history[1]!.restorable).toBe(false);
    expect(await tagRows(repo)).toEqual(moved);
    expect(moved.length).toBe(before.length);

    // The manifest A is deleted by digest: its lifetime stays as history, but cannot come back.
    await inObject(
      repo,
      "UPDATE tags SET end_ms = ? WHERE name = 'v1' AND digest = ?",
      Date.now(),
      a,
    );
    expect((await api(`/v2/${repo}/manifests/${a}`, { method: "DELETE" })).status).toBe(202);
    const gone = await expectNoChange(restore(a), 409, "CONFLICT");
    expect(gone.message).toContain("no longer stored");
    expect(await tagDigest(repo, "v1")).toBe(b);
  });

  it("takes a repository administrator: 403 for readers and writers, 404 for outsiders", async () => {
    const { org, repo, a, b } = await movedTag();
    const before = await tagRows(repo);
    for (const [as, status] of [
      [org.reader, 403],
      [org.writer, 403],
      [org.outsider, 404],
    ] as const) {
      await expectNoChange(
        () => call("POST", `/repositories/${repo}/tags/v1/restore`, { as, body: { digest: a } }),
        status,
      );
    }
    expect(await tagRows(repo)).toEqual(before);
    expect(await tagDigest(repo, "v1")).toBe(b);
  });

  it("refuses a read-only repository, even to its administrator", async () => {
    const { org, repo, a, b } = await movedTag();
    await expectStatus(
      await call("PATCH", `/repositories/${repo}`, { as: org.owner, body: { state: "read-only" } }),
      200,
    );
    const error = await expectNoChange(
      () =>
        call("POST", `/repositories/${repo}/tags/v1/restore`, {
          as: org.owner,
          body: { digest: a },
        }),
      403,
      "FORBIDDEN",
    );
    expect(error.message).toContain("read-only");
    expect(await tagDigest(repo, "v1")).toBe(b);
  });

  it("validates the tag and the body", async () => {
    const { org, repo } = await movedTag();
    for (const [path, body] of [
      ["tags/v1/restore", { digest: "sha256:nope" }],
      ["tags/v1/restore", {}],
      ["tags/v1/restore", { digest: `sha256:${"a".repeat(64)}`, extra: 1 }],
      ["tags/.bad/restore", { digest: `sha256:${"a".repeat(64)}` }],
    ] as const) {
      await expectNoChange(
        () => call("POST", `/repositories/${repo}/${path}`, { as: org.owner, body }),
        400,
        "INVALID_REQUEST",
      );
    }
  });
});

describe("DELETE /repositories/<name>/tag-history/<id>", () => {
  it("erases an ended entry for good, and audits it", async () => {
    const { org, repo, a } = await movedTag();
    const old = (await history(org.owner, repo, "?tag=v1")).history[1]!;
    expect(old).toMatchObject({ digest: a, current: false });
    // As if the collector had looked at A after its push grace: history kept it, for the window.
    await inObject(
      repo,
      "UPDATE gc_candidates SET due_at = ?, hold_until = 0 WHERE kind = 'manifest' AND digest = ?",
      Date.now() + 14 * DAY,
      a,
    );
    const mark = events.length;
    await expectStatus(
      await call("DELETE", `/repositories/${repo}/tag-history/${old.id}`, { as: org.owner }),
      204,
    );
    const after = (await history(org.owner, repo, "?tag=v1")).history;
    expect(after.map((e) => e.id)).not.toContain(old.id);
    // Nothing keeps A any more: the collector takes it at its next alarm, not in fourteen days.
    await runAlarm(repo);
    expect(await manifestDigests(repo)).not.toContain(a);
    expect(eventSince(mark, "tag.history.delete")).toMatchObject({
      repository: repo,
      metadata: { id: Number(old.id), tag: "v1", digest: a },
    });
    // Nothing remembers that v1 held A any more: it cannot be restored.
    await expectApiError(
      await call("POST", `/repositories/${repo}/tags/v1/restore`, {
        as: org.owner,
        body: { digest: a },
      }),
      404,
    );
  });

  it("refuses the current lifetime (409), unknown (404) and malformed (400) ids", async () => {
    const { org, repo } = await movedTag();
    const current = (await history(org.owner, repo, "?tag=v1")).history[0]!;
    const before = await tagRows(repo);
    const erase = (id: string) => () =>
      call("DELETE", `/repositories/${repo}/tag-history/${id}`, { as: org.owner });
    expect((await expectNoChange(erase(current.id), 409, "CONFLICT")).message).toContain(
      "delete the tag first",
    );
    await expectNoChange(erase("999999"), 404, "NOT_FOUND");
    await expectNoChange(erase("0"), 400, "INVALID_REQUEST");
    await expectNoChange(erase("abc"), 400, "INVALID_REQUEST");
    expect(await tagRows(repo)).toEqual(before);
  });

  it("takes a repository administrator: 403 for a writer, 404 for an outsider", async () => {
    const { org, repo } = await movedTag();
    const old = (await history(org.owner, repo, "?tag=v1")).history[1]!;
    const before = await tagRows(repo);
    for (const [as, status] of [
      [org.writer, 403],
      [org.outsider, 404],
    ] as const) {
      await expectNoChange(
        () => call("DELETE", `/repositories/${repo}/tag-history/${old.id}`, { as }),
        status,
      );
    }
    expect(await tagRows(repo)).toEqual(before);
  });
});

describe("/namespaces/<ns>/tag-retention", () => {
  it("defaults to 14 days, visible to the namespace's members only", async () => {
    const org = await makeOrg();
    const res = await call("GET", `/namespaces/${org.name}/tag-retention`, { as: org.reader });
    expect(await json(await expectStatus(res, 200))).toEqual({
      namespace: org.name,
      retention: "2w",
      retentionSeconds: DEFAULT_TAG_RETENTION_MS / 1000,
      isDefault: true,
    });
    await expectApiError(
      await call("GET", `/namespaces/${org.name}/tag-retention`, { as: org.outsider }),
      404,
    );
  });

  it("is set by namespace administrators and pushed into every repository of it", async () => {
    const org = await makeOrg();
    const [one, two] = [await repoIn(org), await repoIn(org)];
    const revision = (await objectPolicy(one))!.revision;
    const mark = events.length;
    const res = await call("PUT", `/namespaces/${org.name}/tag-retention`, {
      as: org.owner,
      body: { retention: "3d" },
    });
    expect(await json(await expectStatus(res, 200))).toMatchObject({
      retention: "3d",
      retentionSeconds: 3 * 86_400,
      isDefault: false,
    });
    for (const repo of [one, two]) {
      const policy = await objectPolicy(repo);
      expect(policy).toMatchObject({ repository: repo, namespace: org.name, retentionMs: 3 * DAY });
      expect(policy!.revision).toBeGreaterThan(revision);
      expect((await history(org.reader, repo)).retention).toBe("3d");
    }
    expect(eventSince(mark, "tag-retention.set")).toMatchObject({
      namespace: org.name,
      metadata: { from: "2w", to: "3d" },
    });
    // A repository created afterwards gets the namespace's window at its first push.
    expect((await objectPolicy(await repoIn(org)))!.retentionMs).toBe(3 * DAY);
  });

  it("allows zero: nothing ended is restorable, and history keeps no manifest", async () => {
    const { org, repo, a } = await movedTag();
    // As if the collector had looked at A after its push grace: history kept it, for the window.
    await inObject(
      repo,
      "UPDATE gc_candidates SET due_at = ?, hold_until = 0 WHERE kind = 'manifest' AND digest = ?",
      Date.now() + 14 * DAY,
      a,
    );
    await expectStatus(
      await call("PUT", `/namespaces/${org.name}/tag-retention`, {
        as: org.owner,
        body: { retention: "0s" },
      }),
      200,
    );
    expect((await history(org.owner, repo, "?tag=v1")).history[1]!.restorable).toBe(false);
    // The shorter window frees A now: the collector takes it at its next alarm.
    await runAlarm(repo);
    expect(await manifestDigests(repo)).not.toContain(a);
    await expectNoChange(
      () =>
        call("POST", `/repositories/${repo}/tags/v1/restore`, {
          as: org.owner,
          body: { digest: a },
        }),
      409,
    );
  });

  it("refuses members (403), outsiders (404) and malformed windows (400), changing nothing", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    const policy = await objectPolicy(repo);
    const put = (as: typeof org.owner, body: unknown) => () =>
      call("PUT", `/namespaces/${org.name}/tag-retention`, { as, body });
    await expectNoChange(put(org.writer, { retention: "1d" }), 403, "FORBIDDEN");
    await expectNoChange(put(org.outsider, { retention: "1d" }), 404, "NOT_FOUND");
    for (const body of [
      { retention: "1y" },
      { retention: "366d" },
      { retention: 86400 },
      {},
      { retention: "1d", window: "2d" },
    ]) {
      await expectNoChange(put(org.owner, body), 400, "INVALID_REQUEST");
    }
    const stored = await env.DB.prepare("SELECT * FROM tag_retention WHERE namespace = ?")
      .bind(org.name)
      .all();
    expect(stored.results).toEqual([]);
    expect(await objectPolicy(repo)).toEqual(policy);
  });

  it("a late push of an older policy never overwrites a newer one", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    const current = (await objectPolicy(repo))!;
    const stale = { ...current, revision: current.revision - 1, retentionMs: 0 };
    expect(await env.REPOSITORY.getByName(repo).setPolicy(stale)).toEqual({
      applied: false,
      pruned: 0,
    });
    expect(await objectPolicy(repo)).toEqual(current);
  });
});
