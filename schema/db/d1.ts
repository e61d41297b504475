// D1 tables (drizzle): the registry-wide index of repositories. Identities and policy join here.
import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/** Every repository that ever received a write; `_catalog` pages through it by name. */
export const repositories = sqliteTable("repositories", {
  name: text("name").primaryKey(),
  createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
});
