// Applies the registry's D1 migrations to the hooks Worker's DB before each test file.

import type { D1Migration } from "cloudflare:test";
import { applyD1Migrations, env } from "cloudflare:test";

await applyD1Migrations(
  env.DB,
  (env as unknown as { TEST_MIGRATIONS: D1Migration[] }).TEST_MIGRATIONS,
);
