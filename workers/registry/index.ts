// The registry Worker's entry: the hono app for HTTP, the event-queue consumer (audit log, pull
// counts), and the Durable Object classes it exports.
import type { RegistryEvent } from "../../schema/events.ts";
import { app } from "./app.ts";
import type { Env } from "./env.ts";
import { handleEventBatch } from "./queue/consumer.ts";

export { BlobRefObject } from "../../durable-objects/blob-ref-object.ts";
export { RepositoryObject } from "../../durable-objects/repository-object.ts";

export default {
  fetch: app.fetch,
  queue: (batch, env) => handleEventBatch(batch, env),
} satisfies ExportedHandler<Env, RegistryEvent>;
