// Management API: repositories (create where allowed, list what is visible, settings, delete with
// their manifests and tags) and their permissions. A private repository the caller cannot see is
// exactly as absent as a missing one; refusals change nothing, in D1 or in the RepositoryObject.
import { env } from "cloudflare:test";
import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { beforeEach, describe, expect, it } from "vitest";
import { blobRefShardName } from "../../durable-objects/blob-ref-object.ts";
import { permissions, repositories } from "../../schema/db/d1.ts";
import type { Digest } from "../../schema/oci/reference.ts";
import { repositoryAccess } from "../../workers/registry/auth/access.ts";
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
import { sha256 } from "./helpers.ts";

const orm = drizzle(env.DB);

beforeEach(() => {
  events.length = 0;
});

interface Detail {
  name: string;
  namespace: string;
  visibility: string;
  state: string;
  access: { actions: string[]; admin: boolean };
}

async function createRepo(as: TestUser, name: string, visibility = "private"): Promise<Detail> {
  return json<Detail>(
    await expectStatus(
      await call("POST", "/repositories", { as, body: { name, visibility } }),
      201,
    ),
  );
}

/** An org owned by `owner` with a team of each role, each holding the given user. */
async function orgWithTeams(
  owner: TestUser,
  members: { creator?: TestUser; member?: TestUser } = {},
): Promise<string> {
  const org = unique("org");
  await expectStatus(await call("POST", "/organizations", { as: owner, body: { name: org } }), 201);
  for (const role of ["creator", "member"] as const) {
    const team = `${role}s`;
    await expectStatus(
      await call("POST", `/organizations/${org}/teams`, { as: owner, body: { name: team, role } }),
      201,
    );
    const who = members[role];
    if (who) {
      await expectStatus(
        await call("PUT", `/organizations/${org}/teams/${team}/members/${who.name}`, { as: owner }),
        201,
      );
    }
  }
  return org;
}

describe("POST /repositories", () => {
  it("creates a private repository in the caller's namespace", async () => {
    const user = await makeUser();
    const name = `${user.name}/app`;
    const repo = await createRepo(user, name);
    expect(repo).toMatchObject({
      name,
      namespace: user.name,
      visibility: "private",
      state: "normal",
      access: { actions: ["pull", "push", "delete"], admin: true },
    });
    expect(eventSince(0, "repository.create")).toMatchObject({
      namespace: user.name,
      repository: name,
      metadata: { visibility: "private" },
    });
    await expectNoChange(() => call("POST", "/repositories", { as: user, body: { name } }), 409);
  });

  it("lets org admins and creator teams create, not member teams or outsiders", async () => {
    const owner = await makeUser();
    const creator = await makeUser();
    const member = await makeUser();
    const outsider = await makeUser();
    const org = await orgWithTeams(owner, { creator, member });
    await createRepo(owner, `${org}/by-admin`, "public");
    const made = await createRepo(creator, `${org}/by-creator`);
    // The creator administers what they made (ensureRepository grants it).
    expect(made.access.admin).toBe(true);
    await expectNoChange(
      () => call("POST", "/repositories", { as: member, body: { name: `${org}/x` } }),
      403,
      "FORBIDDEN",
    );
    await expectNoChange(
      () => call("POST", "/repositories", { as: outsider, body: { name: `${org}/x` } }),
      404,
      "NOT_FOUND",
    );
    await expectNoChange(
      () => call("POST", "/repositories", { as: outsider, body: { name: `${owner.name}/x` } }),
      404,
    );
    await expectNoChange(
      () => call("POST", "/repositories", { as: owner, body: { name: `${unique("nope")}/x` } }),
      404,
    );
  });

  it("keeps names without a namespace for superusers", async () => {
    const user = await makeUser();
    const name = unique("top");
    await expectNoChange(() => call("POST", "/repositories", { as: user, body: { name } }), 403);
    await createRepo(await admin(), name);
  });

  it("validates the body", async () => {
    const user = await makeUser();
    for (const body of [
      {},
      { name: `${user.name}/UPPER` },
      { name: `${user.name}/ok`, visibility: "secret" },
      { name: `${user.name}/ok`, state: "normal" },
    ]) {
      await expectNoChange(() => call("POST", "/repositories", { as: user, body }), 400);
    }
  });
});

describe("GET /repositories", () => {
  it("lists only what the caller may see, by namespace, a page at a time", async () => {
    const owner = await makeUser();
    const other = await makeUser();
    await createRepo(owner, `${owner.name}/a`, "public");
    await createRepo(owner, `${owner.name}/b`);
    await createRepo(owner, `${owner.name}/c`);
    await createRepo(owner, `${owner.name}/d`, "public");
    const names = async (as: TestUser, query: string) =>
      (
        await json<{ repositories: { name: string }[]; next_cursor: string | null }>(
          await expectStatus(await call("GET", `/repositories${query}`, { as }), 200),
        )
      ).repositories.map((r) => r.name);
    expect(await names(owner, `?namespace=${owner.name}`)).toEqual(
      ["a", "b", "c", "d"].map((r) => `${owner.name}/${r}`),
    );
    expect(await names(other, `?namespace=${owner.name}`)).toEqual([
      `${owner.name}/a`,
      `${owner.name}/d`,
    ]);
    await call("PUT", `/repositories/${owner.name}/c/permissions/user/${other.name}`, {
      as: owner,
      body: { role: "read" },
    });
    expect(await names(other, `?namespace=${owner.name}`)).toEqual(
      ["a", "c", "d"].map((r) => `${owner.name}/${r}`),
    );
    expect(await names(await admin(), `?namespace=${owner.name}`)).toHaveLength(4);

    const first = await json<{ repositories: { name: string }[]; next_cursor: string }>(
      await call("GET", `/repositories?namespace=${owner.name}&limit=3`, { as: owner }),
    );
    expect(first.repositories).toHaveLength(3);
    const second = await json<{ repositories: { name: string }[]; next_cursor: null }>(
      await call(
        "GET",
        `/repositories?namespace=${owner.name}&limit=3&cursor=${first.next_cursor}`,
        {
          as: owner,
        },
      ),
    );
    expect(second.repositories.map((r) => r.name)).toEqual([`${owner.name}/d`]);
    expect(second.next_cursor).toBeNull();
  });

  it("shows org admins every repository of their organization", async () => {
    const owner = await makeUser();
    const coAdmin = await makeUser();
    const org = await orgWithTeams(owner);
    await call("PUT", `/organizations/${org}/teams/owners/members/${coAdmin.name}`, { as: owner });
    await createRepo(owner, `${org}/private`);
    const list = await json<{ repositories: { name: string }[] }>(
      await call("GET", `/repositories?namespace=${org}`, { as: coAdmin }),
    );
    expect(list.repositories.map((r) => r.name)).toEqual([`${org}/private`]);
  });
});

describe("GET /repositories/:name", () => {
  it("describes a repository with the caller's access; hides private ones (404 like missing)", async () => {
    const owner = await makeUser();
    const other = await makeUser();
    const priv = `${owner.name}/secret`;
    const pub = `${owner.name}/open`;
    await createRepo(owner, priv);
    await createRepo(owner, pub, "public");
    const seen = await json<Detail>(
      await expectStatus(await call("GET", `/repositories/${pub}`, { as: other }), 200),
    );
    expect(seen).toMatchObject({
      visibility: "public",
      access: { actions: ["pull"], admin: false },
    });
    const hidden = await expectApiError(
      await call("GET", `/repositories/${priv}`, { as: other }),
      404,
    );
    const missing = await expectApiError(
      await call("GET", `/repositories/${owner.name}/missing`, { as: other }),
      404,
    );
    expect(hidden.message.replace("secret", "X")).toBe(missing.message.replace("missing", "X"));
    await expectApiError(await call("GET", `/repositories/${pub}`), 401);
  });
});

describe("PATCH /repositories/:name", () => {
  it("changes visibility and state, one event per actual change", async () => {
    const owner = await makeUser();
    const other = await makeUser();
    const name = `${owner.name}/app`;
    await createRepo(owner, name);
    let mark = events.length;
    const res = await call("PATCH", `/repositories/${name}`, {
      as: owner,
      body: { visibility: "public", state: "read-only" },
    });
    const repo = await json<Detail>(await expectStatus(res, 200));
    expect(repo).toMatchObject({ visibility: "public", state: "read-only" });
    // A read-only repository refuses every write, its admins' included.
    expect(repo.access.actions).toEqual(["pull"]);
    expect(eventSince(mark, "repository.visibility").metadata).toEqual({
      from: "private",
      to: "public",
    });
    expect(eventSince(mark, "repository.state").metadata).toEqual({
      from: "normal",
      to: "read-only",
    });
    // The change is visible to others at once.
    await expectStatus(await call("GET", `/repositories/${name}`, { as: other }), 200);

    mark = events.length;
    await expectStatus(
      await call("PATCH", `/repositories/${name}`, { as: owner, body: { visibility: "public" } }),
      200,
    );
    expect(kindsSince(mark)).toEqual([]);
  });

  it("refuses readers (403), outsiders (404) and bad bodies (400)", async () => {
    const owner = await makeUser();
    const reader = await makeUser();
    const outsider = await makeUser();
    const name = `${owner.name}/app`;
    await createRepo(owner, name);
    await call("PUT", `/repositories/${name}/permissions/user/${reader.name}`, {
      as: owner,
      body: { role: "write" },
    });
    const body = { visibility: "public" };
    await expectNoChange(() => call("PATCH", `/repositories/${name}`, { as: reader, body }), 403);
    await expectNoChange(() => call("PATCH", `/repositories/${name}`, { as: outsider, body }), 404);
    await expectNoChange(
      () => call("PATCH", `/repositories/${name}`, { as: owner, body: {} }),
      400,
    );
    await expectNoChange(
      () => call("PATCH", `/repositories/${name}`, { as: owner, body: { state: "frozen" } }),
      400,
    );
  });
});

// ---- repository content, written straight into the RepositoryObject --------------------------

const encoder = new TextEncoder();

async function linkBlob(repo: string, bytes: Uint8Array) {
  const digest = (await sha256(bytes)) as Digest;
  // A link is counted at the blob's shard, which must know the copy (garbage collection).
  const key = `test/${digest}`;
  await env.BLOB_REF.getByName(blobRefShardName(digest)).registerCopy(
    digest,
    bytes.byteLength,
    "primary",
    key,
  );
  const linked = await env.REPOSITORY.getByName(repo).linkBlob({
    digest,
    size: bytes.byteLength,
    key,
  });
  expect(linked.ok).toBe(true);
  return { digest, size: bytes.byteLength };
}

async function putManifest(
  repo: string,
  json: Record<string, unknown>,
  options: {
    tag?: string;
    mediaType?: string;
    blobs?: { digest: Digest; size: number }[];
    children?: { digest: Digest; size: number }[];
    subject?: { digest: Digest; size: number };
  } = {},
): Promise<{ digest: Digest; size: number }> {
  const body = encoder.encode(JSON.stringify(json));
  const digest = (await sha256(body)) as Digest;
  const mediaType = options.mediaType ?? "application/vnd.oci.image.manifest.v1+json";
  const descriptor = (d: { digest: Digest; size: number }) => ({ ...d, mediaType });
  const result = await env.REPOSITORY.getByName(repo).putManifest({
    digest,
    mediaType,
    body,
    blobs: (options.blobs ?? []).map(descriptor),
    children: (options.children ?? []).map(descriptor),
    ...(options.subject ? { subject: descriptor(options.subject) } : {}),
    ...(options.tag ? { tag: options.tag } : {}),
  });
  expect(result.ok).toBe(true);
  return { digest, size: body.byteLength };
}

/** Two tagged images, an index over them, and a signature referring to the first. */
async function fillRepository(repo: string): Promise<Digest[]> {
  const config = await linkBlob(repo, encoder.encode(`{"nonce":${Math.random()}}`));
  const layer = await linkBlob(repo, crypto.getRandomValues(new Uint8Array(64)));
  const image = (n: number) => ({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer }],
    annotations: { n: String(n) },
  });
  const a = await putManifest(repo, image(1), { tag: "v1", blobs: [config, layer] });
  const b = await putManifest(repo, image(2), { blobs: [config, layer] });
  const index = await putManifest(
    repo,
    {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        { mediaType: "application/vnd.oci.image.manifest.v1+json", ...a },
        { mediaType: "application/vnd.oci.image.manifest.v1+json", ...b },
      ],
    },
    { tag: "latest", mediaType: "application/vnd.oci.image.index.v1+json", children: [a, b] },
  );
  const signature = await putManifest(
    repo,
    { ...image(3), subject: { mediaType: "application/vnd.oci.image.manifest.v1+json", ...a } },
    { blobs: [config, layer], subject: a },
  );
  return [a.digest, b.digest, index.digest, signature.digest];
}

describe("DELETE /repositories/:name", () => {
  it("deletes the row, its permissions, and every manifest and tag in the object", async () => {
    const owner = await makeUser();
    const reader = await makeUser();
    const name = `${owner.name}/${unique("app")}`;
    await createRepo(owner, name);
    await call("PUT", `/repositories/${name}/permissions/user/${reader.name}`, {
      as: owner,
      body: { role: "read" },
    });
    const digests = await fillRepository(name);
    const stub = env.REPOSITORY.getByName(name);
    expect((await stub.listTags(10, null)).tags).toEqual(["latest", "v1"]);

    const mark = events.length;
    await expectStatus(await call("DELETE", `/repositories/${name}`, { as: owner }), 204);
    expect(eventSince(mark, "repository.delete")).toMatchObject({
      namespace: owner.name,
      repository: name,
      metadata: { manifests: 4, tags: 2 },
    });
    expect(await orm.select().from(repositories).where(eq(repositories.name, name)).all()).toEqual(
      [],
    );
    expect(
      await orm.select().from(permissions).where(eq(permissions.repository, name)).all(),
    ).toEqual([]);
    expect((await stub.listTags(10, null)).tags).toEqual([]);
    for (const digest of digests) expect(await stub.getManifest({ digest }, false)).toBeNull();
    await expectApiError(await call("GET", `/repositories/${name}`, { as: owner }), 404);
    // Access left with the row.
    expect(
      (
        await repositoryAccess(
          env.DB,
          { kind: "user", id: reader.id, name: reader.name, superuser: false },
          name,
        )
      ).actions.size,
    ).toBe(0);
  });

  it("refuses writers (403) and outsiders (404), leaving row and content intact", async () => {
    const owner = await makeUser();
    const writer = await makeUser();
    const outsider = await makeUser();
    const name = `${owner.name}/${unique("app")}`;
    await createRepo(owner, name);
    await call("PUT", `/repositories/${name}/permissions/user/${writer.name}`, {
      as: owner,
      body: { role: "write" },
    });
    const digests = await fillRepository(name);
    await expectNoChange(() => call("DELETE", `/repositories/${name}`, { as: writer }), 403);
    await expectNoChange(() => call("DELETE", `/repositories/${name}`, { as: outsider }), 404);
    await expectNoChange(
      () => call("DELETE", `/repositories/${owner.name}/missing`, { as: owner }),
      404,
    );
    const stub = env.REPOSITORY.getByName(name);
    expect((await stub.listTags(10, null)).tags).toEqual(["latest", "v1"]);
    for (const digest of digests) expect(await stub.getManifest({ digest }, false)).not.toBeNull();
  });
});

describe("repository permissions", () => {
  it("grants, lists, changes and revokes, taking effect at once", async () => {
    const owner = await makeUser();
    const friend = await makeUser();
    const org = await orgWithTeams(owner, { member: friend });
    await expectStatus(
      await call("POST", `/namespaces/${org}/robots`, { as: owner, body: { name: "ci" } }),
      201,
    );
    const name = `${org}/app`;
    await createRepo(owner, name);
    const base = `/repositories/${name}/permissions`;
    await expectApiError(await call("GET", `/repositories/${name}`, { as: friend }), 404);

    let mark = events.length;
    const granted = await call("PUT", `${base}/user/${friend.name}`, {
      as: owner,
      body: { role: "read" },
    });
    expect(await json(await expectStatus(granted, 200))).toEqual({
      kind: "user",
      name: friend.name,
      role: "read",
    });
    expect(eventSince(mark, "permission.grant")).toMatchObject({
      namespace: org,
      repository: name,
      metadata: { kind: "user", name: friend.name, role: "read", previous: null },
    });
    const seen = await json<Detail>(await call("GET", `/repositories/${name}`, { as: friend }));
    expect(seen.access).toEqual({ actions: ["pull"], admin: false });

    // Teams by short name, `org/team` or `org%2Fteam`; robots by short or full name.
    await expectStatus(
      await call("PUT", `${base}/team/members`, { as: owner, body: { role: "write" } }),
      200,
    );
    await expectStatus(
      await call("PUT", `${base}/team/${org}%2Fcreators`, { as: owner, body: { role: "read" } }),
      200,
    );
    await expectStatus(
      await call("PUT", `${base}/robot/ci`, { as: owner, body: { role: "write" } }),
      200,
    );
    const after = await json<Detail>(await call("GET", `/repositories/${name}`, { as: friend }));
    expect(after.access.actions).toEqual(["pull", "push"]);

    const listed = await json<{ permissions: { kind: string; name: string; role: string }[] }>(
      await call("GET", base, { as: owner }),
    );
    expect(new Set(listed.permissions.map((p) => `${p.kind}:${p.name}:${p.role}`))).toEqual(
      new Set([
        `user:${friend.name}:read`,
        `user:${owner.name}:admin`,
        `team:${org}/members:write`,
        `team:${org}/creators:read`,
        `robot:${org}+ci:write`,
      ]),
    );
    const paged = await json<{ permissions: unknown[]; next_cursor: string }>(
      await call("GET", `${base}?limit=2`, { as: owner }),
    );
    expect(paged.permissions).toHaveLength(2);
    const rest = await json<{ permissions: unknown[]; next_cursor: string | null }>(
      await call("GET", `${base}?limit=10&cursor=${paged.next_cursor}`, { as: owner }),
    );
    expect(rest.permissions).toHaveLength(3);

    mark = events.length;
    await expectStatus(
      await call("PUT", `${base}/user/${friend.name}`, { as: owner, body: { role: "admin" } }),
      200,
    );
    expect(eventSince(mark, "permission.grant").metadata).toMatchObject({
      role: "admin",
      previous: "read",
    });
    // Now an admin of the repository, the friend may manage its permissions.
    await expectStatus(await call("GET", base, { as: friend }), 200);

    mark = events.length;
    await expectStatus(await call("DELETE", `${base}/user/${friend.name}`, { as: owner }), 204);
    await expectStatus(await call("DELETE", `${base}/team/${org}/members`, { as: owner }), 204);
    expect(kindsSince(mark)).toEqual(["permission.revoke", "permission.revoke"]);
    expect(events.at(-1)?.metadata).toMatchObject({
      kind: "team",
      name: `${org}/members`,
      role: "write",
    });
    await expectApiError(await call("GET", `/repositories/${name}`, { as: friend }), 404);
    await expectNoChange(() => call("DELETE", `${base}/user/${friend.name}`, { as: owner }), 404);
  });

  it("refuses grantees of other namespaces, unknown grantees and bad input", async () => {
    const owner = await makeUser();
    const org = await orgWithTeams(owner);
    const elsewhere = await orgWithTeams(owner);
    await call("POST", `/namespaces/${elsewhere}/robots`, { as: owner, body: { name: "ci" } });
    const name = `${org}/app`;
    await createRepo(owner, name);
    const base = `/repositories/${name}/permissions`;
    const body = { role: "read" };
    await expectNoChange(
      () => call("PUT", `${base}/team/${elsewhere}/owners`, { as: owner, body }),
      400,
    );
    await expectNoChange(
      () => call("PUT", `${base}/robot/${elsewhere}+ci`, { as: owner, body }),
      400,
    );
    await expectNoChange(
      () => call("PUT", `${base}/user/${elsewhere}+ci`, { as: owner, body }),
      400,
    );
    await expectNoChange(() => call("PUT", `${base}/team/nope`, { as: owner, body }), 404);
    await expectNoChange(() => call("PUT", `${base}/robot/nope`, { as: owner, body }), 404);
    await expectNoChange(
      () => call("PUT", `${base}/user/${unique("ghost")}`, { as: owner, body }),
      404,
    );
    await expectNoChange(() => call("PUT", `${base}/group/x`, { as: owner, body }), 400);
    await expectNoChange(
      () => call("PUT", `${base}/user/${owner.name}`, { as: owner, body: { role: "owner" } }),
      400,
    );
    await expectNoChange(
      () => call("PUT", `${base}/user/${owner.name}`, { as: owner, body: {} }),
      400,
    );
    // In a user's namespace there are no teams.
    await createRepo(owner, `${owner.name}/mine`);
    await expectNoChange(
      () =>
        call("PUT", `/repositories/${owner.name}/mine/permissions/team/${org}/owners`, {
          as: owner,
          body,
        }),
      400,
    );
    // PUT on a repository itself is no endpoint.
    await expectNoChange(() => call("PUT", `/repositories/${name}`, { as: owner, body }), 404);
  });

  it("is for repository admins: writers get 403, those who cannot see it 404", async () => {
    const owner = await makeUser();
    const writer = await makeUser();
    const outsider = await makeUser();
    const name = `${owner.name}/app`;
    await createRepo(owner, name);
    await call("PUT", `/repositories/${name}/permissions/user/${writer.name}`, {
      as: owner,
      body: { role: "write" },
    });
    const base = `/repositories/${name}/permissions`;
    for (const [who, status] of [
      [writer, 403],
      [outsider, 404],
    ] as const) {
      await expectNoChange(() => call("GET", base, { as: who }), status);
      await expectNoChange(
        () => call("PUT", `${base}/user/${who.name}`, { as: who, body: { role: "admin" } }),
        status,
      );
      await expectNoChange(
        () => call("DELETE", `${base}/user/${writer.name}`, { as: who }),
        status,
      );
    }
    await expectNoChange(() => call("GET", base), 401);
  });
});

describe("GET /repositories/:name/pulls (served beside the repository routes)", () => {
  it("reaches the pull counters, not the repository description", async () => {
    const owner = await makeUser();
    const outsider = await makeUser();
    const name = `${owner.name}/app`;
    await createRepo(owner, name);
    const res = await expectStatus(
      await call("GET", `/repositories/${name}/pulls?days=7`, { as: owner }),
      200,
    );
    const body = await json<{ repository: string; days: unknown[]; total: number }>(res);
    expect(body).toMatchObject({ repository: name, total: 0 });
    expect(body.days).toHaveLength(7);
    await expectApiError(await call("GET", `/repositories/${name}/pulls`, { as: outsider }), 404);
    await expectApiError(
      await call("GET", `/repositories/${name}/pulls?days=0`, { as: owner }),
      400,
    );
  });
});
