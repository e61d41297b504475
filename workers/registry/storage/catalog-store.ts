// The D1 index of repositories as the registry core sees it: record a repository on its first
// write, and page through the names the caller may see.
import type { Principal } from "../auth/principals.ts";
import { ensureRepository, visibleRepositories } from "../services/repository-registry.ts";

export interface CatalogStore {
  /** Records the repository (first write); returns whether it was new. */
  register(name: string): Promise<boolean>;
  list(limit: number, last: string | null): Promise<{ names: string[]; more: boolean }>;
}

export function catalogStore(db: D1Database, principal: Principal): CatalogStore {
  return {
    register: (name) => ensureRepository(db, name, principal),
    list: (limit, last) => visibleRepositories(db, principal, limit, last),
  };
}
