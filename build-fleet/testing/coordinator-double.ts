// The coordinator's side of the fleet WebSocket for the fleet's own tests: a real RFC 6455 server
// on loopback (node:http upgrade, text frames), recording what hosts send and letting the test
// send jobs and cancels. It checks the Authorization header as the registry's route does.
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { Socket } from "node:net";

import type { FleetCoordinatorMessage, FleetHostMessage } from "../../schema/builds.ts";

const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

export interface HostConnection {
  headers: IncomingMessage["headers"];
  messages: FleetHostMessage[];
  send(message: FleetCoordinatorMessage): void;
  close(code?: number): void;
  closed: boolean;
}

export interface CoordinatorDouble {
  url: URL;
  connections: HostConnection[];
  /** Every message from every connection, in arrival order. */
  messages: FleetHostMessage[];
  /** Refused upgrades (wrong credential), counted. */
  refused: number;
  /** When a message arrived (Date.now()). */
  arrivedAt(message: FleetHostMessage): number | undefined;
  /** Resolves with the first message (from now on or already received) matching `match`. */
  waitFor<T extends FleetHostMessage>(
    match: (message: FleetHostMessage) => message is T,
    timeoutMs?: number,
  ): Promise<T>;
  waitFor(
    match: (message: FleetHostMessage) => boolean,
    timeoutMs?: number,
  ): Promise<FleetHostMessage>;
  waitForConnection(count: number, timeoutMs?: number): Promise<HostConnection>;
  stop(): Promise<void>;
}

export async function startCoordinatorDouble(options: {
  credential: string;
  heartbeatMs?: number;
  leaseMs?: number;
  /** Send `welcome` on hello (default true). */
  welcome?: boolean;
}): Promise<CoordinatorDouble> {
  const connections: HostConnection[] = [];
  const messages: FleetHostMessage[] = [];
  const listeners = new Set<() => void>();
  const arrivals = new WeakMap<FleetHostMessage, number>();
  const sockets = new Set<Socket>();
  const notify = () => {
    for (const listener of [...listeners]) listener();
  };
  const server: Server = createServer((_request, response) => {
    response.writeHead(426).end();
  });
  const double: CoordinatorDouble = {
    url: new URL("http://127.0.0.1"),
    connections,
    messages,
    refused: 0,
    arrivedAt: (message) => arrivals.get(message),
    waitFor(match: (message: FleetHostMessage) => boolean, timeoutMs = 30_000) {
      return waitUntil(() => messages.find(match), timeoutMs, listeners, "a fleet host message");
    },
    waitForConnection(count, timeoutMs = 30_000) {
      return waitUntil(() => connections[count - 1], timeoutMs, listeners, `connection ${count}`);
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  } as CoordinatorDouble;
  server.on("upgrade", (request: IncomingMessage, socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    if (request.headers.authorization !== `Bearer ${options.credential}`) {
      double.refused++;
      socket.end("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      notify();
      return;
    }
    const key = request.headers["sec-websocket-key"] ?? "";
    const accept = createHash("sha1")
      .update(key + WEBSOCKET_GUID)
      .digest("base64");
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    const connection: HostConnection = {
      headers: request.headers,
      messages: [],
      closed: false,
      send: (message) => {
        if (!connection.closed) socket.write(frame(0x1, Buffer.from(JSON.stringify(message))));
      },
      close: (code = 1000) => {
        if (connection.closed) return;
        const payload = Buffer.alloc(2);
        payload.writeUInt16BE(code);
        socket.write(frame(0x8, payload));
        connection.closed = true;
        socket.end();
      },
    };
    connections.push(connection);
    let buffer = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const parsed = parseFrame(buffer);
        if (parsed === undefined) break;
        buffer = buffer.subarray(parsed.length);
        if (parsed.opcode === 0x8) {
          if (!connection.closed) socket.write(frame(0x8, parsed.payload.subarray(0, 2)));
          connection.closed = true;
          socket.end();
          break;
        }
        if (parsed.opcode === 0x9) socket.write(frame(0xa, parsed.payload));
        if (parsed.opcode !== 0x1) continue;
        const message = JSON.parse(parsed.payload.toString("utf8")) as FleetHostMessage;
        arrivals.set(message, Date.now());
        connection.messages.push(message);
        messages.push(message);
        if (message.type === "hello" && options.welcome !== false) {
          connection.send({
            type: "welcome",
            heartbeatMs: options.heartbeatMs ?? 5_000,
            leaseMs: options.leaseMs ?? 15_000,
          });
        }
      }
      notify();
    });
    socket.on("close", () => {
      connection.closed = true;
      notify();
    });
    notify();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no address");
  double.url = new URL(`http://127.0.0.1:${address.port}`);
  return double;
}

function waitUntil<T>(
  find: () => T | undefined,
  timeoutMs: number,
  listeners: Set<() => void>,
  what: string,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const found = find();
      if (found === undefined) return;
      cleanup();
      resolve(found);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out waiting for ${what}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      listeners.delete(check);
    };
    listeners.add(check);
    check();
  });
}

/** A server frame: FIN set, unmasked. */
function frame(opcode: number, payload: Buffer): Buffer {
  const length = payload.length;
  const header =
    length < 126 ? Buffer.alloc(2) : length < 65_536 ? Buffer.alloc(4) : Buffer.alloc(10);
  header[0] = 0x80 | opcode;
  if (length < 126) header[1] = length;
  else if (length < 65_536) {
    header[1] = 126;
    header.writeUInt16BE(length, 2);
  } else {
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  return Buffer.concat([header, payload]);
}

/** A client frame (masked), or undefined when the buffer does not hold a whole one yet. */
function parseFrame(
  buffer: Buffer,
): { opcode: number; payload: Buffer; length: number } | undefined {
  if (buffer.length < 2) return undefined;
  const opcode = buffer[0]! & 0x0f;
  const masked = (buffer[1]! & 0x80) !== 0;
  let length = buffer[1]! & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buffer.length < 4) return undefined;
    length = buffer.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (buffer.length < 10) return undefined;
    length = Number(buffer.readBigUInt64BE(2));
    offset = 10;
  }
  const maskOffset = offset;
  if (masked) offset += 4;
  if (buffer.length < offset + length) return undefined;
  const payload = Buffer.from(buffer.subarray(offset, offset + length));
  if (masked) {
    for (let i = 0; i < payload.length; i++) payload[i]! ^= buffer[maskOffset + (i % 4)]!;
  }
  return { opcode, payload, length: offset + length };
}
