// The `registry-events` queue consumer: writes each RegistryEvent to the D1 audit log and counts
// manifest pulls per repository and UTC day.
//
// One D1 batch per message batch. D1 runs a batch as one transaction, so a batch either lands
// whole or not at all; then the messages are acked together, or all retried. Redelivery (a retry,
// or an ack lost after the commit: Queues deliver at least once) is harmless because every
// statement is keyed on the event id:
// - the audit row is `INSERT … ON CONFLICT(event_id) DO NOTHING`;
// - a pull increments its counter only while no audit row carries that event id yet, and that
//   guard runs in the same transaction just before the audit row is written.
//
// Pulls therefore get an audit row too (in addition to the counter), for two reasons: the row is
// what makes the counter idempotent without a second dedupe table, and who pulled a private
// repository from which address is what an audit asks about (Quay logs `pull_repo` the same way).
// The cost is volume: pulls dominate traffic, so a retention job should prune old pull rows first.

import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { auditLog, pullCounts } from "../../../schema/db/d1.ts";
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

/** Writes the events in one D1 batch (one transaction): audit rows, and pull counters. */
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
    if (event.kind !== "manifest.pull" || !event.repository) return [row];
    // Runs before the audit row: "no row with this event id yet" means "not counted yet".
    const count = orm
      .insert(pullCounts)
      .select(
        sql`SELECT ${event.repository}, ${utcDay(event.at)}, 1
            WHERE NOT EXISTS (SELECT 1 FROM ${auditLog} WHERE ${auditLog.eventId} = ${event.id})`,
      )
      .onConflictDoUpdate({
        target: [pullCounts.repository, pullCounts.day],
        set: { count: sql`${pullCounts.count} + 1` },
      });
    return [count, row];
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
