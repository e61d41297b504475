// The fleet host's WebSocket to the coordinator (`GET /fleet/v1/connect`): authenticates with
// `Authorization: Bearer <fleet credential>` (Node's WebSocket takes headers), says hello,
// heartbeats, reconnects with capped exponential backoff, and keeps what it must send while
// disconnected (phases, results, releases; log lines up to a limit) for the next connection.
import {
  FLEET_HEARTBEAT_MS,
  type FleetCoordinatorMessage,
  type FleetHostMessage,
} from "../../schema/builds.ts";

export interface ConnectionOptions {
  /** The registry's base URL; http → ws, https → wss. */
  registryUrl: URL;
  credential: string;
  /** The hello to send on each connection (built fresh: concurrency changes when draining). */
  hello(): Extract<FleetHostMessage, { type: "hello" }>;
  /** The attempts running now, for heartbeats. */
  running(): { buildId: string; attempt: number }[];
  onMessage(message: FleetCoordinatorMessage): void;
  log(text: string): void;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Log lines kept while disconnected; older ones beyond this are dropped (and counted). */
  maxQueuedLogLines?: number;
}

/** The path of the fleet WebSocket under the registry's URL. */
export const FLEET_CONNECT_PATH = "/fleet/v1/connect";

export function fleetSocketUrl(registryUrl: URL): URL {
  const url = new URL(FLEET_CONNECT_PATH, registryUrl);
  url.protocol = registryUrl.protocol === "https:" ? "wss:" : "ws:";
  return url;
}

/** Checks a coordinator message's shape; undefined for anything this host does not understand. */
export function parseCoordinatorMessage(data: unknown): FleetCoordinatorMessage | undefined {
  if (typeof data !== "string") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const m = value as Record<string, unknown>;
  switch (m.type) {
    case "welcome":
      return typeof m.heartbeatMs === "number" && m.heartbeatMs > 0 && typeof m.leaseMs === "number"
        ? (value as FleetCoordinatorMessage)
        : undefined;
    case "job": {
      const job = m.job as Record<string, unknown> | null;
      const ok =
        typeof job === "object" &&
        job !== null &&
        typeof job.buildId === "string" &&
        Number.isInteger(job.attempt) &&
        typeof job.repository === "string" &&
        typeof job.token === "string" &&
        typeof job.dockerfilePath === "string" &&
        typeof job.contextDir === "string" &&
        Array.isArray(job.tags) &&
        job.tags.every((tag) => typeof tag === "string") &&
        typeof job.source === "object" &&
        job.source !== null;
      return ok ? (value as FleetCoordinatorMessage) : undefined;
    }
    case "cancel":
      return typeof m.buildId === "string" &&
        Number.isInteger(m.attempt) &&
        typeof m.reason === "string"
        ? (value as FleetCoordinatorMessage)
        : undefined;
    case "error":
      return typeof m.message === "string" ? (value as FleetCoordinatorMessage) : undefined;
    default:
      return undefined;
  }
}

/** The delay before reconnect attempt `n` (0-based): doubling, capped, with jitter in [½, 1]. */
export function backoffDelay(
  n: number,
  initialMs: number,
  maxMs: number,
  random = Math.random,
): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(n, 30));
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}

type State = "idle" | "connecting" | "ready" | "closed";

export class FleetConnection {
  readonly #options: ConnectionOptions;
  #socket: WebSocket | undefined;
  #state: State = "idle";
  #failures = 0;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #reconnect: ReturnType<typeof setTimeout> | undefined;
  #queue: FleetHostMessage[] = [];
  #queuedLogLines = 0;
  #droppedLogLines = 0;
  #readyWaiters: (() => void)[] = [];

  constructor(options: ConnectionOptions) {
    this.#options = options;
  }

  get ready(): boolean {
    return this.#state === "ready";
  }

  start(): void {
    if (this.#state !== "idle") return;
    this.#connect();
  }

  /** Sends now when connected and welcomed, else keeps the message for the next connection. */
  send(message: FleetHostMessage): void {
    if (this.#state === "ready" && this.#socket?.readyState === WebSocket.OPEN) {
      this.#socket.send(JSON.stringify(message));
      return;
    }
    this.#enqueue(message);
  }

  /** Says hello again (concurrency 0 when draining); when disconnected, the next hello will. */
  sayHello(): void {
    if (this.#state === "ready" && this.#socket?.readyState === WebSocket.OPEN) {
      this.#socket.send(JSON.stringify(this.#options.hello()));
    }
  }

  /** Resolves once connected and welcomed, or after `timeoutMs` (false). */
  waitReady(timeoutMs: number): Promise<boolean> {
    if (this.#state === "ready") return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.#readyWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** Whether everything sent has left this process (nothing queued or buffered). */
  get drained(): boolean {
    return (
      this.#queue.length === 0 && (this.#socket === undefined || this.#socket.bufferedAmount === 0)
    );
  }

  /** Waits (up to `timeoutMs`) for queued and buffered messages to go out, then closes. */
  async close(timeoutMs = 5_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!this.drained && Date.now() < until && this.#state !== "closed") {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    this.#state = "closed";
    this.#stopTimers();
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket && socket.readyState <= WebSocket.OPEN) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1_000);
        socket.addEventListener("close", () => {
          clearTimeout(timer);
          resolve();
        });
        socket.close(1000, "fleet host stopping");
      });
    }
  }

  #enqueue(message: FleetHostMessage): void {
    if (message.type === "heartbeat" || message.type === "hello") return;
    if (message.type === "log") {
      const max = this.#options.maxQueuedLogLines ?? 10_000;
      if (this.#queuedLogLines + message.lines.length > max) {
        this.#droppedLogLines += message.lines.length;
        return;
      }
      this.#queuedLogLines += message.lines.length;
    }
    this.#queue.push(message);
  }

  #connect(): void {
    this.#state = "connecting";
    const url = fleetSocketUrl(this.#options.registryUrl);
    // Node's WebSocket (undici) accepts headers in its init dictionary, beyond the web standard.
    const init = { headers: { Authorization: `Bearer ${this.#options.credential}` } };
    let socket: WebSocket;
    try {
      socket = new WebSocket(url, init as unknown as string[]);
    } catch (error) {
      this.#options.log(`fleet: cannot connect to ${url}: ${(error as Error).message}`);
      this.#scheduleReconnect();
      return;
    }
    this.#socket = socket;
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify(this.#options.hello()));
    });
    socket.addEventListener("message", (event) => {
      if (socket !== this.#socket) return;
      const message = parseCoordinatorMessage(event.data);
      if (message === undefined) {
        this.#options.log(
          `fleet: ignoring a message this host does not understand: ${String(event.data).slice(0, 200)}`,
        );
        return;
      }
      if (message.type === "welcome") {
        this.#welcomed(socket, message.heartbeatMs);
        return;
      }
      this.#options.onMessage(message);
    });
    // Undici fires only `error` (no `close`) when the handshake fails, e.g. a 401: both end the
    // socket here, once.
    const ended = (code: number, reason: string) => {
      if (socket !== this.#socket) return;
      this.#socket = undefined;
      this.#stopTimers();
      if (this.#state === "closed") return;
      const was = this.#state;
      this.#state = "connecting";
      this.#options.log(
        was === "ready"
          ? `fleet: connection closed (${code}${reason ? ` ${reason}` : ""}); reconnecting`
          : `fleet: cannot connect to ${url} (${reason || code}: refused, unreachable or not authorized)`,
      );
      this.#scheduleReconnect();
    };
    socket.addEventListener("close", (event) => ended(event.code, event.reason));
    socket.addEventListener("error", (event) => {
      ended(1006, (event as Event & { message?: string }).message ?? "error");
      try {
        socket.close();
      } catch {
        // Never opened.
      }
    });
  }

  #welcomed(socket: WebSocket, heartbeatMs: number): void {
    // A second hello on the same connection (draining) is welcomed again: one heartbeat only.
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    if (this.#state !== "ready") {
      this.#options.log(`fleet: connected to ${fleetSocketUrl(this.#options.registryUrl)}`);
    }
    this.#state = "ready";
    this.#failures = 0;
    const queued = this.#queue;
    this.#queue = [];
    this.#queuedLogLines = 0;
    if (this.#droppedLogLines > 0) {
      this.#options.log(`fleet: dropped ${this.#droppedLogLines} log lines while disconnected`);
      this.#droppedLogLines = 0;
    }
    for (const message of queued) socket.send(JSON.stringify(message));
    this.#sendHeartbeat();
    const interval = Math.max(100, Math.min(heartbeatMs, FLEET_HEARTBEAT_MS));
    this.#heartbeat = setInterval(() => this.#sendHeartbeat(), interval);
    const waiters = this.#readyWaiters;
    this.#readyWaiters = [];
    for (const waiter of waiters) waiter();
  }

  #sendHeartbeat(): void {
    if (this.#state !== "ready" || this.#socket?.readyState !== WebSocket.OPEN) return;
    this.#socket.send(JSON.stringify({ type: "heartbeat", running: this.#options.running() }));
  }

  #scheduleReconnect(): void {
    const delay = backoffDelay(
      this.#failures++,
      this.#options.initialBackoffMs ?? 500,
      this.#options.maxBackoffMs ?? 30_000,
    );
    this.#reconnect = setTimeout(() => {
      this.#reconnect = undefined;
      if (this.#state !== "closed") this.#connect();
    }, delay);
  }

  #stopTimers(): void {
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    if (this.#state === "closed" && this.#reconnect !== undefined) {
      clearTimeout(this.#reconnect);
      this.#reconnect = undefined;
    }
  }
}
