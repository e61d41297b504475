import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import net from "node:net";
import tls from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import { type FrontDoor, isTlsOrBinary, openFrontDoor, PortInUseError } from "./front-door.ts";

// An upstream standing in for workerd: echoes bodies back with their digest, keeps connections.
async function startUpstream(): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((req, res) => {
    if (req.url === "/echo") {
      const hash = createHash("sha256");
      req.on("data", (chunk: Buffer) => hash.update(chunk));
      res.writeHead(200, { "content-type": "application/octet-stream", trailer: "x-sha256" });
      // Echo while still receiving: both directions stream through the door at once.
      req.pipe(res, { end: false });
      req.on("end", () => {
        res.addTrailers({ "x-sha256": hash.digest("hex") });
        res.end();
      });
      return;
    }
    if (req.url === "/big") {
      const size = Number(req.headers["x-size"]);
      const chunk = Buffer.alloc(1 << 16, 7);
      let sent = 0;
      res.writeHead(200, { "content-length": String(size) });
      const pump = () => {
        while (sent < size) {
          const n = Math.min(chunk.length, size - sent);
          sent += n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
            res.once("drain", pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    res.end(`${req.method} ${req.url} ${req.socket.remotePort}`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as net.AddressInfo).port };
}

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(): Promise<{ door: FrontDoor; base: string }> {
  const upstream = await startUpstream();
  cleanups.push(() => new Promise((r) => upstream.server.close(r)));
  cleanups.push(() => upstream.server.closeAllConnections());
  const door = await openFrontDoor({ host: "127.0.0.1", port: 0 });
  cleanups.push(() => door.close());
  door.setUpstream({ host: "127.0.0.1", port: upstream.port });
  return { door, base: `http://127.0.0.1:${door.port}` };
}

function get(url: string, agent?: http.Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode!, body }));
      })
      .on("error", reject);
  });
}

describe("front door", () => {
  it("tells a TLS record or SSLv2 hello from an HTTP request line", () => {
    expect(isTlsOrBinary(0x16)).toBe(true);
    expect(isTlsOrBinary(0x80)).toBe(true);
    for (const method of ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"]) {
      expect(isTlsOrBinary(method.charCodeAt(0))).toBe(false);
    }
  });

  it("refuses a TLS handshake at once instead of letting it hang", async () => {
    const { door } = await setup();
    const started = Date.now();
    const error = await new Promise<Error>((resolve) => {
      const socket = tls.connect({ host: "127.0.0.1", port: door.port, rejectUnauthorized: false });
      socket.once("secureConnect", () => resolve(new Error("handshake succeeded")));
      socket.once("error", resolve);
      socket.setTimeout(5_000, () => resolve(new Error("timeout")));
    });
    expect(error.message).not.toMatch(/handshake succeeded|timeout/);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("keeps a keep-alive connection across requests", async () => {
    const { base } = await setup();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    const first = await get(`${base}/a`, agent);
    const second = await get(`${base}/b`, agent);
    expect(first.body).toMatch(/^GET \/a /);
    // Same upstream connection (same source port seen by the upstream) for both requests.
    expect(second.body.split(" ")[2]).toBe(first.body.split(" ")[2]);
  });

  it("streams a large upload and download both ways", async () => {
    const { door } = await setup();
    const size = 64 * 1024 * 1024;
    const digest = await new Promise<{ sent: string; received: string; trailer: string }>(
      (resolve, reject) => {
        const sentHash = createHash("sha256");
        const receivedHash = createHash("sha256");
        const req = http.request({
          host: "127.0.0.1",
          port: door.port,
          method: "PUT",
          path: "/echo",
        });
        req.on("error", reject);
        req.on("response", (res) => {
          res.on("data", (c: Buffer) => receivedHash.update(c));
          res.on("end", () =>
            resolve({
              sent: sentHash.digest("hex"),
              received: receivedHash.digest("hex"),
              trailer: String(res.trailers["x-sha256"]),
            }),
          );
        });
        let left = size;
        const write = () => {
          while (left > 0) {
            const chunk = randomBytes(Math.min(1 << 20, left));
            left -= chunk.length;
            sentHash.update(chunk);
            if (!req.write(chunk)) return void req.once("drain", write);
          }
          req.end();
        };
        write();
      },
    );
    expect(digest.received).toBe(digest.sent);
    expect(digest.trailer).toBe(digest.sent);
  });

  it("streams a 256 MiB response without buffering it whole", async () => {
    const { base } = await setup();
    const size = 256 * 1024 * 1024;
    const before = process.memoryUsage().rss;
    let peak = before;
    const received = await new Promise<number>((resolve, reject) => {
      http
        .get(`${base}/big`, { headers: { "x-size": String(size) } }, (res) => {
          let n = 0;
          res.on("data", (c: Buffer) => {
            n += c.length;
            peak = Math.max(peak, process.memoryUsage().rss);
          });
          res.on("end", () => resolve(n));
        })
        .on("error", reject);
    });
    expect(received).toBe(size);
    // Client, door and upstream share this process: anything near 256 MiB means buffering.
    expect(peak - before).toBeLessThan(128 * 1024 * 1024);
  });

  it("forwards a half-close: request, FIN, then the whole response", async () => {
    const { door } = await setup();
    const response = await new Promise<string>((resolve, reject) => {
      const socket = net.connect({ host: "127.0.0.1", port: door.port, allowHalfOpen: true });
      let data = "";
      socket.setEncoding("utf8");
      socket.on("data", (c: string) => (data += c));
      socket.on("end", () => resolve(data));
      socket.on("error", reject);
      socket.end("GET /half HTTP/1.1\r\nHost: x\r\n\r\n");
    });
    expect(response).toMatch(/^HTTP\/1\.1 200/);
    expect(response).toMatch(/GET \/half /);
  });

  it("holds connections that arrive before the upstream is known", async () => {
    const upstream = await startUpstream();
    cleanups.push(() => new Promise((r) => upstream.server.close(r)));
    const door = await openFrontDoor({ host: "127.0.0.1", port: 0 });
    cleanups.push(() => door.close());
    const pending = get(`http://127.0.0.1:${door.port}/early`);
    await new Promise((r) => setTimeout(r, 100));
    door.setUpstream({ host: "127.0.0.1", port: upstream.port });
    expect((await pending).body).toMatch(/^GET \/early /);
  });

  it("survives an upstream that is down, and clients that reset", async () => {
    const door = await openFrontDoor({ host: "127.0.0.1", port: 0 });
    cleanups.push(() => door.close());
    door.setUpstream({ host: "127.0.0.1", port: 1 }); // nothing listens on port 1
    await expect(get(`http://127.0.0.1:${door.port}/`)).rejects.toThrow();
    await new Promise<void>((resolve) => {
      const socket = net.connect({ host: "127.0.0.1", port: door.port }, () => {
        socket.write("GET / HTTP/1.1\r\n");
        socket.resetAndDestroy();
        resolve();
      });
    });
    await new Promise((r) => setTimeout(r, 50));
    await expect(get(`http://127.0.0.1:${door.port}/`)).rejects.toThrow(); // still alive
  });

  it("reports a taken port as PortInUseError", async () => {
    const { door } = await setup();
    await expect(openFrontDoor({ host: "127.0.0.1", port: door.port })).rejects.toBeInstanceOf(
      PortInUseError,
    );
  });
});
