// The registry-wide list of repositories (`_catalog`), kept in D1 and written once per repository.
import type { LifecyclePolicy } from "../../../schema/lifecycle.ts";
import type { RepositoryName } from "../../../schema/oci/reference.ts";
import { namespaceOf } from "../auth/access.ts";
import type { CatalogStore } from "../storage/catalog-store.ts";
import { emitFor, type RequestContext } from "./request-context.ts";

/**
 * After a write: records a new repository in D1 (with its default permissions), hands its object
 * the tag lifecycle policy (read after the row exists, so no namespace-wide change can miss it),
 * then tells the object it is done. The creation is an event.
 */
export async function recordInCatalog(
  catalog: CatalogStore,
  repo: { markCatalogRegistered(): unknown; setPolicy(policy: LifecyclePolicy): unknown },
  name: RepositoryName,
  alreadyCatalogued: boolean,
  ctx: RequestContext,
): Promise<void> {
  if (alreadyCatalogued) return;
  const created = await catalog.register(name);
  await repo.setPolicy(await catalog.lifecyclePolicy(name));
  await repo.markCatalogRegistered();
  if (created)
    emitFor(ctx, { kind: "repository.create", repository: name, namespace: namespaceOf(name) });
}
