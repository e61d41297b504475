// BlobRefObject: sharded by digest prefix. Owns each blob's size, copies and reference count.
import { DurableObject } from "cloudflare:workers";
import type { ObjectEnv } from "./env.ts";

export class BlobRefObject extends DurableObject<ObjectEnv> {}
