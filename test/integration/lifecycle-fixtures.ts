// Shared by the tag lifecycle suites (tag-history, tag-expiry, tag-immutability, auto-prune): an
// organization with an owner, a reader and an outsider; images pushed through /v2 (with labels
// when asked); the RepositoryObject's tag rows and policy read straight from the object, so a
// refusal can be shown to have changed nothing; and the audit log polled for events the object
// sends on its own (expiry, prune).
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { expect } from "vitest";
import type { RepositoryObject } from "../../durable-objects/repository-object.ts";
import type { LifecyclePolicy } from "../../schema/lifecycle.ts";
import { call, expectStatus, json, makeUser, type TestUser, unique } from "./api-helpers.ts";
import { api, pushBlob, randomBytes, sha256 } from "./helpers.ts";

export interface Org {
  name: string;
  /** Administers the organization (its "owners" team). */
  owner: TestUser;
  /** Member of a member-role team, granted `read` on each repository made by `repoIn`. */
  reader: TestUser;
  /** Member of a member-role team, granted `write` on each repository made by `repoIn`. */
  writer: TestUser;
  /** In no team of the organization. */
  outsider: TestUser;
}

export async function makeOrg(): Promise<Org> {
  const [owner, reader, writer, outsider] = await Promise.all([
    makeUser(),
    makeUser(),
    makeUser(),
    makeUser(),
  ]);
  const name = unique("org");
  await expectStatus(await call("POST", "/organizations", { as: owner, body: { name } }), 201);
  await expectStatus(
    await call("POST", `/organizations/${name}/teams`, {
      as: owner,
      body: { name: "members", role: "member" },
    }),
    201,
  );
  for (const user of [reader, writer]) {
    await expectStatus(
      await call("PUT", `/organizations/${name}/teams/members/members/${user.name}`, {
        as: owner,
      }),
      201,
    );
  }
  return { name, owner, reader, writer, outsider };
}

/** A repository of the organization, created by a first push (tag `seed`) and granted. */
export async function repoIn(org: Org, prefix = "app"): Promise<string> {
  const repo = `${org.name}/${unique(prefix)}`;
  await pushTagged(repo, "seed");
  for (const [user, role] of [
    [org.reader, "read"],
    [org.writer, "write"],
  ] as const) {
    await expectStatus(
      await call("PUT", `/repositories/${repo}/permissions/user/${user.name}`, {
        as: org.owner,
        body: { role },
      }),
      200,
    );
  }
  return repo;
}

/**
 * Pushes a small image (config + one layer + OCI manifest) as the bootstrap admin, tagged `tag`;
 * `labels` go into the config's `config.Labels`. Returns the manifest digest.
 */
export async function pushTagged(
  repo: string,
  tag: string,
  options: { labels?: Record<string, string>; configMediaType?: string } = {},
): Promise<string> {
  const res = await putImage(repo, tag, options);
  if (res.status !== 201) throw new Error(`push failed: ${res.status} ${await res.text()}`);
  return res.headers.get("Docker-Content-Digest")!;
}

/**
 * The PUT of an image manifest, whatever its answer (the blobs are pushed first); by its own
 * digest when `reference` is null.
 */
export async function putImage(
  repo: string,
  reference: string | null,
  options: { labels?: Record<string, string>; configMediaType?: string } = {},
): Promise<Response> {
  const config = new TextEncoder().encode(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: options.labels ? { Labels: options.labels } : {},
      nonce: crypto.randomUUID(),
    }),
  );
  const configDigest = await pushBlob(repo, config);
  const layer = randomBytes(256);
  const layerDigest = await pushBlob(repo, layer);
  const manifest = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: options.configMediaType ?? "application/vnd.oci.image.config.v1+json",
        digest: configDigest,
        size: config.byteLength,
      },
      layers: [
        {
          mediaType: "application/vnd.oci.image.layer.v1.tar",
          digest: layerDigest,
          size: layer.byteLength,
        },
      ],
    }),
  );
  return api(`/v2/${repo}/manifests/${reference ?? (await sha256(manifest))}`, {
    method: "PUT",
    body: manifest,
    headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" },
  });
}

/** The digest a tag resolves to through /v2, or null when the tag is unknown. */
export async function tagDigest(repo: string, tag: string): Promise<string | null> {
  const res = await api(`/v2/${repo}/manifests/${tag}`, {
    method: "HEAD",
    headers: { Accept: "application/vnd.oci.image.manifest.v1+json" },
  });
  if (res.status === 404) return null;
  expect(res.status).toBe(200);
  return res.headers.get("Docker-Content-Digest");
}

export type TagRow = {
  id: number;
  name: string;
  digest: string;
  start_ms: number;
  end_ms: number | null;
  expires_ms: number | null;
  end_reason: string | null;
};

function stub(repo: string) {
  return env.REPOSITORY.getByName(repo);
}

/** Every tag lifetime row of the repository, in id order (to prove nothing changed). */
export async function tagRows(repo: string): Promise<TagRow[]> {
  return runInDurableObject(stub(repo), (_obj: RepositoryObject, state) =>
    state.storage.sql
      .exec<TagRow>(
        "SELECT id, name, digest, start_ms, end_ms, expires_ms, end_reason FROM tags ORDER BY id",
      )
      .toArray(),
  );
}

/** The digests of the manifests the object stores, sorted. */
export async function manifestDigests(repo: string): Promise<string[]> {
  return runInDurableObject(stub(repo), (_obj: RepositoryObject, state) =>
    state.storage.sql
      .exec<{ digest: string }>("SELECT digest FROM manifests ORDER BY digest")
      .toArray()
      .map((row) => row.digest),
  );
}

/** Runs SQL inside the object: how a test moves a tag's times into the past. */
export async function inObject(repo: string, statement: string, ...bindings: unknown[]) {
  await runInDurableObject(stub(repo), (_obj: RepositoryObject, state) => {
    state.storage.sql.exec(statement, ...bindings);
  });
}

export async function objectPolicy(repo: string): Promise<LifecyclePolicy | null> {
  return stub(repo).lifecyclePolicy();
}

/** When the object's one alarm is set for, or null. */
export async function alarmAt(repo: string): Promise<number | null> {
  return runInDurableObject(stub(repo), (_obj: RepositoryObject, state) =>
    state.storage.getAlarm(),
  );
}

export async function runAlarm(repo: string): Promise<boolean> {
  return runDurableObjectAlarm(stub(repo));
}

export interface AuditRow {
  kind: string;
  namespace: string | null;
  repository: string | null;
  actor_kind: string | null;
  actor: string | null;
  metadata: string | null;
}

/**
 * Polls the audit log until the queue consumer has written an event of `kind` for `repo` (whose
 * metadata satisfies `match`, if given); returns those rows.
 */
export async function eventuallyAudited(
  repo: string,
  kind: string,
  match: (metadata: Record<string, unknown>) => boolean = () => true,
): Promise<AuditRow[]> {
  const deadline = Date.now() + 8_000;
  for (;;) {
    const { results } = await env.DB.prepare(
      "SELECT * FROM audit_log WHERE repository = ? AND kind = ? ORDER BY id",
    )
      .bind(repo, kind)
      .all<AuditRow>();
    const found = results.filter((row) => match(JSON.parse(row.metadata ?? "{}")));
    if (found.length > 0) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${kind} on ${repo}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface HistoryEntry {
  id: string;
  tag: string;
  digest: string;
  startedAt: string;
  endedAt: string | null;
  endReason: string | null;
  expiresAt: string | null;
  current: boolean;
  manifestPresent: boolean;
  restorable: boolean;
}

export async function history(
  as: TestUser,
  repo: string,
  query = "",
): Promise<{ history: HistoryEntry[]; next_cursor: string | null; retention: string }> {
  return json(
    await expectStatus(await call("GET", `/repositories/${repo}/tag-history${query}`, { as }), 200),
  );
}
