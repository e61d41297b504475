// Immutability rules (tag globs, per namespace or repository): a push, tag delete, manifest delete
// or restore that would move or remove a matching tag is refused with the spec's DENIED (403),
// atomically in the RepositoryObject, and nothing changes. Creating a matching tag is allowed.
// Expiry and auto-prune never remove an immutable tag.
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
import { api, expectError } from "./helpers.ts";
import {
  inObject,
  makeOrg,
  manifestDigests,
  type Org,
  objectPolicy,
  pushTagged,
  putImage,
  repoIn,
  runAlarm,
  tagDigest,
  tagRows,
} from "./lifecycle-fixtures.ts";

beforeEach(() => {
  events.length = 0;
});

interface RuleView {
  id: string;
  scope: string;
  namespace: string;
  repository: string | null;
  tagPattern: string;
}

async function addRule(org: Org, path: string, tagPattern: string): Promise<RuleView> {
  return json<RuleView>(
    await expectStatus(
      await call("POST", `${path}/immutability-rules`, { as: org.owner, body: { tagPattern } }),
      201,
    ),
  );
}

describe("immutability rules through the API", () => {
  it("namespace administrators add and remove rules for every repository of the namespace", async () => {
    const org = await makeOrg();
    const [one, two] = [await repoIn(org), await repoIn(org)];
    let mark = events.length;
    const rule = await addRule(org, `/namespaces/${org.name}`, "v*");
    expect(rule).toMatchObject({
      scope: "namespace",
      namespace: org.name,
      repository: null,
      tagPattern: "v*",
    });
    expect(eventSince(mark, "immutability-rule.create")).toMatchObject({
      namespace: org.name,
      metadata: { id: rule.id, tagPattern: "v*" },
    });
    for (const repo of [one, two]) {
      expect((await objectPolicy(repo))!.immutableTags).toEqual(["v*"]);
    }
    const listed = await json<{ rules: RuleView[] }>(
      await expectStatus(
        await call("GET", `/namespaces/${org.name}/immutability-rules`, { as: org.reader }),
        200,
      ),
    );
    expect(listed.rules.map((r) => r.id)).toEqual([rule.id]);

    mark = events.length;
    await expectStatus(
      await call("DELETE", `/namespaces/${org.name}/immutability-rules/${rule.id}`, {
        as: org.owner,
      }),
      204,
    );
    expect(eventSince(mark, "immutability-rule.delete")).toMatchObject({
      metadata: { id: rule.id, tagPattern: "v*" },
    });
    for (const repo of [one, two]) expect((await objectPolicy(repo))!.immutableTags).toEqual([]);
  });

  it("repository administrators add rules for one repository, which lists inherited ones too", async () => {
    const org = await makeOrg();
    const [repo, other] = [await repoIn(org), await repoIn(org)];
    const inherited = await addRule(org, `/namespaces/${org.name}`, "release-*");
    const own = await addRule(org, `/repositories/${repo}`, "stable");
    expect(own).toMatchObject({ scope: "repository", repository: repo, namespace: org.name });
    expect((await objectPolicy(repo))!.immutableTags).toEqual(["release-*", "stable"]);
    expect((await objectPolicy(other))!.immutableTags).toEqual(["release-*"]);
    const listed = await json<{ rules: RuleView[] }>(
      await expectStatus(
        await call("GET", `/repositories/${repo}/immutability-rules`, { as: org.reader }),
        200,
      ),
    );
    expect(listed.rules.map((r) => [r.id, r.scope])).toEqual([
      [inherited.id, "namespace"],
      [own.id, "repository"],
    ]);
    // A repository cannot delete its namespace's rule.
    await expectNoChange(
      () =>
        call("DELETE", `/repositories/${repo}/immutability-rules/${inherited.id}`, {
          as: org.owner,
        }),
      404,
    );
  });

  it("validates patterns (400) and refuses a duplicate (409), changing nothing", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    await addRule(org, `/repositories/${repo}`, "v[0-9]*.[0-9]");
    const policy = await objectPolicy(repo);
    for (const tagPattern of ["", "v[", "v/1", "a b", "[]", "[^]", "x".repeat(129), 7]) {
      await expectNoChange(
        () =>
          call("POST", `/repositories/${repo}/immutability-rules`, {
            as: org.owner,
            body: { tagPattern },
          }),
        400,
        "INVALID_REQUEST",
      );
    }
    await expectNoChange(
      () =>
        call("POST", `/repositories/${repo}/immutability-rules`, {
          as: org.owner,
          body: { tagPattern: "v[0-9]*.[0-9]" },
        }),
      409,
      "CONFLICT",
    );
    expect(await objectPolicy(repo)).toEqual(policy);
  });

  it("refuses members and writers (403) and outsiders (404), changing nothing", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    const rule = await addRule(org, `/namespaces/${org.name}`, "v*");
    const body = { tagPattern: "x*" };
    for (const [as, status] of [
      [org.writer, 403],
      [org.outsider, 404],
    ] as const) {
      await expectNoChange(
        () => call("POST", `/namespaces/${org.name}/immutability-rules`, { as, body }),
        status,
      );
      await expectNoChange(
        () => call("DELETE", `/namespaces/${org.name}/immutability-rules/${rule.id}`, { as }),
        status,
      );
      await expectNoChange(
        () => call("POST", `/repositories/${repo}/immutability-rules`, { as, body }),
        status,
      );
    }
    await expectApiError(
      await call("GET", `/namespaces/${org.name}/immutability-rules`, { as: org.outsider }),
      404,
    );
    await expectApiError(
      await call("GET", `/repositories/${repo}/immutability-rules`, { as: org.outsider }),
      404,
    );
    await expectNoChange(
      () =>
        call("DELETE", `/namespaces/${org.name}/immutability-rules/${crypto.randomUUID()}`, {
          as: org.owner,
        }),
      404,
    );
    expect((await objectPolicy(repo))!.immutableTags).toEqual(["v*"]);
  });
});

describe("enforcement in the RepositoryObject", () => {
  it("allows creating a matching tag, and refuses moving it with DENIED", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    await addRule(org, `/repositories/${repo}`, "v*");
    const a = await pushTagged(repo, "v1");
    const before = await tagRows(repo);
    const stored = await manifestDigests(repo);
    const refused = await putImage(repo, "v1");
    const body = await expectError(refused, 403, "DENIED");
    expect(body.errors[0]!.message).toContain('tag v1 is immutable (rule "v*")');
    expect(await tagDigest(repo, "v1")).toBe(a);
    expect(await tagRows(repo)).toEqual(before);
    // The refused manifest was not stored either.
    expect(await manifestDigests(repo)).toEqual(stored);

    // Pushing the same manifest again is not a move.
    const same = await api(`/v2/${repo}/manifests/${a}`);
    const bytes = new Uint8Array(await same.arrayBuffer());
    const again = await api(`/v2/${repo}/manifests/v1`, {
      method: "PUT",
      body: bytes,
      headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" },
    });
    expect(again.status).toBe(201);
    expect(await tagRows(repo)).toEqual(before);
  });

  it("refuses deleting the tag, and deleting a manifest it tags", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    await addRule(org, `/namespaces/${org.name}`, "release-*");
    const a = await pushTagged(repo, "release-1");
    const free = await pushTagged(repo, "dev");
    const before = await tagRows(repo);
    await expectError(
      await api(`/v2/${repo}/manifests/release-1`, { method: "DELETE" }),
      403,
      "DENIED",
    );
    const byDigest = await expectError(
      await api(`/v2/${repo}/manifests/${a}`, { method: "DELETE" }),
      403,
      "DENIED",
    );
    expect(byDigest.errors[0]!.message).toContain("tagged release-1");
    expect(await tagRows(repo)).toEqual(before);
    expect(await tagDigest(repo, "release-1")).toBe(a);
    // What no rule matches goes as usual.
    expect((await api(`/v2/${repo}/manifests/${free}`, { method: "DELETE" })).status).toBe(202);
  });

  it("refuses restoring an immutable tag to another digest", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    const a = await pushTagged(repo, "v1");
    const b = await pushTagged(repo, "v1");
    await addRule(org, `/repositories/${repo}`, "v1");
    const error = await expectNoChange(
      () =>
        call("POST", `/repositories/${repo}/tags/v1/restore`, {
          as: org.owner,
          body: { digest: a },
        }),
      403,
      "FORBIDDEN",
    );
    expect(error.message).toContain("immutable");
    expect(await tagDigest(repo, "v1")).toBe(b);
  });

  it("matches whole tags as case-sensitive globs", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    await addRule(org, `/repositories/${repo}`, "release-[0-9]*");
    for (const tag of ["release-1", "release-22"]) {
      await pushTagged(repo, tag);
      await expectError(await putImage(repo, tag), 403, "DENIED");
    }
    for (const tag of ["release-x", "Release-1", "pre-release-1", "release-"]) {
      await pushTagged(repo, tag);
      expect((await putImage(repo, tag)).status, tag).toBe(201);
    }
  });

  it("applies a namespace rule to repositories created after it; removing it frees the tag", async () => {
    const org = await makeOrg();
    const rule = await addRule(org, `/namespaces/${org.name}`, "prod");
    const repo = await repoIn(org);
    await pushTagged(repo, "prod");
    await expectError(await putImage(repo, "prod"), 403, "DENIED");
    await expectStatus(
      await call("DELETE", `/namespaces/${org.name}/immutability-rules/${rule.id}`, {
        as: org.owner,
      }),
      204,
    );
    expect((await putImage(repo, "prod")).status).toBe(201);
  });

  it("an immutable tag never expires: API refuses, labels are ignored, earlier expiries lapse", async () => {
    const org = await makeOrg();
    const repo = await repoIn(org);
    const kept = await pushTagged(repo, "lts-1");
    await expectStatus(
      await call("PUT", `/repositories/${repo}/tags/lts-1/expiry`, {
        as: org.owner,
        body: { expiresIn: "1h" },
      }),
      200,
    );
    await addRule(org, `/repositories/${repo}`, "lts-*");
    const refused = await expectNoChange(
      () =>
        call("PUT", `/repositories/${repo}/tags/lts-1/expiry`, {
          as: org.owner,
          body: { expiresIn: "2h" },
        }),
      403,
      "FORBIDDEN",
    );
    expect(refused.message).toContain("cannot expire");
    await pushTagged(repo, "lts-2", { labels: { "quay.expires-after": "1h" } });
    const rows = await tagRows(repo);
    expect(rows.find((row) => row.name === "lts-2")!.expires_ms).toBeNull();

    // The expiry set before the rule is due, but the tag is immutable now: it stays.
    await inObject(repo, "UPDATE tags SET expires_ms = 5 WHERE name = 'lts-1'");
    await runAlarm(repo);
    expect(await tagDigest(repo, "lts-1")).toBe(kept);
  });
});
