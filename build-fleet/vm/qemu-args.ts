// The qemu command line of a builder VM, in one place so its security properties can be read (and
// are tested) at a glance: no network device at all, no host directory shared, disks only, the
// host reached solely through virtio-serial ports (two for logs, one for heartbeats), qemu itself under a seccomp sandbox.

export type Accel = "kvm" | "tcg";

export interface VmSpec {
  accel: Accel;
  memoryMiB: number;
  cpus: number;
  /** Uncompressed vmlinux (booted through its PVH entry) or a bzImage. */
  kernel: string;
  /** The image's root filesystem: opened read-only, writes go to a throwaway overlay. */
  rootImage: string;
  jobDisk: string;
  outDisk: string;
  /** Unix sockets the driver listens on; qemu connects to them as a client. */
  stdoutSocket: string;
  stderrSocket: string;
  /** Liveness beats of guest/run-job.sh, for the driver's stall watchdog. */
  heartbeatSocket: string;
  /** The guest's serial console (kernel messages, init's own errors), for diagnostics only. */
  consoleLog: string;
  /** qboot, when installed: boots a PVH kernel faster than SeaBIOS. */
  firmware?: string;
  /** A name for `ps`. */
  name: string;
}

/** Virtio-serial port names; guest/run-job.sh finds its ports by them. */
export const STDOUT_PORT = "org.edge-registry.stdout";
export const STDERR_PORT = "org.edge-registry.stderr";
export const HEARTBEAT_PORT = "org.edge-registry.heartbeat";

/**
 * No initramfs: Debian's cloud kernel has NVMe and ext4 built in, so the root disk is an NVMe
 * drive the kernel mounts itself. `panic=-1` with `-no-reboot` makes any guest crash end qemu.
 */
export const KERNEL_CMDLINE = [
  "console=ttyS0",
  "root=/dev/nvme0n1",
  "rootfstype=ext4",
  "rw",
  "init=/sbin/edge-vm-init",
  "panic=-1",
  "quiet",
  "loglevel=3",
  "8250.nr_uarts=1",
  "random.trust_cpu=on",
].join(" ");

export function qemuArgs(spec: VmSpec): string[] {
  if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB < 256)
    throw new Error("memoryMiB must be at least 256");
  if (!Number.isInteger(spec.cpus) || spec.cpus < 1)
    throw new Error("cpus must be a positive integer");
  const drive = (options: Record<string, string>) =>
    Object.entries(options)
      .map(([key, value]) => `${key}=${escapeOption(value)}`)
      .join(",");
  return [
    "-name",
    `${spec.name},process=${spec.name}`,
    "-machine",
    "q35",
    "-accel",
    spec.accel,
    "-cpu",
    cpuModel(spec.accel),
    "-m",
    String(spec.memoryMiB),
    "-smp",
    String(spec.cpus),
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-no-reboot",
    ...(spec.firmware === undefined ? [] : ["-bios", spec.firmware]),
    "-kernel",
    spec.kernel,
    "-append",
    KERNEL_CMDLINE,
    // Root: the shared image through a temporary overlay (created in qemu's TMPDIR, the VM's own
    // directory), so every VM starts pristine and none can change the image.
    "-drive",
    drive({
      if: "none",
      id: "root",
      file: spec.rootImage,
      format: "raw",
      snapshot: "on",
      cache: "unsafe",
    }),
    "-device",
    "nvme,drive=root,serial=edge-root",
    "-drive",
    drive({ if: "none", id: "job", file: spec.jobDisk, format: "raw", readonly: "on" }),
    "-device",
    "virtio-blk-pci,drive=job,serial=edge-job",
    // The host reads this disk only after qemu exits, so flushes need not reach the platters.
    "-drive",
    drive({ if: "none", id: "out", file: spec.outDisk, format: "raw", cache: "unsafe" }),
    "-device",
    "virtio-blk-pci,drive=out,serial=edge-out",
    "-device",
    "virtio-serial-pci,id=ports",
    "-chardev",
    `socket,id=stdout,path=${escapeOption(spec.stdoutSocket)}`,
    "-device",
    `virtserialport,bus=ports.0,chardev=stdout,name=${STDOUT_PORT}`,
    "-chardev",
    `socket,id=stderr,path=${escapeOption(spec.stderrSocket)}`,
    "-device",
    `virtserialport,bus=ports.0,chardev=stderr,name=${STDERR_PORT}`,
    "-chardev",
    `socket,id=heartbeat,path=${escapeOption(spec.heartbeatSocket)}`,
    "-device",
    `virtserialport,bus=ports.0,chardev=heartbeat,name=${HEARTBEAT_PORT}`,
    "-chardev",
    `file,id=console,path=${escapeOption(spec.consoleLog)}`,
    "-serial",
    "chardev:console",
    "-device",
    "virtio-rng-pci",
    // No network device at all: the guest cannot reach the host's loopback or anything else.
    "-nic",
    "none",
    // qemu may not exec, change uids or use obsolete syscalls, so a guest that breaks into the
    // device model still cannot start programs on the host.
    "-sandbox",
    "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
  ];
}

/**
 * KVM: the host CPU as it is. TCG: the baseline x86-64 model; `max` would offer AVX2 and
 * AVX-512, which glibc and Go then use and TCG emulates slowly (builds took longer with it here).
 */
export function cpuModel(accel: Accel): string {
  return accel === "kvm" ? "host" : "qemu64";
}

/** qemu's option syntax doubles a comma inside a value. */
function escapeOption(value: string): string {
  return value.replaceAll(",", ",,");
}
