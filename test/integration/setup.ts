// Applies the D1 migrations before each test file (the workers-sdk idiom for D1).
import { applyD1Migrations, env } from "cloudflare:test";

await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
