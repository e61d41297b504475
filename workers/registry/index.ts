// The registry Worker's entry: the hono app for HTTP, the event-queue consumer (audit log, pull
// counts), and the Durable Object classes it exports.
import type { RegistryEvent } from "../../schema/events.ts";
import { app } from "./app.ts";
import type { Env } from "./env.ts";
import { handleBuildBatch } from "./queue/builds-consumer.ts";
import { handleEventBatch } from "./queue/consumer.ts";
import { BUILDS_QUEUE } from "./services/builds.ts";

export { BlobRefObject } from "../../durable-objects/blob-ref-object.ts";
export { BuildCoordinator } from "../../durable-objects/build-coordinator.ts";
export { BuildObject } from "../../durable-objects/build-object.ts";
export { NamespaceObject } from "../../durable-objects/namespace-object.ts";
export { RepositoryObject } from "../../durable-objects/repository-object.ts";

export default {
  fetch: app.fetch,
  // Two queues: build requests, and everything else's events.
  queue: (batch, env) =>
    batch.queue === BUILDS_QUEUE
      ? handleBuildBatch(batch, env)
      : handleEventBatch(batch as MessageBatch<RegistryEvent>, env),
} satisfies ExportedHandler<Env, unknown>;
