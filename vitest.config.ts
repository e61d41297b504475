// Three test projects: code that runs on workerd (unit tests beside the Worker and Durable Object
// sources, integration tests per OCI resource), the hooks Worker on workerd, and Node-side tests
// (the local runner, the build fleet, end-to-end tests that start the real registry and drive it
// with real clients).
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

import { generateSigningJwk } from "./scripts/local-secrets.ts";

const migrations = await readD1Migrations("./schema/migrations/d1");
const tokenSigningKey = await generateSigningJwk();
// Shared by the registry and hooks projects: the API seals webhook secrets, the hooks Worker opens them.
const webhookSecretKey = "5e".repeat(32);

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
                WEBHOOK_SECRET_KEY: webhookSecretKey,
                FLEET_CREDENTIAL: "erf_test-bootstrap-fleet-credential",
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
        // The hooks Worker on its own, as deployed: its wrangler.toml, the same D1 migrations, and
        // a test-only Worker consuming the queues it produces to, so tests see what was sent.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./workers/hooks/wrangler.toml" },
            miniflare: {
              bindings: { WEBHOOK_SECRET_KEY: webhookSecretKey, TEST_MIGRATIONS: migrations },
              serviceBindings: { QUEUE_RECORDER: "queue-recorder" },
              workers: [
                {
                  name: "queue-recorder",
                  modules: true,
                  scriptPath: "./test/hooks/queue-recorder.js",
                  queueConsumers: {
                    builds: { maxBatchTimeout: 0.05 },
                    "registry-events": { maxBatchTimeout: 0.05 },
                  },
                },
              ],
            },
          }),
        ],
        test: {
          name: "hooks",
          include: ["test/hooks/**/*.test.ts"],
          setupFiles: ["./test/hooks/setup.ts"],
        },
      },
      {
        test: {
          name: "node",
          environment: "node",
          include: ["scripts/**/*.test.ts", "build-fleet/**/*.test.ts", "test/e2e/**/*.test.ts"],
          // The kvm driver's builder image (a whole Debian root, /proc mounted while it is made).
          exclude: ["**/node_modules/**", "build-fleet/vm/.image/**"],
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
