// Shared by the garbage collection tests: a clock the tests move (Date is faked in this isolate,
// which the Durable Objects share), alarms driven explicitly, and views of the objects' state.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { vi } from "vitest";
import { blobRefShardName } from "../../durable-objects/blob-ref-object.ts";
import type { RepositoryObject } from "../../durable-objects/repository-object.ts";
import type { LifecyclePolicy } from "../../schema/lifecycle.ts";
import type { Digest } from "../../schema/oci/reference.ts";
import type { BlobRecord } from "../../schema/rpc.ts";
import { api } from "./helpers.ts";

export const GRACE_MS = Number(env.GC_GRACE_SECONDS || 3600) * 1000;
export const DAY_MS = 24 * 3600 * 1000;
export const DEFAULT_RETENTION_MS = 14 * DAY_MS;

/**
 * Freezes Date at the real time: it moves only when a test says so. Alarms are then set at times
 * the real clock reaches late or never, so none fires by itself: every sweep is driven.
 */
export function freezeClock(): void {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(new Date());
}

export function releaseClock(): void {
  vi.useRealTimers();
}

export function advance(ms: number): void {
  vi.setSystemTime(new Date(Date.now() + ms));
}

export function repository(name: string): DurableObjectStub<RepositoryObject> {
  return env.REPOSITORY.getByName(name);
}

export function shard(digest: string) {
  return env.BLOB_REF.getByName(blobRefShardName(digest));
}

/** Runs a repository's alarm (manifest and link collection, delta delivery) if one is set. */
export function collect(name: string): Promise<boolean> {
  return runDurableObjectAlarm(repository(name));
}

/** Runs the alarm of the shard that holds `digest` (the sweep) if one is set. */
export function sweep(digest: string): Promise<boolean> {
  return runDurableObjectAlarm(shard(digest));
}

export function blobRecord(digest: string): Promise<BlobRecord | null> {
  return shard(digest).get(digest as Digest);
}

export async function setRetention(name: string, retentionMs: number): Promise<void> {
  const policy: LifecyclePolicy = {
    repository: name,
    namespace: name.slice(0, name.indexOf("/")),
    // Above any revision the catalog pushes when the repository is first written.
    revision: Number.MAX_SAFE_INTEGER,
    retentionMs,
    immutableTags: [],
    prune: [],
  };
  await repository(name).setPolicy(policy);
}

export interface RepositoryState {
  manifests: { digest: string; subject: string | null }[];
  refs: { manifest: string; target: string; kind: "blob" | "manifest" }[];
  tags: { name: string; digest: string; end_ms: number | null }[];
  links: { digest: string; r2_key: string }[];
}

/** Everything the collector decides from, read straight from the object's tables. */
export function repositoryState(name: string): Promise<RepositoryState> {
  return runInDurableObject(repository(name), (_object: RepositoryObject, state) => {
    const sql = state.storage.sql;
    return {
      manifests: sql
        .exec<{ digest: string; subject: string | null }>("SELECT digest, subject FROM manifests")
        .toArray(),
      refs: sql
        .exec<{ manifest: string; target: string; kind: "blob" | "manifest" }>(
          "SELECT manifest, target, kind FROM manifest_refs",
        )
        .toArray(),
      tags: sql
        .exec<{ name: string; digest: string; end_ms: number | null }>(
          "SELECT name, digest, end_ms FROM tags",
        )
        .toArray(),
      links: sql
        .exec<{ digest: string; r2_key: string }>("SELECT digest, r2_key FROM blob_links")
        .toArray(),
    };
  });
}

export async function hasManifest(name: string, digest: string): Promise<boolean> {
  return (await api(`/v2/${name}/manifests/${digest}`, { method: "HEAD" })).status === 200;
}

export async function blobStatus(name: string, digest: string): Promise<number> {
  return (await api(`/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status;
}

/** Audit rows of a kind, waited for: the queue delivers them within seconds (real time). */
export async function auditEvents(
  kind: string,
  match: (metadata: Record<string, unknown>) => boolean,
): Promise<{ repository: string | null; actor_kind: string; metadata: Record<string, unknown> }[]> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const { results } = await env.DB.prepare(
      "SELECT repository, actor_kind, metadata FROM audit_log WHERE kind = ?",
    )
      .bind(kind)
      .all<{ repository: string | null; actor_kind: string; metadata: string }>();
    const rows = results
      .map((row) => ({ ...row, metadata: JSON.parse(row.metadata) as Record<string, unknown> }))
      .filter((row) => match(row.metadata));
    if (rows.length > 0) return rows;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return [];
}
