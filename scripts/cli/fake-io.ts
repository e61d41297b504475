// A scripted Io for the CLI's tests: canned HTTP answers by method and path, captured output,
// recorded requests, a fixed clock, and a sleep that can stop a --follow loop.
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Io, WebSocketLike } from "./io.ts";

export interface RecordedRequest {
  method: string;
  /** Path and query after the origin, e.g. `/api/v1/logs?limit=5`. */
  url: string;
  headers: Headers;
  body: unknown;
}

export type Answer = Response | ((request: RecordedRequest) => Response | Promise<Response>);

export interface FakeIo {
  io: Io;
  stdout: string[];
  stderr: string[];
  requests: RecordedRequest[];
  /** Answers `METHOD /api/v1/path` (query ignored when matching); later calls win. */
  answer(method: string, pathname: string, answer: Answer): void;
  /** The folder XDG_CONFIG_HOME points at. */
  configHome: string;
  controller: AbortController;
  /** Every WebSocket a command opened, in order. */
  sockets: FakeSocket[];
  /** Plays the server's side of each WebSocket opened (after the command's listeners are set). */
  onWebSocket?: (socket: FakeSocket) => void;
}

/** The server's side of a fake WebSocket. */
export interface FakeSocket {
  url: string;
  headers: Record<string, string>;
  send(message: unknown): void;
  close(code?: number, reason?: string): void;
  /** The code the client closed with, if it did. */
  closedByClient: number | null;
}

export function jsonResponse(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

export function apiError(status: number, code: string, message: string): Response {
  return jsonResponse({ error: { code, message } }, status);
}

export function fakeIo(
  options: {
    env?: Record<string, string>;
    stdin?: string;
    prompts?: string[];
    now?: number;
    /** Called by each sleep; abort `controller` in it to end a --follow loop. */
    onSleep?: (fake: FakeIo) => void;
  } = {},
): FakeIo {
  const answers = new Map<string, Answer>();
  const configHome = mkdtempSync(path.join(os.tmpdir(), "cli-test-"));
  const prompts = [...(options.prompts ?? [])];
  const controller = new AbortController();
  const fake: FakeIo = {
    stdout: [],
    stderr: [],
    requests: [],
    configHome,
    controller,
    sockets: [],
    answer(method, pathname, answer) {
      answers.set(`${method} ${pathname}`, answer);
    },
    io: undefined as unknown as Io,
  };
  fake.io = {
    stdout: (text) => fake.stdout.push(text),
    stderr: (text) => fake.stderr.push(text),
    env: { XDG_CONFIG_HOME: configHome, ...options.env },
    home: configHome,
    hostname: "testhost",
    async fetch(input, init = {}) {
      const url = new URL(input);
      const headers = new Headers(init.headers);
      const body = typeof init.body === "string" ? JSON.parse(init.body) : undefined;
      const request = {
        method: init.method ?? "GET",
        url: `${url.pathname}${url.search}`,
        headers,
        body,
      };
      fake.requests.push(request);
      const answer = answers.get(`${request.method} ${url.pathname}`);
      if (!answer)
        return apiError(404, "NOT_FOUND", `no fake for ${request.method} ${url.pathname}`);
      return typeof answer === "function" ? answer(request) : answer.clone();
    },
    readStdin: async () => options.stdin ?? "",
    prompt: options.prompts
      ? async () => {
          const next = prompts.shift();
          if (next === undefined) throw new Error("unexpected prompt");
          return next;
        }
      : undefined,
    now: () => options.now ?? Date.UTC(2026, 0, 15, 12, 0, 0),
    sleep: async () => options.onSleep?.(fake),
    signal: controller.signal,
    openWebSocket: (url, headers) => fakeWebSocket(fake, url, headers),
  };
  return fake;
}

/** Everything printed on stdout, joined. */
export function out(fake: FakeIo): string {
  return fake.stdout.join("\n");
}
export function err(fake: FakeIo): string {
  return fake.stderr.join("\n");
}

function fakeWebSocket(fake: FakeIo, url: string, headers: Record<string, string>): WebSocketLike {
  const listeners = new Map<string, ((event: never) => void)[]>();
  const emit = (type: string, event: unknown) => {
    for (const listener of listeners.get(type) ?? []) listener(event as never);
  };
  let open = true;
  const socket: FakeSocket = {
    url,
    headers,
    closedByClient: null,
    send: (message) => {
      if (open) emit("message", { data: JSON.stringify(message) });
    },
    close: (code = 1000, reason = "") => {
      if (!open) return;
      open = false;
      emit("close", { code, reason });
    },
  };
  fake.sockets.push(socket);
  // The server speaks once the command has attached its listeners.
  setTimeout(() => {
    emit("open", {});
    fake.onWebSocket?.(socket);
  }, 0);
  return {
    addEventListener(type: string, listener: (event: never) => void) {
      listeners.set(type, [...(listeners.get(type) ?? []), listener]);
    },
    close(code = 1000) {
      socket.closedByClient = code;
      socket.close(code, "client closed");
    },
  } as WebSocketLike;
}
