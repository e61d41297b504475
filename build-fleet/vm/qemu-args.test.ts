import { describe, expect, it } from "vitest";

import {
  HEARTBEAT_PORT,
  KERNEL_CMDLINE,
  qemuArgs,
  STDERR_PORT,
  STDOUT_PORT,
  type VmSpec,
} from "./qemu-args.ts";

const spec: VmSpec = {
  accel: "kvm",
  memoryMiB: 2048,
  cpus: 2,
  kernel: "/img/vmlinux",
  rootImage: "/img/root.ext4",
  jobDisk: "/vm/job.tar",
  outDisk: "/vm/out.img",
  stdoutSocket: "/vm/stdout.sock",
  stderrSocket: "/vm/stderr.sock",
  heartbeatSocket: "/vm/heartbeat.sock",
  consoleLog: "/vm/console.log",
  name: "edge-build-b1",
};

/** The value following each occurrence of `flag`. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((arg, index) => (arg === flag ? [args[index + 1] ?? ""] : []));
}

describe("qemuArgs", () => {
  it("gives the guest no network device and no shared host directory", () => {
    const args = qemuArgs(spec);
    expect(values(args, "-nic")).toEqual(["none"]);
    expect(args).not.toContain("-netdev");
    expect(args).not.toContain("-virtfs");
    expect(args).not.toContain("-fsdev");
    expect(args.join(" ")).not.toMatch(/virtio-net|hostfwd|guestfwd|vhost-user|virtiofs/);
    expect(args).toContain("-nodefaults");
  });

  it("boots the image's root through a throwaway overlay and the job disk read-only", () => {
    const drives = values(qemuArgs(spec), "-drive");
    expect(drives).toContain(
      "if=none,id=root,file=/img/root.ext4,format=raw,snapshot=on,cache=unsafe",
    );
    expect(drives).toContain("if=none,id=job,file=/vm/job.tar,format=raw,readonly=on");
    expect(drives.find((drive) => drive.includes("id=out"))).toContain("file=/vm/out.img");
  });

  it("streams the agent's output and the guest's heartbeats over named virtio-serial ports", () => {
    const args = qemuArgs(spec);
    expect(values(args, "-chardev")).toEqual(
      expect.arrayContaining([
        "socket,id=stdout,path=/vm/stdout.sock",
        "socket,id=stderr,path=/vm/stderr.sock",
        "socket,id=heartbeat,path=/vm/heartbeat.sock",
      ]),
    );
    expect(values(args, "-device")).toEqual(
      expect.arrayContaining([
        `virtserialport,bus=ports.0,chardev=stdout,name=${STDOUT_PORT}`,
        `virtserialport,bus=ports.0,chardev=stderr,name=${STDERR_PORT}`,
        `virtserialport,bus=ports.0,chardev=heartbeat,name=${HEARTBEAT_PORT}`,
      ]),
    );
  });

  it("uses the accelerator it is given, the host CPU under KVM and a baseline model under TCG", () => {
    const kvm = qemuArgs(spec);
    expect(values(kvm, "-accel")).toEqual(["kvm"]);
    expect(values(kvm, "-cpu")).toEqual(["host"]);
    const tcg = qemuArgs({ ...spec, accel: "tcg" });
    expect(values(tcg, "-accel")).toEqual(["tcg"]);
    expect(values(tcg, "-cpu")).toEqual(["qemu64"]);
  });

  it("ends qemu on a guest reboot or panic and confines qemu with seccomp", () => {
    const args = qemuArgs(spec);
    expect(args).toContain("-no-reboot");
    expect(KERNEL_CMDLINE).toContain("panic=-1");
    expect(values(args, "-append")).toEqual([KERNEL_CMDLINE]);
    expect(values(args, "-sandbox")[0]).toMatch(/^on,.*spawn=deny/);
  });

  it("applies the memory and CPU limits and refuses nonsense", () => {
    const args = qemuArgs({ ...spec, memoryMiB: 4096, cpus: 3 });
    expect(values(args, "-m")).toEqual(["4096"]);
    expect(values(args, "-smp")).toEqual(["3"]);
    expect(() => qemuArgs({ ...spec, memoryMiB: 64 })).toThrow(/memoryMiB/);
    expect(() => qemuArgs({ ...spec, cpus: 0 })).toThrow(/cpus/);
  });

  it("escapes commas in paths, so a path cannot add options", () => {
    const args = qemuArgs({ ...spec, jobDisk: "/vm/a,readonly=off,b.tar" });
    expect(values(args, "-drive")).toContain(
      "if=none,id=job,file=/vm/a,,readonly=off,,b.tar,format=raw,readonly=on",
    );
  });
});
