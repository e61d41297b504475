// The event consumer on workerd: audit rows, idempotent redelivery, and the
// ack/retry outcome of a batch (messages built with `createMessageBatch`).
import {
  createExecutionContext,
  createMessageBatch,
  env,
  getQueueResult,
  type MessageBatchMessage,
} from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { RegistryEvent } from "../../../schema/events.ts";
import { handleEventBatch, MAX_METADATA_CHARS, retryDelaySeconds } from "./consumer.ts";

let serial = 0;
function event(overrides: Partial<RegistryEvent> = {}): RegistryEvent {
  serial += 1;
  return {
    id: crypto.randomUUID(),
    at: Date.UTC(2026, 0, 15, 12, 0, serial % 60),
    kind: "manifest.push",
    namespace: "acme",
    repository: `acme/app-${serial}`,
    actor: { kind: "user", name: "alice", id: "u1" },
    clientIp: "192.0.2.7",
    metadata: { digest: "sha256:abc", tag: "v1" },
    ...overrides,
  };
}

function messages(events: unknown[], attempts = 1): MessageBatchMessage<RegistryEvent>[] {
  return events.map((body, i) => ({
    id: `msg-${serial}-${i}`,
    timestamp: new Date(),
    attempts,
    body: body as RegistryEvent,
  }));
}

async function deliver(events: unknown[], db: D1Database = env.DB, attempts = 1) {
  const batch = createMessageBatch<RegistryEvent>("registry-events", messages(events, attempts));
  const ctx = createExecutionContext();
  await handleEventBatch(batch, { ...env, DB: db });
  return getQueueResult(batch, ctx);
}

async function auditRows(eventIds: string[]) {
  const placeholders = eventIds.map(() => "?").join(",");
  const { results } = await env.DB.prepare(
    `SELECT * FROM audit_log WHERE event_id IN (${placeholders}) ORDER BY id`,
  )
    .bind(...eventIds)
    .all<Record<string, unknown>>();
  return results;
}

/** A D1 whose batches fail after running every statement, so the transaction must roll back. */
function failingDb(): D1Database {
  return new Proxy(env.DB, {
    get(target, property) {
      if (property === "batch") {
        return (statements: D1PreparedStatement[]) =>
          target.batch([...statements, target.prepare("INSERT INTO no_such_table VALUES (1)")]);
      }
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** A D1 whose batches fail whenever they carry a statement bound to `poisonId`. */
function poisonedDb(poisonId: string): D1Database {
  const poisoned = new WeakSet<D1PreparedStatement>();
  const passThrough = <T extends object>(target: T, property: string | symbol) => {
    const value = Reflect.get(target, property);
    return typeof value === "function" ? value.bind(target) : value;
  };
  return new Proxy(env.DB, {
    get(target, property) {
      if (property === "prepare") {
        return (query: string) =>
          new Proxy(target.prepare(query), {
            get(statement, name) {
              if (name !== "bind") return passThrough(statement, name);
              return (...values: unknown[]) => {
                const bound = statement.bind(...values);
                if (values.includes(poisonId)) poisoned.add(bound);
                return bound;
              };
            },
          });
      }
      if (property === "batch") {
        return (statements: D1PreparedStatement[]) =>
          statements.some((statement) => poisoned.has(statement))
            ? Promise.reject(new Error("poisoned"))
            : target.batch(statements);
      }
      return passThrough(target, property);
    },
  });
}

describe("audit log consumer", () => {
  it("writes one audit row per event and acks the batch", async () => {
    const events = [
      event(),
      event({ kind: "tag.delete" }),
      event({ kind: "team.create", repository: undefined }),
    ];
    const result = await deliver(events);
    expect(result.outcome).toBe("ok");
    expect(result.ackAll).toBe(true);
    expect(result.retryBatch.retry).toBe(false);
    expect(result.retryMessages).toEqual([]);

    const rows = await auditRows(events.map((e) => e.id));
    expect(rows).toHaveLength(3);
    expect(rows[0]).toMatchObject({
      event_id: events[0]!.id,
      at: events[0]!.at,
      kind: "manifest.push",
      namespace: "acme",
      repository: events[0]!.repository,
      actor_kind: "user",
      actor: "alice",
      client_ip: "192.0.2.7",
    });
    expect(JSON.parse(rows[0]!.metadata as string)).toEqual({ digest: "sha256:abc", tag: "v1" });
    expect(rows[2]).toMatchObject({ kind: "team.create", repository: null });
  });

  it("stores a redelivered batch once", async () => {
    const events = [event(), event()];
    await deliver(events);
    const again = await deliver(events, env.DB, 2);
    expect(again.ackAll).toBe(true);
    expect(await auditRows(events.map((e) => e.id))).toHaveLength(2);
  });

  it("retries the whole batch on its first failure, leaving nothing behind", async () => {
    const events = [event(), event({ kind: "tag.delete" })];
    const failed = await deliver(events, failingDb(), 1);
    expect(failed.ackAll).toBe(false);
    // (workerd's test harness reports the retry but not its delay; the delay is unit-tested below.)
    expect(failed.retryBatch.retry).toBe(true);
    expect(await auditRows(events.map((e) => e.id))).toHaveLength(0);

    // The retry then lands exactly once.
    const retried = await deliver(events, env.DB, 2);
    expect(retried.ackAll).toBe(true);
    expect(await auditRows(events.map((e) => e.id))).toHaveLength(2);
  });

  it("isolates an event that keeps failing, on the batch's second attempt", async () => {
    const events = [event(), event({ kind: "tag.push" }), event({ kind: "tag.delete" })];
    const poison = events[2]!;
    const batchOf = (attempts: number) =>
      createMessageBatch<RegistryEvent>(
        "registry-events",
        events.map((body, i) => ({ id: `p-${i}`, timestamp: new Date(), attempts, body })),
      );

    // First attempt: the whole batch is retried, nothing is written.
    const first = batchOf(1);
    await handleEventBatch(first, { ...env, DB: poisonedDb(poison.id) });
    const firstResult = await getQueueResult(first, createExecutionContext());
    expect(firstResult.retryBatch.retry).toBe(true);
    expect(await auditRows(events.map((e) => e.id))).toHaveLength(0);

    // Second attempt: each event alone; only the poisoned one is retried.
    const second = batchOf(2);
    await handleEventBatch(second, { ...env, DB: poisonedDb(poison.id) });
    const secondResult = await getQueueResult(second, createExecutionContext());
    expect(secondResult.retryBatch.retry).toBe(false);
    expect(secondResult.ackAll).toBe(false);
    expect(secondResult.explicitAcks.sort()).toEqual(["p-0", "p-1"]);
    expect(secondResult.retryMessages.map((m) => m.msgId)).toEqual(["p-2"]);
    expect((await auditRows(events.map((e) => e.id))).map((row) => row.event_id)).toEqual([
      events[0]!.id,
      events[1]!.id,
    ]);
  });

  it("replaces oversized metadata with a note of its size", async () => {
    const big = event({ metadata: { blob: "x".repeat(MAX_METADATA_CHARS) } });
    expect((await deliver([big])).ackAll).toBe(true);
    const [row] = await auditRows([big.id]);
    expect(JSON.parse(row!.metadata as string)).toEqual({
      truncated: true,
      chars: JSON.stringify(big.metadata).length,
    });
  });

  it("acks malformed messages without writing them", async () => {
    const good = event();
    const result = await deliver([
      { nonsense: true },
      null,
      { ...event(), id: "" },
      { ...event(), at: 1e300 },
      good,
    ]);
    expect(result.ackAll).toBe(true);
    expect(await auditRows([good.id])).toHaveLength(1);
  });

  it("backs off exponentially, capped at five minutes", () => {
    expect([1, 2, 3, 4, 10].map(retryDelaySeconds)).toEqual([10, 20, 40, 80, 300]);
  });
});
