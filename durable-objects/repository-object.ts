// RepositoryObject: one per repository. Owns tags, manifests, blob links and upload sessions.
import { DurableObject } from "cloudflare:workers";
import type { ObjectEnv } from "./env.ts";

export class RepositoryObject extends DurableObject<ObjectEnv> {}
