// Everything the CLI touches outside itself (streams, environment, network, clock, terminal),
// behind one interface so commands are tested with fakes and the real process wires Node's.
import os from "node:os";
import readline from "node:readline";
import type { Fetch } from "./client.ts";
import type { Environment } from "./config.ts";

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Environment;
  fetch: Fetch;
  /** The home folder, for `~/.config`. */
  home: string;
  hostname: string;
  /** All of standard input (for `--password-stdin`). */
  readStdin(): Promise<string>;
  /** Asks on the terminal; undefined when there is no terminal to ask on. */
  prompt: ((question: string, options: { secret: boolean }) => Promise<string>) | undefined;
  now(): number;
  /** Resolves after `ms`, or early (without throwing) when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Aborted on Ctrl-C, so `logs --follow` ends cleanly. */
  signal?: AbortSignal;
  /** A WebSocket with request headers (Node's WebSocket takes them): `logs <repo> <id> -f`. */
  openWebSocket(url: string, headers: Record<string, string>): WebSocketLike;
}

/** The part of a WebSocket the CLI uses. */
export interface WebSocketLike {
  addEventListener(type: "open", listener: () => void): void;
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
  addEventListener(
    type: "close",
    listener: (event: { code: number; reason: string }) => void,
  ): void;
  addEventListener(type: "error", listener: (event: unknown) => void): void;
  close(code?: number, reason?: string): void;
}

export function processIo(signal?: AbortSignal): Io {
  const interactive = process.stdin.isTTY === true && process.stderr.isTTY === true;
  return {
    stdout: (text) => process.stdout.write(text.endsWith("\n") ? text : `${text}\n`),
    stderr: (text) => process.stderr.write(text.endsWith("\n") ? text : `${text}\n`),
    env: process.env,
    fetch: (input, init) => fetch(input, init),
    home: os.homedir(),
    hostname: os.hostname(),
    readStdin,
    prompt: interactive ? ask : undefined,
    now: () => Date.now(),
    sleep: (ms, abort) =>
      new Promise((resolve) => {
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          abort?.removeEventListener("abort", done);
          resolve();
        }
        abort?.addEventListener("abort", done, { once: true });
      }),
    ...(signal ? { signal } : {}),
    openWebSocket: (url, headers) =>
      // Node's WebSocket (undici) takes request headers as a second-argument option.
      new (
        WebSocket as unknown as new (
          url: string,
          options: { headers: Record<string, string> },
        ) => WebSocketLike
      )(url, { headers }),
  };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** A question on stderr (stdout stays clean for output); a secret answer is not echoed. */
function ask(question: string, options: { secret: boolean }): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = readline.createInterface({
      input: process.stdin,
      output: process.stderr,
      terminal: true,
    });
    if (options.secret) {
      // Echo nothing of what is typed: readline writes each keystroke through _writeToOutput.
      const output = rl as unknown as { _writeToOutput: (text: string) => void };
      let prompted = false;
      output._writeToOutput = (text: string) => {
        if (!prompted) {
          process.stderr.write(text);
          prompted = true;
        }
      };
    }
    rl.on("SIGINT", () => {
      rl.close();
      process.stderr.write("\n");
      reject(new Error("cancelled"));
    });
    rl.question(question, (answer) => {
      rl.close();
      if (options.secret) process.stderr.write("\n");
      resolve(answer);
    });
  });
}
