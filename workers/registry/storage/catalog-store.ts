// The D1 index of repositories as the registry core sees it: record a repository on its first
// write, and page through the names the caller may see.
import type { LifecyclePolicy } from "../../../schema/lifecycle.ts";
import type { Principal } from "../auth/principals.ts";
import { effectivePolicy } from "../services/lifecycle-policy.ts";
import { ensureRepository, visibleRepositories } from "../services/repository-registry.ts";

export interface CatalogStore {
  /** Records the repository (first write); returns whether it was new. */
  register(name: string): Promise<boolean>;
  list(limit: number, last: string | null): Promise<{ names: string[]; more: boolean }>;
  /** The tag lifecycle policy its RepositoryObject enforces (services/lifecycle-policy.ts). */
  lifecyclePolicy(name: string): Promise<LifecyclePolicy>;
}

export function catalogStore(db: D1Database, principal: Principal): CatalogStore {
  return {
    register: (name) => ensureRepository(db, name, principal),
    list: (limit, last) => visibleRepositories(db, principal, limit, last),
    lifecyclePolicy: (name) => effectivePolicy(db, name),
  };
}
