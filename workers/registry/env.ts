// The registry Worker's bindings (wrangler.toml) and the hono context type built on them.
import type { ObjectEnv } from "../../durable-objects/env.ts";
import type { BuildRequest } from "../../schema/builds.ts";
import type { RegistryAuth } from "./auth/registry-auth.ts";
import type { EventSink } from "./services/events.ts";
import type { RegistryServices } from "./services/registry-services.ts";
import type { TokenService } from "./services/token-service.ts";

export interface Env extends ObjectEnv {
  DB: D1Database;
  EVENTS: Queue;
  /** "local": signed route of this Worker; "s3": presigned URL on R2's S3 endpoint. */
  BLOB_REDIRECT_MODE: string;
  BLOB_URL_TTL_SECONDS: string;
  R2_BUCKET_NAME: string;
  R2_ACCOUNT_ID?: string;
  R2_ACCESS_KEY_ID?: string;
  R2_SECRET_ACCESS_KEY?: string;
  REGISTRY_ADMIN_USER: string;
  REGISTRY_ADMIN_PASSWORD: string;
  /** HMAC key for everything this Worker puts in a URL to be trusted later. */
  URL_SIGNING_SECRET: string;
  /** EC P-256 private JWK (JSON) that signs registry tokens. */
  TOKEN_SIGNING_KEY: string;
  /** The token `service` (audience); defaults to "edge-registry". */
  REGISTRY_SERVICE?: string;
  /** The `builds` queue: manual builds put their BuildRequest on it (so does the hooks Worker). */
  BUILDS: Queue<BuildRequest>;
  /**
   * The bootstrap fleet credential (a secret): a fleet host may connect with it besides the
   * credentials superusers create. `npm start` generates one into `.dev.vars`.
   */
  FLEET_CREDENTIAL?: string;
  /** 64 hex characters: the AES-256-GCM key sealing webhook secrets (the hooks Worker has it too). */
  WEBHOOK_SECRET_KEY: string;
}

export interface AppEnv {
  Bindings: Env;
  Variables: {
    services: RegistryServices;
    events: EventSink;
    tokens: TokenService;
    /** Set on /v2 routes: who is calling and what they may do. */
    auth: RegistryAuth;
  };
}
