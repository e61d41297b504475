// "Why is this manifest still stored?": the garbage collector's own rules for one manifest
// (tags, parent indexes, subject, tag history inside the window, push grace), read from the
// RepositoryObject that applies them, for anyone who may pull the repository.
import type { Digest, RepositoryName } from "../../../schema/oci/reference.ts";
import type { ObjectDirectory } from "../storage/repository-stubs.ts";
import type { IdentityContext } from "./identity/context.ts";
import { notFound } from "./identity/errors.ts";
import { requireRepositoryReader } from "./lifecycle-policy.ts";

export interface ManifestRetentionView {
  digest: string;
  kept: boolean;
  keptBy: {
    tags: string[];
    parents: string[];
    subject: string | null;
    historyUntil: string | null;
    pushGraceUntil: string | null;
  };
  /** When only time keeps it: when it becomes collectable. */
  collectableAt: string | null;
}

export async function manifestRetention(
  ctx: IdentityContext,
  objects: Pick<ObjectDirectory, "repository">,
  repository: RepositoryName,
  digest: Digest,
): Promise<ManifestRetentionView> {
  await requireRepositoryReader(ctx, repository);
  const retention = await objects.repository(repository).explainRetention(digest);
  if (!retention) throw notFound(`manifest ${digest} is not stored in ${repository}`);
  return {
    digest: retention.digest,
    kept: retention.kept,
    keptBy: {
      tags: retention.tags,
      parents: retention.parents,
      subject: retention.subject,
      historyUntil: isoOrNull(retention.historyUntil),
      pushGraceUntil: isoOrNull(retention.pushGraceUntil),
    },
    collectableAt: isoOrNull(retention.collectableAt),
  };
}

function isoOrNull(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}
