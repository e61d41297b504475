// The local registry's public TCP port: refuses TLS at once, pipes plain HTTP to workerd untouched.
//
// Why it exists: Go registry clients (skopeo, podman, buildah, containerd) try HTTPS first even
// with --tls-verify=false and fall back to plain HTTP only when the TLS attempt fails. workerd
// reads a ClientHello as the start of an HTTP request and waits for the rest, so every call
// stalled for Go's 10 s TLS handshake timeout. Here the first byte of each connection decides:
// a TLS record (0x16) or an SSLv2-style hello (high bit set) is reset immediately; anything else
// is the start of an HTTP/1.x request line and the socket is spliced to workerd's loopback port.
//
// Bytes are piped, not parsed: keep-alive, pipelining, chunked and huge bodies, Expect/100 and
// upgrades all pass through, with backpressure both ways and half-close (FIN) forwarded.

import net from "node:net";

export interface Upstream {
  host: string;
  port: number;
}

export interface FrontDoor {
  /** The port actually bound (useful when asked for port 0). */
  readonly port: number;
  /** Connections accepted before this is called wait for it. */
  setUpstream(upstream: Upstream): void;
  /** Stops listening and drops every open connection. */
  close(): Promise<void>;
}

const TLS_HANDSHAKE_RECORD = 0x16;

/** True if the first byte of a connection cannot start an HTTP/1.x request line. */
export function isTlsOrBinary(firstByte: number): boolean {
  return firstByte === TLS_HANDSHAKE_RECORD || firstByte >= 0x80;
}

export class PortInUseError extends Error {
  readonly host: string;
  readonly port: number;
  constructor(host: string, port: number) {
    super(`port ${port} on ${host} is already in use`);
    this.host = host;
    this.port = port;
  }
}

export function openFrontDoor(options: {
  host: string;
  port: number;
  onRefusedTls?: () => void;
}): Promise<FrontDoor> {
  let upstream: Upstream | undefined;
  const waiting: Array<() => void> = [];
  const open = new Set<net.Socket>();

  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    open.add(client);
    client.on("close", () => open.delete(client));
    // A client may reset at any moment; errors end this connection, never the process.
    client.on("error", () => client.destroy());

    let started = false;
    client.once("end", () => {
      // FIN before a single byte: nothing to forward.
      if (!started) client.end();
    });
    client.once("data", (first: Buffer) => {
      started = true;
      if (isTlsOrBinary(first[0]!)) {
        options.onRefusedTls?.();
        client.resetAndDestroy();
        return;
      }
      client.pause();
      const connect = () => splice(client, first, upstream!, open);
      if (upstream) connect();
      else waiting.push(connect);
    });
  });

  return new Promise((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) => {
      reject(error.code === "EADDRINUSE" ? new PortInUseError(options.host, options.port) : error);
    });
    server.listen({ host: options.host, port: options.port }, () => {
      server.on("error", (error) => console.error(`front door: ${error.message}`));
      const address = server.address() as net.AddressInfo;
      resolve({
        port: address.port,
        setUpstream(next) {
          upstream = next;
          for (const connect of waiting.splice(0)) connect();
        },
        close() {
          return new Promise((done) => {
            server.close(() => done());
            waiting.length = 0;
            for (const socket of open) socket.destroy();
          });
        },
      });
    });
  });
}

function splice(client: net.Socket, first: Buffer, to: Upstream, open: Set<net.Socket>): void {
  if (client.destroyed) return;
  const server = net.connect({ host: to.host, port: to.port, allowHalfOpen: true, noDelay: true });
  open.add(server);
  server.on("close", () => open.delete(server));
  server.on("error", () => server.destroy());
  // An abrupt end on either side (reset, error, destroy) ends the other; a clean FIN is carried
  // over by pipe() (which calls end()), so a response still being written is never cut short.
  client.on("close", (hadError) => {
    if (hadError || !client.readableEnded) server.destroy();
  });
  server.on("close", (hadError) => {
    if (hadError || !server.readableEnded) client.destroy();
  });
  server.write(first); // buffered by net until connected
  client.pipe(server);
  server.pipe(client);
}
