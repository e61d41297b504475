// The D1 index of repositories (drizzle): written once per repository, paged by `_catalog`.
import { asc, gt } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { repositories } from "../../../schema/db/d1.ts";

export interface CatalogStore {
  register(name: string): Promise<void>;
  list(limit: number, last: string | null): Promise<{ names: string[]; more: boolean }>;
}

export function catalogStore(db: D1Database): CatalogStore {
  const orm = drizzle(db);
  return {
    async register(name) {
      await orm
        .insert(repositories)
        .values({ name, createdAt: new Date() })
        .onConflictDoNothing()
        .run();
    },
    async list(limit, last) {
      const rows = await orm
        .select({ name: repositories.name })
        .from(repositories)
        .where(last === null ? undefined : gt(repositories.name, last))
        .orderBy(asc(repositories.name))
        .limit(limit + 1)
        .all();
      return { names: rows.slice(0, limit).map((row) => row.name), more: rows.length > limit };
    },
  };
}
