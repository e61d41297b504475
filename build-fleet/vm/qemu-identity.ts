// Who qemu runs as. A fleet daemon running as root never gives qemu its own uid: a guest that broke
// into qemu's device model would then read the fleet credential. Each VM's qemu gets a uid of its
// own (base + slot, no /etc/passwd entry needed), no supplementary groups but the KVM device's,
// no way to regain privileges, and the kernel kills it when the daemon dies.
import { chown, stat } from "node:fs/promises";

import type { Accel } from "./qemu-args.ts";

/** Far above the uids and the subordinate ranges Debian hands out (100000 + 65536·n). */
export const DEFAULT_QEMU_ID_BASE = 2_147_000_000;
const KVM_DEVICE = "/dev/kvm";

export interface QemuIdentity {
  uid: number;
  gid: number;
  /** The group of /dev/kvm when it grants its group read-write (Debian: `kvm`, 0660). */
  groups: number[];
}

/** The identity of the VM in `slot`; undefined when the daemon is not root (qemu runs as it). */
export async function qemuIdentity(
  slot: number,
  base: number,
  accel: Accel,
): Promise<QemuIdentity | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const id = base + slot;
  const groups: number[] = [];
  if (accel === "kvm") {
    try {
      const device = await stat(KVM_DEVICE);
      if ((device.mode & 0o060) === 0o060) groups.push(device.gid);
    } catch {
      // No device: the probe says so.
    }
  }
  return { uid: id, gid: id, groups };
}

/** `setpriv` arguments that start qemu as `identity`; `--` ends them. */
export function launcherArgs(identity: QemuIdentity | undefined): string[] {
  const args = ["--pdeathsig", "SIGKILL", "--no-new-privs"];
  if (identity !== undefined) {
    args.push("--reuid", String(identity.uid), "--regid", String(identity.gid));
    if (identity.groups.length > 0) args.push("--groups", identity.groups.join(","));
    else args.push("--clear-groups");
  }
  args.push("--");
  return args;
}

/** Gives qemu's uid the files it must write (its directory, the out disk, the log sockets). */
export async function handOver(identity: QemuIdentity | undefined, paths: string[]): Promise<void> {
  if (identity === undefined) return;
  for (const path of paths) await chown(path, identity.uid, identity.gid);
}

/** What to tell an operator when KVM works for root but not for qemu's own uid. */
export function kvmAccessHint(identity: QemuIdentity | undefined): string {
  if (identity === undefined || identity.groups.length > 0) return "";
  return ` (qemu runs as uid ${identity.uid}: ${KVM_DEVICE} must be read-write for its group, as Debian's 0660 root:kvm is)`;
}
