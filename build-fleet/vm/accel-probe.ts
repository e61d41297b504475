// Whether an accelerator really runs guests here. Opening /dev/kvm, and even KVM_CREATE_VM, can
// succeed on a host whose KVM cannot run a guest (a nested or paravirtual KVM without vmx/svm, as
// on the machine this was written on): the probe boots a 64 KiB firmware with the exact machine,
// accelerator and CPU model of a builder VM, whose only instructions write to the debug-exit port.
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { run } from "../lib/process.ts";
import { type Accel, cpuModel } from "./qemu-args.ts";
import { kvmAccessHint, launcherArgs, type QemuIdentity } from "./qemu-identity.ts";

/** `isa-debug-exit` turns the byte written to its port into qemu's exit status (value << 1) | 1. */
const DEBUG_EXIT_PORT = 0xf4;
const PROBE_VALUE = 0x2a;
const PROBE_EXIT_STATUS = (PROBE_VALUE << 1) | 1;
const PROBE_TIMEOUT_MS = 10_000;

/**
 * A firmware image: x86 starts in real mode at F000:FFF0, the last 16 bytes of a 64 KiB BIOS.
 * `mov al, 0x2a; out 0xf4, al; hlt; jmp $-1`.
 */
export function probeFirmware(): Buffer {
  const firmware = Buffer.alloc(64 * 1024);
  Buffer.from([0xb0, PROBE_VALUE, 0xe6, DEBUG_EXIT_PORT, 0xf4, 0xeb, 0xfd]).copy(firmware, 0xfff0);
  return firmware;
}

/** Runs the probe as a builder VM's qemu would run: same launcher, same identity. */
export async function probeAccel(
  qemu: string,
  accel: Accel,
  env: NodeJS.ProcessEnv,
  identity?: QemuIdentity,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  const dir = await mkdtemp(join(tmpdir(), "edge-accel-probe-"));
  try {
    await chmod(dir, 0o755);
    const firmware = join(dir, "probe.bin");
    await writeFile(firmware, probeFirmware());
    await chmod(firmware, 0o444);
    const result = await run(
      "setpriv",
      [
        ...launcherArgs(identity),
        qemu,
        "-machine",
        "q35",
        "-accel",
        accel,
        "-cpu",
        cpuModel(accel),
        "-m",
        "16",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-bios",
        firmware,
        "-device",
        `isa-debug-exit,iobase=${DEBUG_EXIT_PORT},iosize=1`,
      ],
      { env, timeoutMs: PROBE_TIMEOUT_MS },
    );
    if (result.code === PROBE_EXIT_STATUS) return { ok: true };
    const detail =
      result.stopped === "timeout" ? "the probe guest never ran" : lastLine(result.stderr);
    const hint = accel === "kvm" ? kvmAccessHint(identity) : "";
    return {
      ok: false,
      reason: `${accel} cannot run a guest here (${detail || `exit status ${result.code}`})${hint}`,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function lastLine(text: string): string {
  const lines = text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.includes("warning:"));
  return lines.at(-1) ?? "";
}
