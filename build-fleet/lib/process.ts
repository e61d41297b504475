// Running a helper program (git, skopeo, chown, …) to completion with a fixed environment, a time
// limit and an abort signal, collecting its output. Long-running sandboxes spawn on their own.
import { spawn } from "node:child_process";

export interface RunOptions {
  /** The child's whole environment: callers pass only what it needs, never the daemon's. */
  env: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Each output line as it comes (for build logs); output is still collected. */
  onLine?(stream: "stdout" | "stderr", line: string): void;
  /** Collected output is cut at this many bytes per stream (the tail is kept). */
  maxOutputBytes?: number;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Why it was stopped early, if it was. */
  stopped?: "timeout" | "aborted";
}

export function run(command: string, args: string[], options: RunOptions): Promise<RunResult> {
  const maxBytes = options.maxOutputBytes ?? 1024 * 1024;
  return new Promise((resolve) => {
    const output = { stdout: "", stderr: "" };
    const partial = { stdout: "", stderr: "" };
    let stopped: RunResult["stopped"];
    const child = spawn(command, args, {
      env: options.env,
      cwd: options.cwd,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const stop = (why: "timeout" | "aborted") => {
      stopped ??= why;
      if (child.pid !== undefined && child.exitCode === null) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          child.kill("SIGKILL");
        }
      }
    };
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => stop("timeout"), options.timeoutMs);
    const onAbort = () => stop("aborted");
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    const collect = (stream: "stdout" | "stderr") => (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      output[stream] += text;
      if (output[stream].length > maxBytes) output[stream] = output[stream].slice(-maxBytes);
      if (options.onLine) {
        const lines = (partial[stream] + text).split(/\r\n|\r|\n/);
        partial[stream] = lines.pop() ?? "";
        for (const line of lines) options.onLine(stream, line);
      }
    };
    child.stdout.on("data", collect("stdout"));
    child.stderr.on("data", collect("stderr"));
    const finish = (result: RunResult) => {
      if (timer !== undefined) clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      resolve(result);
    };
    child.on("error", (error) => {
      finish({
        code: null,
        signal: null,
        stdout: output.stdout,
        stderr: `${output.stderr}${error.message}`,
        stopped,
      });
    });
    child.on("close", (code, signal) => {
      for (const stream of ["stdout", "stderr"] as const) {
        if (options.onLine && partial[stream] !== "") options.onLine(stream, partial[stream]);
      }
      finish({ code, signal, stdout: output.stdout, stderr: output.stderr, stopped });
    });
  });
}
