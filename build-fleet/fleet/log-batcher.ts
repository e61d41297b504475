// Batches one build's log lines into `log` messages: a build printing thousands of lines sends a
// few messages a second, not one per line, and a quiet one still shows each line within ~250 ms.
import {
  type BuildLogLine,
  MAX_LOG_LINE_CHARS,
  MAX_LOG_LINES_PER_MESSAGE,
} from "../../schema/builds.ts";

export const LOG_FLUSH_MS = 250;
/** A message is sent early once it holds this many characters. */
const MAX_BATCH_CHARS = 256 * 1024;

export class LogBatcher {
  readonly #send: (lines: BuildLogLine[]) => void;
  readonly #flushMs: number;
  readonly #now: () => number;
  #lines: BuildLogLine[] = [];
  #chars = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    send: (lines: BuildLogLine[]) => void,
    options: { flushMs?: number; now?: () => number } = {},
  ) {
    this.#send = send;
    this.#flushMs = options.flushMs ?? LOG_FLUSH_MS;
    this.#now = options.now ?? Date.now;
  }

  add(stream: BuildLogLine["stream"], text: string): void {
    const line = {
      at: this.#now(),
      stream,
      text: text.length > MAX_LOG_LINE_CHARS ? text.slice(0, MAX_LOG_LINE_CHARS) : text,
    };
    this.#lines.push(line);
    this.#chars += line.text.length;
    if (this.#lines.length >= MAX_LOG_LINES_PER_MESSAGE || this.#chars >= MAX_BATCH_CHARS)
      this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), this.#flushMs);
  }

  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#lines.length === 0) return;
    const lines = this.#lines;
    this.#lines = [];
    this.#chars = 0;
    this.#send(lines);
  }
}
