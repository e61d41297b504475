// The sandbox driver interface: every driver (namespace, kvm) runs the same in-sandbox build agent
// (agent/build-agent.sh) over the same prepared job directory (agent/PROTOCOL.md) and reports
// the agent's output the same way. The trusted fleet process prepares the directory before
// run() and pushes <jobDir>/out/image.tar after it; nothing secret is ever in the directory.
import type { AgentControl } from "../agent/protocol.ts";

/** One prepared build, as a driver sees it. */
export interface SandboxJob {
  buildId: string;
  attempt: number;
  /**
   * Host directory laid out as agent/PROTOCOL.md says: `job.env`, `context/` (read-only in the
   * sandbox), `bases/` (read-only), `out/` (the only writable place the host sees again). The
   * driver exposes it at `/job` in the sandbox, or copies it in and `out/` back for a VM.
   */
  jobDir: string;
  /** Wall-clock limit of the sandbox run; the driver kills the sandbox when it passes. */
  timeoutMs: number;
}

/** A line the agent (or the build it runs) printed; control lines are never passed as logs. */
export interface SandboxLogLine {
  /** `system`: written by the driver about the sandbox (e.g. a failed VM's console), not the build. */
  stream: "stdout" | "stderr" | "system";
  text: string;
}

export interface SandboxRunOptions {
  /** Every log line of the sandbox, as it comes. */
  onLog(line: SandboxLogLine): void;
  /** Every `##agent` control line (phase changes), parsed; see agent/protocol.ts. */
  onControl?(control: AgentControl): void;
  /** Aborting kills the sandbox at once; run() then resolves with `reason: "cancelled"`. */
  signal: AbortSignal;
}

/**
 * How a run ended. `ok: true` means the agent reported success and `<jobDir>/out/image.tar` (an
 * oci-archive) exists on the host. Failures say why: the build itself failed (`build`), the
 * sandbox could not run or died without a result (`sandbox`), the time limit (`timeout`), or the
 * caller's signal (`cancelled`).
 */
export type SandboxResult =
  | { ok: true; imageArchive: string }
  | { ok: false; reason: "build" | "sandbox" | "timeout" | "cancelled"; error: string };

export interface DriverAvailability {
  ok: boolean;
  /** Why the driver cannot run here, phrased for an operator (what to install or enable). */
  reason?: string;
}

export interface SandboxDriver {
  /** `namespace`, `kvm`: what `--driver` names and the hello message reports. */
  readonly name: string;
  /** Checks for real (opens devices, finds tools); never throws. */
  available(): Promise<DriverAvailability>;
  /** A one-line warning printed when the daemon starts with this driver, if any. */
  readonly startupWarning?: string;
  run(job: SandboxJob, options: SandboxRunOptions): Promise<SandboxResult>;
}
