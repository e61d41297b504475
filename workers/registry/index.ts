// The registry Worker's entry: the hono app for HTTP, plus the Durable Object classes it exports.
import { app } from "./app.ts";
import type { Env } from "./env.ts";

export { BlobRefObject } from "../../durable-objects/blob-ref-object.ts";
export { RepositoryObject } from "../../durable-objects/repository-object.ts";

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
