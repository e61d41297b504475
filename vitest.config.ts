// Two test projects: code that runs on workerd (unit tests beside the Worker and Durable Object
// sources, integration tests per OCI resource), and Node-side tests (the local runner, the
// build fleet, end-to-end tests that start the real registry and drive it with real clients).
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

import { generateSigningJwk } from "./scripts/local-secrets.ts";

const migrations = await readD1Migrations("./schema/migrations/d1");
const tokenSigningKey = await generateSigningJwk();

export default defineConfig({
  test: {
    projects: [
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                URL_SIGNING_SECRET: "test-url-signing-secret-0123456789abcdef",
                REGISTRY_ADMIN_PASSWORD: "test-admin-password",
                TOKEN_SIGNING_KEY: tokenSigningKey,
                TEST_MIGRATIONS: migrations,
              },
            },
          }),
        ],
        test: {
          name: "workerd",
          include: [
            "workers/**/*.test.ts",
            "durable-objects/**/*.test.ts",
            "schema/**/*.test.ts",
            "test/integration/**/*.test.ts",
          ],
          setupFiles: ["./test/integration/setup.ts"],
        },
      },
      {
        test: {
          name: "node",
          environment: "node",
          include: ["scripts/**/*.test.ts", "build-fleet/**/*.test.ts", "test/e2e/**/*.test.ts"],
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
