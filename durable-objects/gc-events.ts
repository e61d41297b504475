// The audit events of garbage collection: written to an outbox in the transaction that collects,
// sent to the `registry-events` queue after commit, retried by the alarm when the send fails. A
// collection nobody asked for (an alarm at 3 a.m.) is audited like any other change.
import type { EventKind, RegistryEvent } from "../schema/events.ts";

/** Appended to the migrations of each object that collects. */
export const GC_EVENTS_TABLE = `CREATE TABLE gc_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);`;

/** The actor of every collection: the registry itself. */
const COLLECTOR = { kind: "system", name: "garbage-collector" } as const;
/** A queue batch holds at most 100 messages and 256 KB; events stay under 16 KB each. */
const EVENTS_PER_SEND = 50;

export interface GcEvent {
  kind: EventKind;
  at: number;
  repository?: string;
  namespace?: string;
  metadata: Record<string, unknown>;
}

export function recordGcEvent(sql: SqlStorage, event: GcEvent): void {
  const body: RegistryEvent = { id: crypto.randomUUID(), actor: COLLECTOR, ...event };
  sql.exec("INSERT INTO gc_events (body) VALUES (?)", JSON.stringify(body));
}

/** Sends what is pending, oldest first; false when something stays for a retry. */
export async function flushGcEvents(sql: SqlStorage, queue: Queue): Promise<boolean> {
  for (;;) {
    const rows = sql
      .exec<{ seq: number; body: string }>(
        "SELECT seq, body FROM gc_events ORDER BY seq LIMIT ?",
        EVENTS_PER_SEND,
      )
      .toArray();
    if (rows.length === 0) return true;
    try {
      await queue.sendBatch(
        rows.map((row) => ({ body: JSON.parse(row.body) as RegistryEvent, contentType: "json" })),
      );
    } catch (error) {
      console.error("garbage collection events not queued, will retry", error);
      return false;
    }
    // Each event has its id: a send repeated after a lost answer is stored once by the consumer.
    sql.exec("DELETE FROM gc_events WHERE seq <= ?", rows.at(-1)!.seq);
  }
}

/** Splits a long list so each event's metadata stays far below the audit log's bound. */
export function inChunks<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let at = 0; at < items.length; at += size) chunks.push(items.slice(at, at + size));
  return chunks;
}
