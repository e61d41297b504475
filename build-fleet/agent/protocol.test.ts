// Reading the agent's output: lines across chunks and streams, control lines only with the job's
// nonce, long lines cut.
import { describe, expect, it } from "vitest";

import {
  type AgentControl,
  AgentOutputReader,
  MAX_LOG_LINE_BYTES,
  parseControlLine,
} from "./protocol.ts";

const NONCE = "0123456789abcdef0123456789abcdef";

function reader() {
  const logs: { stream: string; text: string }[] = [];
  const controls: AgentControl[] = [];
  const output = new AgentOutputReader(NONCE, {
    onLog: (line) => logs.push(line),
    onControl: (control) => controls.push(control),
  });
  return { output, logs, controls };
}

const bytes = (text: string) => new TextEncoder().encode(text);

describe("agent output", () => {
  it("splits lines across chunks, per stream, on \\n, \\r\\n and \\r", () => {
    const { output, logs } = reader();
    output.write("stdout", bytes("STEP 1/2: FR"));
    output.write("stderr", bytes("warn"));
    output.write("stdout", bytes("OM scratch\r\nprogress 10%\rprogress 20%\n"));
    output.write("stderr", bytes("ing\n"));
    output.write("stdout", bytes("tail without newline"));
    output.end();
    expect(logs).toEqual([
      { stream: "stdout", text: "STEP 1/2: FROM scratch" },
      { stream: "stdout", text: "progress 10%" },
      { stream: "stdout", text: "progress 20%" },
      { stream: "stderr", text: "warning" },
      { stream: "stdout", text: "tail without newline" },
    ]);
  });

  it("keeps multi-byte characters split between chunks whole", () => {
    const { output, logs } = reader();
    const encoded = bytes("größe ✓\n");
    output.write("stdout", encoded.slice(0, 3));
    output.write("stdout", encoded.slice(3));
    expect(logs).toEqual([{ stream: "stdout", text: "größe ✓" }]);
  });

  it("takes control lines with the job's nonce and passes look-alikes on as log lines", () => {
    const { output, logs, controls } = reader();
    output.write(
      "stdout",
      bytes(
        `##agent ${NONCE} phase loading\n##agent ${NONCE} phase building\n` +
          "##agent ffffffffffffffffffffffffffffffff result ok\n##agent result ok\n" +
          `##agent ${NONCE} result error the build failed (buildah exit status 1)\n`,
      ),
    );
    expect(controls).toEqual([
      { kind: "phase", phase: "loading" },
      { kind: "phase", phase: "building" },
      { kind: "result", ok: false, error: "the build failed (buildah exit status 1)" },
    ]);
    expect(logs.map((l) => l.text)).toEqual([
      "##agent ffffffffffffffffffffffffffffffff result ok",
      "##agent result ok",
    ]);
    expect(output.result).toEqual({
      kind: "result",
      ok: false,
      error: "the build failed (buildah exit status 1)",
    });
  });

  it("refuses unknown verbs and phases", () => {
    expect(parseControlLine(`##agent ${NONCE} phase pushing`, NONCE)).toBeUndefined();
    expect(parseControlLine(`##agent ${NONCE} launch`, NONCE)).toBeUndefined();
    expect(parseControlLine(`##agent ${NONCE} result okay`, NONCE)).toBeUndefined();
    expect(parseControlLine(`##agent ${NONCE} result error`, NONCE)).toEqual({
      kind: "result",
      ok: false,
      error: "build failed",
    });
    expect(parseControlLine(`##agent ${NONCE} result ok`, NONCE)).toEqual({
      kind: "result",
      ok: true,
    });
  });

  it("flushes an endless line in pieces instead of holding it", () => {
    const { output, logs } = reader();
    output.write("stdout", bytes("x".repeat(MAX_LOG_LINE_BYTES * 2 + 10)));
    expect(logs).toHaveLength(2);
    expect(logs.every((l) => l.text.length === MAX_LOG_LINE_BYTES)).toBe(true);
    output.end();
    expect(logs.at(-1)?.text).toBe("x".repeat(10));
  });
});
