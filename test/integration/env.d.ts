// The bindings tests see through `cloudflare:test`: the Worker's own plus the test migrations.
import type { D1Migration } from "cloudflare:test";
import type { Env as WorkerEnv } from "../../workers/registry/env.ts";

declare global {
  namespace Cloudflare {
    interface Env extends WorkerEnv {
      TEST_MIGRATIONS: D1Migration[];
    }
  }
}
