// Test-only Worker beside the hooks Worker: consumes the `builds` and `registry-events` queues the
// hooks Worker produces to, and answers `GET /?queue=<name>` with every message body received.
const received = new Map();

export default {
  async queue(batch) {
    const bodies = received.get(batch.queue) ?? [];
    for (const message of batch.messages) bodies.push(message.body);
    received.set(batch.queue, bodies);
    batch.ackAll();
  },
  async fetch(request) {
    const queue = new URL(request.url).searchParams.get("queue") ?? "";
    return Response.json(received.get(queue) ?? []);
  },
};
