// The hooks Worker's bindings (workers/hooks/wrangler.toml).
import type { BuildRequest } from "../../schema/builds.ts";
import type { RegistryEvent } from "../../schema/events.ts";

export interface HooksEnv {
  /** The registry's D1: `build_triggers` (read) and `hook_deliveries` (replay protection). */
  DB: D1Database;
  BUILDS: Queue<BuildRequest>;
  /** The registry's `registry-events` queue: audit events of refused hooks and queued builds. */
  EVENTS: Queue<RegistryEvent>;
  /** 64 hex characters: opens the sealed webhook secrets (the registry Worker seals them). */
  WEBHOOK_SECRET_KEY: string;
}
