// The registry-wide list of repositories (`_catalog`), kept in D1 and written once per repository.
import type { RepositoryName } from "../../../schema/oci/reference.ts";
import type { CatalogStore } from "../storage/catalog-store.ts";

/** After a write: records a new repository in the catalog, then tells its object it is done. */
export async function recordInCatalog(
  catalog: CatalogStore,
  repo: { markCatalogRegistered(): unknown },
  name: RepositoryName,
  alreadyCatalogued: boolean,
): Promise<void> {
  if (alreadyCatalogued) return;
  await catalog.register(name);
  await repo.markCatalogRegistered();
}
