// The time machine and tag expiry as the management API uses them: a repository's tag history,
// restoring a tag to a digest it held inside the retention window, erasing a history entry, and
// setting or clearing a tag's expiry. The RepositoryObject decides (atomically with the tag
// move); this service authorizes, calls it, and audits what changed.
import type { LifecycleRefusal, TagLifetime } from "../../../schema/lifecycle.ts";
import type { Digest, RepositoryName, Tag } from "../../../schema/oci/reference.ts";
import { namespaceOf, repositoryAccess } from "../auth/access.ts";
import { formatDuration } from "../lib/duration.ts";
import type { ObjectDirectory } from "../storage/repository-stubs.ts";
import { emit, type IdentityContext } from "./identity/context.ts";
import { forbidden, IdentityError, notFound } from "./identity/errors.ts";
import { encodeCursor, type Page, type PageRequest } from "./identity/pagination.ts";
import { requireRepositoryReader } from "./lifecycle-policy.ts";

type Objects = Pick<ObjectDirectory, "repository">;

export interface TagHistoryEntryView {
  id: string;
  tag: string;
  digest: string;
  startedAt: string;
  endedAt: string | null;
  /** moved, deleted, restored, expired or pruned; null while current. */
  endReason: string | null;
  expiresAt: string | null;
  current: boolean;
  manifestPresent: boolean;
  restorable: boolean;
}

export interface TagHistoryView extends Page<TagHistoryEntryView> {
  retention: string;
}

export async function tagHistory(
  ctx: IdentityContext,
  objects: Objects,
  repository: RepositoryName,
  filter: { tag: Tag | null },
  page: PageRequest,
): Promise<TagHistoryView> {
  await requireRepositoryReader(ctx, repository);
  let beforeId: number | null = null;
  if (page.after) {
    beforeId = Number(page.after[0]);
    if (!Number.isSafeInteger(beforeId) || beforeId < 1) {
      throw new IdentityError("INVALID_REQUEST", "cursor is not one this API returned");
    }
  }
  const result = await objects
    .repository(repository)
    .listTagHistory({ tag: filter.tag, limit: page.limit, beforeId });
  const last = result.entries.at(-1);
  return {
    items: result.entries.map(historyView),
    nextCursor: result.more && last ? encodeCursor([String(last.id)]) : null,
    retention: formatDuration(result.retentionMs),
  };
}

/** Points `tag` back at `digest`; a no-op (and no event) if it already points there. */
export async function restoreTag(
  ctx: IdentityContext,
  objects: Objects,
  repository: RepositoryName,
  tag: Tag,
  digest: Digest,
): Promise<{ tag: string; digest: string; previousDigest: string | null; moved: boolean }> {
  await requireTagAdmin(ctx, repository, "restore its tags");
  const result = ensure(await objects.repository(repository).restoreTag(tag, digest));
  if (result.moved) {
    emit(ctx, "tag.restore", {
      namespace: namespaceOf(repository),
      repository,
      metadata: { tag, digest, previousDigest: result.previousDigest },
    });
  }
  return { tag, digest, previousDigest: result.previousDigest, moved: result.moved };
}

/** Erases an ended lifetime: its manifest may be collected now instead of after the window. */
export async function eraseHistoryEntry(
  ctx: IdentityContext,
  objects: Objects,
  repository: RepositoryName,
  id: number,
): Promise<void> {
  await requireTagAdmin(ctx, repository, "erase its tag history");
  const result = ensure(await objects.repository(repository).eraseTagHistory(id));
  emit(ctx, "tag.history.delete", {
    namespace: namespaceOf(repository),
    repository,
    metadata: { id, tag: result.tag, digest: result.digest },
  });
}

/** Sets (a time) or clears (null) when a tag expires. */
export async function setTagExpiry(
  ctx: IdentityContext,
  objects: Objects,
  repository: RepositoryName,
  tag: Tag,
  expiresMs: number | null,
): Promise<{ tag: string; digest: string; expiresAt: string | null }> {
  await requireTagAdmin(ctx, repository, "change its tags' expiry");
  const result = ensure(await objects.repository(repository).setTagExpiry(tag, expiresMs));
  const expiresAt = iso(expiresMs);
  if (result.previousMs !== expiresMs) {
    emit(ctx, "tag.expiry", {
      namespace: namespaceOf(repository),
      repository,
      metadata: { tag, digest: result.digest, expiresAt, previous: iso(result.previousMs) },
    });
  }
  return { tag, digest: result.digest, expiresAt };
}

/**
 * Changing tags takes a repository administrator (404 for who cannot see it, 403 otherwise),
 * and a repository that is not read-only (read-only refuses every write, whoever asks).
 */
async function requireTagAdmin(
  ctx: IdentityContext,
  repository: string,
  purpose: string,
): Promise<void> {
  const access = await repositoryAccess(ctx.db, ctx.caller, repository);
  if (!access.exists || !(access.admin || access.actions.has("pull"))) {
    throw notFound(`repository ${repository} not found`);
  }
  if (!access.admin) {
    throw forbidden(`only administrators of repository ${repository} may ${purpose}`);
  }
  if (!access.actions.has("push")) {
    throw forbidden(`repository ${repository} is read-only: its tags cannot change`);
  }
}

/** A successful lifecycle RPC result, or its refusal thrown as the API error it names. */
function ensure<T extends { ok: boolean }>(result: T): Exclude<T, { ok: false }> {
  if (result.ok === false) {
    const refusal = result as unknown as LifecycleRefusal;
    throw new IdentityError(refusal.error, refusal.message);
  }
  return result as Exclude<T, { ok: false }>;
}

function historyView(entry: TagLifetime): TagHistoryEntryView {
  return {
    id: String(entry.id),
    tag: entry.tag,
    digest: entry.digest,
    startedAt: iso(entry.startMs)!,
    endedAt: iso(entry.endMs),
    endReason: entry.endReason,
    expiresAt: iso(entry.expiresMs),
    current: entry.endMs === null,
    manifestPresent: entry.manifestPresent,
    restorable: entry.restorable,
  };
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}
