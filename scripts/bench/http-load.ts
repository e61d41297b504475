// Load generators for the benchmark: `wrk` for GETs, and a small raw-socket Node client for what
// wrk cannot do (HEAD, a fixed number of distinct requests such as tag PUTs).
//
// wrk (C, one thread) costs little CPU on a 2-core box, so it disturbs the server least. It
// cannot drive HEAD: its parser waits for the Content-Length bytes a HEAD answer never sends.
// The raw client keeps one request in flight per keep-alive connection and parses just enough
// HTTP/1.1 (status, Content-Length, chunked, Connection: close) to know where an answer ends;
// far cheaper than node:http, so it stays out of the way too. Both refuse non-loopback targets.

import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

export interface LoadResult {
  tool: "wrk" | "node";
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  latencyP50Ms: number;
  latencyP90Ms: number;
  latencyP99Ms: number;
  /** Answers outside 2xx/3xx. */
  non2xx: number;
  /** Connect, read and write errors, and timeouts. */
  socketErrors: number;
  /** Response bytes read, headers included. */
  bytesRead: number;
}

export interface WrkOptions {
  url: string;
  headers: Record<string, string>;
  durationSeconds: number;
  connections: number;
  threads?: number;
  /** Per-request timeout; wrk's default (2 s) would drop slow answers as errors. */
  timeoutSeconds?: number;
}

function assertLoopback(url: string): void {
  const { hostname } = new URL(url);
  if (hostname !== "127.0.0.1" && hostname !== "localhost" && hostname !== "[::1]") {
    throw new Error(`refusing to load a non-loopback address: ${url}`);
  }
}

// wrk's `done` hook prints exact percentiles (its text summary rounds them) as one JSON line.
const WRK_REPORT_LUA = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_WRK {"requests":%d,"duration_us":%d,"bytes":%d,"p50":%d,"p90":%d,"p99":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
`;

let luaDir: string | undefined;
function wrkScript(): string {
  if (!luaDir) {
    luaDir = mkdtempSync(path.join(os.tmpdir(), "bench-wrk-"));
    writeFileSync(path.join(luaDir, "report.lua"), WRK_REPORT_LUA);
    process.once("exit", () => rmSync(luaDir!, { recursive: true, force: true }));
  }
  return path.join(luaDir, "report.lua");
}

/** GETs `url` with keep-alive connections for a fixed time. */
export async function runWrk(options: WrkOptions): Promise<LoadResult> {
  assertLoopback(options.url);
  const timeout = options.timeoutSeconds ?? 10;
  const args = [
    `-t${options.threads ?? 1}`,
    `-c${options.connections}`,
    `-d${options.durationSeconds}s`,
    `--timeout=${timeout}s`,
    "-s",
    wrkScript(),
    ...Object.entries(options.headers).flatMap(([name, value]) => ["-H", `${name}: ${value}`]),
    options.url,
  ];
  const { stdout } = await promisify(execFile)("wrk", args, {
    timeout: (options.durationSeconds + timeout + 30) * 1000,
    maxBuffer: 1 << 20,
  });
  const line = /^BENCH_WRK (\{.*\})$/m.exec(stdout);
  if (!line) throw new Error(`wrk printed no report:\n${stdout}`);
  const r = JSON.parse(line[1]!) as Record<string, number>;
  const seconds = r.duration_us! / 1e6;
  return {
    tool: "wrk",
    requests: r.requests!,
    seconds,
    requestsPerSecond: r.requests! / seconds,
    latencyP50Ms: r.p50! / 1000,
    latencyP90Ms: r.p90! / 1000,
    latencyP99Ms: r.p99! / 1000,
    non2xx: r.status!,
    socketErrors: r.connect! + r.read! + r.write! + r.timeout!,
    bytesRead: r.bytes!,
  };
}

export interface RawLoadOptions {
  /** Origin, e.g. `http://127.0.0.1:8787`. */
  origin: string;
  connections: number;
  /** The i-th request's method, path and extra headers (Host is added). */
  request(i: number): RawRequest;
  /** Stop starting requests after this many seconds. */
  durationSeconds: number;
  /** Stop after this many requests in total (default: only the time bound). */
  count?: number;
  /** Give up on one answer after this long (default 30 s). */
  timeoutMs?: number;
}

export interface RawRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
}

/** Statuses of the answers, for callers that need more than "non-2xx". */
export interface RawLoadResult extends LoadResult {
  statuses: Record<number, number>;
}

/**
 * Sends requests on `connections` keep-alive sockets, one in flight per socket, until the time
 * or the count runs out. Request i is built by `request(i)` (so every PUT can name a new tag).
 */
export async function runRaw(options: RawLoadOptions): Promise<RawLoadResult> {
  assertLoopback(options.origin);
  const { hostname, port, host } = new URL(options.origin);
  const timeoutMs = options.timeoutMs ?? 30_000;
  const total = options.count ?? Number.POSITIVE_INFINITY;
  const latencies: number[] = [];
  const statuses: Record<number, number> = {};
  let non2xx = 0;
  let socketErrors = 0;
  let bytesRead = 0;
  let next = 0;
  const started = performance.now();
  const deadline = started + options.durationSeconds * 1000;

  const encode = (i: number) => {
    const r = options.request(i);
    const body = r.body ?? Buffer.alloc(0);
    const lines = [`${r.method} ${r.path} HTTP/1.1`, `Host: ${host}`];
    for (const [name, value] of Object.entries(r.headers ?? {})) lines.push(`${name}: ${value}`);
    if (body.length > 0 || r.method === "PUT" || r.method === "POST") {
      lines.push(`Content-Length: ${body.length}`);
    }
    return {
      head: r.method === "HEAD",
      bytes: Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`), body]),
    };
  };

  // One worker per connection: send, await the whole answer, repeat; reconnect when the server
  // closes. A socket error ends that worker's current request and opens a fresh socket.
  const worker = async () => {
    let conn: Connection | undefined;
    try {
      while (performance.now() < deadline && next < total) {
        const i = next++;
        const req = encode(i);
        conn ??= await Connection.open(hostname, Number(port));
        const t0 = performance.now();
        try {
          const answer = await conn.exchange(req.bytes, req.head, timeoutMs);
          latencies.push(performance.now() - t0);
          bytesRead += answer.bytes;
          statuses[answer.status] = (statuses[answer.status] ?? 0) + 1;
          if (answer.status >= 400) non2xx++;
          if (answer.close) {
            conn.destroy();
            conn = undefined;
          }
        } catch {
          socketErrors++;
          conn?.destroy();
          conn = undefined;
        }
      }
    } finally {
      conn?.destroy();
    }
  };
  await Promise.all(Array.from({ length: options.connections }, worker));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies.length === 0
      ? Number.NaN
      : latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
  return {
    tool: "node",
    requests: latencies.length,
    seconds,
    requestsPerSecond: latencies.length / seconds,
    latencyP50Ms: at(0.5),
    latencyP90Ms: at(0.9),
    latencyP99Ms: at(0.99),
    non2xx,
    socketErrors,
    bytesRead,
    statuses,
  };
}

interface Answer {
  status: number;
  close: boolean;
  bytes: number;
}

/** A keep-alive socket with just enough of an HTTP/1.1 response parser to find each answer's end. */
class Connection {
  private buffer: Buffer = Buffer.alloc(0);
  private pending:
    | { head: boolean; resolve(a: Answer): void; reject(e: Error): void; timer: NodeJS.Timeout }
    | undefined;
  private state: ParseState = { phase: "head" };
  private bytes = 0;
  private dead: Error | undefined;

  private readonly socket: net.Socket;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      this.bytes += chunk.length;
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      this.parse();
    });
    const fail = (error: Error) => {
      this.dead = error;
      if (this.state.phase === "until-close" && this.pending) {
        this.finish(true);
        return;
      }
      this.pending?.reject(error);
      this.pending = undefined;
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("connection closed")));
  }

  static open(host: string, port: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(new Connection(socket));
      });
      socket.once("error", reject);
    });
  }

  exchange(request: Buffer, head: boolean, timeoutMs: number): Promise<Answer> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = undefined;
        reject(new Error("timeout"));
      }, timeoutMs);
      this.pending = { head, resolve, reject, timer };
      this.state = { phase: "head" };
      this.bytes = this.buffer.length;
      this.socket.write(request);
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private finish(close: boolean): void {
    const pending = this.pending;
    if (!pending || this.state.phase === "head") return;
    const status = this.state.status;
    this.pending = undefined;
    clearTimeout(pending.timer);
    pending.resolve({ status, close: close || this.state.close, bytes: this.bytes });
    this.state = { phase: "head" };
  }

  private parse(): void {
    for (;;) {
      const s = this.state;
      if (s.phase === "head") {
        const end = this.buffer.indexOf("\r\n\r\n");
        if (end < 0 || !this.pending) return;
        const head = this.buffer.subarray(0, end).toString("latin1");
        this.buffer = this.buffer.subarray(end + 4);
        const [statusLine = "", ...lines] = head.split("\r\n");
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
        let length: number | undefined;
        let chunked = false;
        let close = statusLine.startsWith("HTTP/1.0");
        for (const line of lines) {
          const colon = line.indexOf(":");
          const name = line.slice(0, colon).trim().toLowerCase();
          const value = line
            .slice(colon + 1)
            .trim()
            .toLowerCase();
          if (name === "content-length") length = Number(value);
          else if (name === "transfer-encoding") chunked = value.includes("chunked");
          else if (name === "connection") close = value.includes("close");
        }
        const bodyless =
          this.pending.head || status === 204 || status === 304 || (status >= 100 && status < 200);
        if (bodyless || (!chunked && length === 0)) {
          this.state = { phase: "body", status, close, remaining: 0 };
        } else if (chunked) {
          this.state = { phase: "chunk-size", status, close };
        } else if (length !== undefined) {
          this.state = { phase: "body", status, close, remaining: length };
        } else {
          this.state = { phase: "until-close", status, close: true };
          this.buffer = Buffer.alloc(0);
          return;
        }
        continue;
      }
      if (s.phase === "body") {
        const n = Math.min(s.remaining, this.buffer.length);
        this.buffer = this.buffer.subarray(n);
        s.remaining -= n;
        if (s.remaining > 0) return;
        this.finish(false);
        continue;
      }
      if (s.phase === "chunk-size") {
        const end = this.buffer.indexOf("\r\n");
        if (end < 0) return;
        const size = Number.parseInt(this.buffer.subarray(0, end).toString("latin1"), 16);
        this.buffer = this.buffer.subarray(end + 2);
        this.state =
          size === 0
            ? { phase: "trailer", status: s.status, close: s.close }
            : { phase: "chunk-data", status: s.status, close: s.close, remaining: size + 2 };
        continue;
      }
      if (s.phase === "chunk-data") {
        const n = Math.min(s.remaining, this.buffer.length);
        this.buffer = this.buffer.subarray(n);
        s.remaining -= n;
        if (s.remaining > 0) return;
        this.state = { phase: "chunk-size", status: s.status, close: s.close };
        continue;
      }
      if (s.phase === "trailer") {
        const end = this.buffer.indexOf("\r\n");
        if (end < 0) return;
        this.buffer = this.buffer.subarray(end + 2);
        if (end === 0) {
          this.state = { phase: "body", status: s.status, close: s.close, remaining: 0 };
        }
        continue;
      }
      // until-close: everything is body; the close handler finishes the answer.
      this.buffer = Buffer.alloc(0);
      return;
    }
  }
}

type ParseState =
  | { phase: "head" }
  | { phase: "body" | "chunk-data"; status: number; close: boolean; remaining: number }
  | { phase: "chunk-size" | "trailer" | "until-close"; status: number; close: boolean };
