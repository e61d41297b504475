// Tag expiry: set or cleared through the API, or taken from the image's `quay.expires-after`
// label at push time; an expired tag disappears by the RepositoryObject's alarm (set for exactly
// when the first tag expires: no polling) and enters history. The one alarm also serves upload
// expiry, so each use must leave it at the earliest due time.
import { beforeEach, describe, expect, it } from "vitest";
import {
  call,
  eventSince,
  events,
  expectNoChange,
  expectStatus,
  json,
  kindsSince,
} from "./api-helpers.ts";
import { api, startUpload } from "./helpers.ts";
import {
  alarmAt,
  eventuallyAudited,
  history,
  inObject,
  makeOrg,
  type Org,
  pushTagged,
  putImage,
  repoIn,
  runAlarm,
  tagDigest,
  tagRows,
} from "./lifecycle-fixtures.ts";

const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

beforeEach(() => {
  events.length = 0;
});

async function setExpiry(org: Org, repo: string, tag: string, body: unknown) {
  return call("PUT", `/repositories/${repo}/tags/${tag}/expiry`, { as: org.owner, body });
}

/** The current lifetime row of a tag. */
async function current(repo: string, tag: string) {
  return (await tagRows(repo)).find((row) => row.name === tag && row.end_ms === null);
}

describe("PUT /repositories/<name>/tags/<tag>/expiry", () => {
  it("sets when a tag expires (expiresIn or expiresAt), shows it, audits it", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    const digest = await pushTagged(repo, "v1");
    const mark = events.length;
    const before = Date.now();
    const body = await json<{ tag: string; digest: string; expiresAt: string }>(
      await expectStatus(await setExpiry(org, repo, "v1", { expiresIn: "2h" }), 200),
    );
    expect(body).toMatchObject({ tag: "v1", digest });
    const at = Date.parse(body.expiresAt);
    expect(at).toBeGreaterThanOrEqual(before + 2 * HOUR);
    expect(at).toBeLessThanOrEqual(Date.now() + 2 * HOUR);
    expect((await current(repo, "v1"))!.expires_ms).toBe(at);
    const entry = (await history(org.reader, repo, "?tag=v1")).history[0]!;
    expect(entry.expiresAt).toBe(body.expiresAt);
    expect(eventSince(mark, "tag.expiry")).toMatchObject({
      repository: repo,
      metadata: { tag: "v1", digest, expiresAt: body.expiresAt, previous: null },
    });

    const exact = new Date(Date.now() + 3 * DAY).toISOString();
    const second = await json<{ expiresAt: string }>(
      await expectStatus(await setExpiry(org, repo, "v1", { expiresAt: exact }), 200),
    );
    expect(second.expiresAt).toBe(exact);
  });

  it("sets the alarm for exactly the first expiry, and before an upload session's", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    await pushTagged(repo, "v1");
    await pushTagged(repo, "v2");
    // An upload session holds the alarm at its own expiry (a day away).
    await startUpload(repo);
    const uploadAlarm = (await alarmAt(repo))!;
    expect(uploadAlarm).toBeGreaterThan(Date.now());

    await expectStatus(await setExpiry(org, repo, "v2", { expiresIn: "40m" }), 200);
    await expectStatus(await setExpiry(org, repo, "v1", { expiresIn: "20m" }), 200);
    const v1 = (await current(repo, "v1"))!.expires_ms!;
    const v2 = (await current(repo, "v2"))!.expires_ms!;
    expect(await alarmAt(repo)).toBe(v1);

    // v1 expires; the alarm comes back for v2, then (after v2) for the upload session.
    await inObject(repo, "UPDATE tags SET expires_ms = ? WHERE name = 'v1' AND end_ms IS NULL", 1);
    expect(await runAlarm(repo)).toBe(true);
    expect(await tagDigest(repo, "v1")).toBeNull();
    expect(await alarmAt(repo)).toBe(v2);
    await inObject(repo, "UPDATE tags SET expires_ms = ? WHERE name = 'v2' AND end_ms IS NULL", 1);
    expect(await runAlarm(repo)).toBe(true);
    expect(await tagDigest(repo, "v2")).toBeNull();
    const after = await alarmAt(repo);
    expect(after).not.toBeNull();
    expect(after!).toBeLessThanOrEqual(uploadAlarm);
  });

  it("refuses an unknown tag (404), bad times (400), non-admins (403/404): nothing changes", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    await pushTagged(repo, "v1");
    const before = await tagRows(repo);
    await expectNoChange(() => setExpiry(org, repo, "nope", { expiresIn: "1h" }), 404);
    for (const body of [
      {},
      { expiresIn: "1h", expiresAt: new Date(Date.now() + DAY).toISOString() },
      { expiresIn: "soon" },
      { expiresIn: "0s" },
      { expiresIn: "99999w" },
      { expiresAt: new Date(Date.now() - MINUTE).toISOString() },
      { expiresAt: "tomorrow" },
      { expiresAt: 1_900_000_000_000 },
    ]) {
      await expectNoChange(() => setExpiry(org, repo, "v1", body), 400, "INVALID_REQUEST");
    }
    for (const [as, status] of [
      [org.writer, 403],
      [org.reader, 403],
      [org.outsider, 404],
    ] as const) {
      await expectNoChange(
        () =>
          call("PUT", `/repositories/${repo}/tags/v1/expiry`, { as, body: { expiresIn: "1h" } }),
        status,
      );
      await expectNoChange(
        () => call("DELETE", `/repositories/${repo}/tags/v1/expiry`, { as }),
        status,
      );
    }
    expect(await tagRows(repo)).toEqual(before);
  });
});

describe("DELETE /repositories/<name>/tags/<tag>/expiry", () => {
  it("clears the expiry: the alarm then leaves the tag alone", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    const digest = await pushTagged(repo, "v1");
    await expectStatus(await setExpiry(org, repo, "v1", { expiresIn: "1h" }), 200);
    const mark = events.length;
    await expectStatus(
      await call("DELETE", `/repositories/${repo}/tags/v1/expiry`, { as: org.owner }),
      204,
    );
    expect((await current(repo, "v1"))!.expires_ms).toBeNull();
    expect(eventSince(mark, "tag.expiry")).toMatchObject({
      metadata: { tag: "v1", expiresAt: null },
    });
    await runAlarm(repo);
    expect(await tagDigest(repo, "v1")).toBe(digest);
    // Clearing what is not set changes nothing and announces nothing.
    await expectStatus(
      await call("DELETE", `/repositories/${repo}/tags/v1/expiry`, { as: org.owner }),
      204,
    );
    expect(kindsSince(mark)).toEqual(["tag.expiry"]);
  });
});

describe("expiry by the alarm", () => {
  it("ends an expired tag on time: it enters history, restorable, audited by the system", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    const digest = await pushTagged(repo, "v1");
    const keep = await pushTagged(repo, "keep");
    await expectStatus(await setExpiry(org, repo, "v1", { expiresIn: "1h" }), 200);
    // Not due yet: the alarm leaves it.
    await runAlarm(repo);
    expect(await tagDigest(repo, "v1")).toBe(digest);

    await inObject(repo, "UPDATE tags SET expires_ms = ? WHERE name = 'v1' AND end_ms IS NULL", 5);
    await runAlarm(repo);
    expect(await tagDigest(repo, "v1")).toBeNull();
    expect(await tagDigest(repo, "keep")).toBe(keep);
    const [entry] = (await history(org.owner, repo, "?tag=v1")).history;
    expect(entry).toMatchObject({
      digest,
      current: false,
      endReason: "expired",
      restorable: true,
      expiresAt: new Date(5).toISOString(),
    });
    const [audit] = await eventuallyAudited(repo, "tag.expire");
    expect(audit).toMatchObject({ namespace: org.name, actor_kind: "system" });
    expect(JSON.parse(audit!.metadata!)).toEqual({
      tags: [{ tag: "v1", digest, expiresAt: new Date(5).toISOString() }],
    });

    // Like any ended lifetime, it can be restored inside the window.
    await expectStatus(
      await call("POST", `/repositories/${repo}/tags/v1/restore`, {
        as: org.owner,
        body: { digest },
      }),
      200,
    );
    expect(await tagDigest(repo, "v1")).toBe(digest);
    expect((await current(repo, "v1"))!.expires_ms).toBeNull();
  });

  it("a push that moves the tag starts a lifetime without the old expiry", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    await pushTagged(repo, "v1");
    await expectStatus(await setExpiry(org, repo, "v1", { expiresIn: "1h" }), 200);
    const moved = await pushTagged(repo, "v1");
    expect((await current(repo, "v1"))!.expires_ms).toBeNull();
    await inObject(repo, "UPDATE tags SET expires_ms = 5 WHERE expires_ms IS NOT NULL");
    await runAlarm(repo);
    expect(await tagDigest(repo, "v1")).toBe(moved);
  });
});

describe("the quay.expires-after label", () => {
  it("sets the pushed tag's expiry from the image config, in every unit", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    for (const [label, ms] of [
      ["30s", 30_000],
      ["15m", 15 * MINUTE],
      ["12h", 12 * HOUR],
      ["2d", 2 * DAY],
      ["3w", 21 * DAY],
    ] as const) {
      await pushTagged(repo, `l${label}`, { labels: { "quay.expires-after": label } });
      const row = (await current(repo, `l${label}`))!;
      expect(row.expires_ms! - row.start_ms, label).toBe(ms);
    }
    // The shortest one sets the alarm.
    const first = (await current(repo, "l30s"))!.expires_ms;
    expect(await alarmAt(repo)).toBe(first);
  });

  it("is ignored when malformed, on a non-image config, or on a push by digest", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    for (const label of ["soon", "12", "-1d", "0s", "1y"]) {
      await pushTagged(repo, "bad", { labels: { "quay.expires-after": label } });
      expect((await current(repo, "bad"))!.expires_ms, label).toBeNull();
    }
    await pushTagged(repo, "artifact", {
      labels: { "quay.expires-after": "1h" },
      configMediaType: "application/vnd.example.config.v1+json",
    });
    expect((await current(repo, "artifact"))!.expires_ms).toBeNull();
    // A push by digest has no tag to expire.
    const before = await tagRows(repo);
    const res = await putImage(repo, null, { labels: { "quay.expires-after": "1h" } });
    expect(res.status).toBe(201);
    expect(await tagRows(repo)).toEqual(before);
  });

  it("a labelled tag expires by the alarm like any other", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    await pushTagged(repo, "pr-1", { labels: { "quay.expires-after": "12h" } });
    const [push] = await eventuallyAudited(repo, "tag.push", (meta) => meta.tag === "pr-1");
    expect(JSON.parse(push!.metadata!)).toMatchObject({ tag: "pr-1", expiresAfter: "12h" });
    await inObject(repo, "UPDATE tags SET expires_ms = 5 WHERE name = 'pr-1'");
    await runAlarm(repo);
    expect(await tagDigest(repo, "pr-1")).toBeNull();
    const list = await json<{ tags: string[] }>(await api(`/v2/${repo}/tags/list`));
    expect(list.tags).toEqual(["seed"]);
  });
});
