// Reading the build agent's output (agent/PROTOCOL.md): splits byte streams into log lines and
// picks out the agent's control lines. Shared by every driver, so the namespace sandbox and the
// VM's virtio-serial console are read the same way.

/** Longest log line kept; a build printing megabytes without a newline is cut, not buffered. */
export const MAX_LOG_LINE_BYTES = 8 * 1024;

/**
 * A control line is `##agent <nonce> <verb> [args]`. The nonce is fresh per job and only the
 * agent knows it (from job.env, which RUN steps cannot see), so a build printing look-alike lines
 * cannot fake a phase or a result.
 */
export type AgentControl =
  | { kind: "phase"; phase: "loading" | "building" }
  | { kind: "result"; ok: true }
  | { kind: "result"; ok: false; error: string };

export interface AgentOutputSink {
  onLog(line: { stream: "stdout" | "stderr"; text: string }): void;
  onControl(control: AgentControl): void;
}

const CONTROL_PREFIX = "##agent ";

/** Parses one full line; undefined when it is not a valid control line for this nonce. */
export function parseControlLine(line: string, nonce: string): AgentControl | undefined {
  if (!line.startsWith(`${CONTROL_PREFIX}${nonce} `)) return undefined;
  const rest = line.slice(CONTROL_PREFIX.length + nonce.length + 1);
  const space = rest.indexOf(" ");
  const verb = space < 0 ? rest : rest.slice(0, space);
  const args = space < 0 ? "" : rest.slice(space + 1);
  if (verb === "phase" && (args === "loading" || args === "building")) {
    return { kind: "phase", phase: args };
  }
  if (verb === "result") {
    if (args === "ok") return { kind: "result", ok: true };
    if (args.startsWith("error")) {
      return { kind: "result", ok: false, error: args.slice(5).trim() || "build failed" };
    }
  }
  return undefined;
}

/**
 * Feeds chunks of one or more streams and emits whole lines. Each stream keeps its own partial
 * line; `\r\n` and `\r` (progress bars) end lines too. Invalid UTF-8 is replaced, never thrown.
 */
export class AgentOutputReader {
  readonly #nonce: string;
  readonly #sink: AgentOutputSink;
  readonly #partial = { stdout: "", stderr: "" };
  readonly #decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
  /** The agent's last result line, if it printed one. */
  result: Extract<AgentControl, { kind: "result" }> | undefined;

  constructor(nonce: string, sink: AgentOutputSink) {
    this.#nonce = nonce;
    this.#sink = sink;
  }

  write(stream: "stdout" | "stderr", chunk: Uint8Array): void {
    const text = this.#partial[stream] + this.#decoders[stream].decode(chunk, { stream: true });
    const lines = text.split(/\r\n|\r|\n/);
    let last = lines.pop() ?? "";
    for (const line of lines) this.#emit(stream, line);
    // An endless line is flushed in pieces rather than held.
    while (last.length > MAX_LOG_LINE_BYTES) {
      this.#emit(stream, last.slice(0, MAX_LOG_LINE_BYTES));
      last = last.slice(MAX_LOG_LINE_BYTES);
    }
    this.#partial[stream] = last;
  }

  /** Flushes what is left of each stream (a last line without a newline). */
  end(): void {
    for (const stream of ["stdout", "stderr"] as const) {
      const rest = this.#partial[stream] + this.#decoders[stream].decode();
      this.#partial[stream] = "";
      if (rest.length > 0) this.#emit(stream, rest);
    }
  }

  #emit(stream: "stdout" | "stderr", text: string): void {
    const control = parseControlLine(text, this.#nonce);
    if (control === undefined) {
      this.#sink.onLog({ stream, text });
      return;
    }
    if (control.kind === "result") this.result = control;
    this.#sink.onControl(control);
  }
}
