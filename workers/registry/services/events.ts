// Sends events after the response: the request never waits for the queue (the audit log must
// add no latency). A send that fails is logged; the state change itself already committed.
import type { RegistryEvent } from "../../../schema/events.ts";

export type NewEvent = Omit<RegistryEvent, "id" | "at"> & { at?: number };

export interface EventSink {
  emit(event: NewEvent): void;
}

export function eventSink(queue: Queue, waitUntil: (promise: Promise<unknown>) => void): EventSink {
  return {
    emit(event) {
      const message: RegistryEvent = { id: crypto.randomUUID(), at: Date.now(), ...event };
      waitUntil(
        queue.send(message, { contentType: "json" }).catch((error: unknown) => {
          console.error(`event ${message.kind} not queued`, error);
        }),
      );
    },
  };
}
