// Measurements that must run on workerd (not tests: they report figures and assert nothing).
// `npm run bench:workerd`.
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { generateSigningJwk } from "./scripts/local-secrets.ts";

const migrations = await readD1Migrations("./schema/migrations/d1");

export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        bindings: {
          URL_SIGNING_SECRET: "measure-url-signing-secret-0123456789abcdef",
          REGISTRY_ADMIN_PASSWORD: "measure-admin-password",
          TOKEN_SIGNING_KEY: await generateSigningJwk(),
          FLEET_CREDENTIAL: "erf_measure-bootstrap-fleet-credential",
          TEST_MIGRATIONS: migrations,
        },
      },
    }),
  ],
  test: {
    include: ["test/measure/**/*.measure.ts"],
    setupFiles: ["./test/integration/setup.ts"],
    testTimeout: 300_000,
  },
});
