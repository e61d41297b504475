// The `registry-events` queue consumer: writes each RegistryEvent to the D1 audit log.
//
// One D1 batch per message batch. D1 runs a batch as one transaction, so a batch either lands
// whole or not at all; then the messages are acked together, or all retried. Redelivery (a retry,
// or an ack lost after the commit: Queues deliver at least once) is harmless because each row is
// `INSERT … ON CONFLICT(event_id) DO NOTHING`.
//
// Pulls are not events: the RepositoryObject counts them in memory and adds them to
// `pull_counts` in batches, so a pull never waits for (or pays for) a queue message.

import { drizzle } from "drizzle-orm/d1";
import { auditLog } from "../../../schema/db/d1.ts";
import type { RegistryEvent } from "../../../schema/events.ts";
import type { Env } from "../env.ts";

/** Seconds before a failed batch is retried: 10 s, 20 s, 40 s … capped at 5 minutes. */
export function retryDelaySeconds(attempts: number): number {
  return Math.min(300, 10 * 2 ** Math.max(0, attempts - 1));
}

/** The UTC day of a timestamp, as `pull_counts.day` stores it (`YYYY-MM-DD`). */
export function utcDay(at: number): string {
  return new Date(at).toISOString().slice(0, 10);
}

export async function handleEventBatch(
  batch: MessageBatch<RegistryEvent>,
  env: Env,
): Promise<void> {
  const writes: { message: Message<RegistryEvent>; event: RegistryEvent }[] = [];
  const seen = new Set<string>();
  for (const message of batch.messages) {
    const event = message.body;
    if (!isRegistryEvent(event)) {
      // Retrying cannot fix a malformed message: ack it (so it does not block the batch) and
      // leave a trace in the Worker's log.
      console.error(`registry-events: dropping malformed message ${message.id}`);
      continue;
    }
    // A copy of an event already in this batch would be a no-op (the statements run in order in
    // one transaction, so its guard sees the first copy's row); skip it rather than send it.
    if (seen.has(event.id)) continue;
    seen.add(event.id);
    writes.push({ message, event });
  }
  if (writes.length === 0) {
    batch.ackAll();
    return;
  }

  const attempts = Math.max(...batch.messages.map((message) => message.attempts));
  try {
    await writeEvents(
      env.DB,
      writes.map((write) => write.event),
    );
    batch.ackAll();
    return;
  } catch (error) {
    console.error(`registry-events: batch of ${writes.length} events not written`, error);
    // Nothing committed (the batch is one transaction). The first time, assume D1 had a moment
    // and retry everything later.
    if (attempts < 2 || writes.length === 1) {
      batch.retryAll({ delaySeconds: retryDelaySeconds(attempts) });
      return;
    }
  }
  // It failed before: one event may be what breaks it, and retrying the batch whole would lose
  // all of them once max_retries runs out. Write each alone; retry only those that still fail.
  // Acks here are per message, so the malformed ones skipped above are acked explicitly.
  const toWrite = new Set(writes.map((write) => write.message));
  for (const message of batch.messages) if (!toWrite.has(message)) message.ack();
  for (const { message, event } of writes) {
    try {
      await writeEvents(env.DB, [event]);
      message.ack();
    } catch (error) {
      console.error(`registry-events: event ${event.id} (${event.kind}) not written`, error);
      message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    }
  }
}

/**
 * Metadata bigger than this is replaced by a note of its size: a D1 statement is limited to
 * 100 KB, and one oversized event must not make its whole batch fail.
 */
export const MAX_METADATA_CHARS = 16_384;

function boundedMetadata(metadata: Record<string, unknown> | undefined): unknown {
  if (metadata === undefined) return null;
  const size = JSON.stringify(metadata).length;
  return size > MAX_METADATA_CHARS ? { truncated: true, chars: size } : metadata;
}

/** Writes the events in one D1 batch (one transaction). */
export async function writeEvents(db: D1Database, events: readonly RegistryEvent[]): Promise<void> {
  const orm = drizzle(db);
  const statements = events.flatMap((event) => {
    const row = orm
      .insert(auditLog)
      .values({
        eventId: event.id,
        at: new Date(event.at),
        kind: event.kind,
        namespace: event.namespace ?? null,
        repository: event.repository ?? null,
        actorKind: event.actor.kind,
        actor: event.actor.name ?? null,
        clientIp: event.clientIp ?? null,
        metadata: boundedMetadata(event.metadata),
      })
      .onConflictDoNothing({ target: auditLog.eventId });
    return [row];
  });
  const [first, ...rest] = statements;
  if (first) await orm.batch([first, ...rest]);
}

function isRegistryEvent(value: unknown): value is RegistryEvent {
  if (typeof value !== "object" || value === null) return false;
  const event = value as Partial<RegistryEvent>;
  return (
    typeof event.id === "string" &&
    event.id !== "" &&
    typeof event.at === "number" &&
    // A time a Date can hold (±8.64e15 ms); anything else cannot be stored as one.
    Math.abs(event.at) <= 8.64e15 &&
    typeof event.kind === "string" &&
    typeof event.actor === "object" &&
    event.actor !== null &&
    typeof event.actor.kind === "string"
  );
}
