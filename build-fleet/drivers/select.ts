// Choosing the sandbox driver: `kvm` and `namespace` as asked (refusing when unavailable), `auto`
// the kvm driver where /dev/kvm really opens read-write and its own probe boots KVM, else the
// namespace driver. The kvm driver is loaded only when considered.
import { open } from "node:fs/promises";

import type { SandboxDriver } from "./driver.ts";
import { NamespaceDriver } from "./namespace.ts";

export type DriverChoice = "kvm" | "namespace" | "auto";
export type KvmAccel = "kvm" | "tcg" | "auto";

export interface SelectOptions {
  /** For `kvm` only: `tcg` emulates on purpose (development, CI). `auto` never picks TCG. */
  kvmAccel?: KvmAccel;
  log(text: string): void;
  /** Where /dev/kvm is (tests). */
  kvmDevice?: string;
}

export type Selection = { ok: true; driver: SandboxDriver } | { ok: false; reason: string };

/** Whether the KVM device opens read-write: the node can exist where KVM does not work. */
export async function kvmDeviceUsable(
  path = "/dev/kvm",
): Promise<{ ok: boolean; reason?: string }> {
  try {
    const handle = await open(path, "r+");
    await handle.close();
    return { ok: true };
  } catch (error) {
    return {
      ok: false,
      reason: `${path} cannot be opened read-write (${(error as NodeJS.ErrnoException).code})`,
    };
  }
}

async function kvmDriver(accel: KvmAccel): Promise<SandboxDriver> {
  const { KvmDriver } = await import("./kvm.ts");
  return new KvmDriver({ accel });
}

export async function selectDriver(
  choice: DriverChoice,
  options: SelectOptions,
): Promise<Selection> {
  if (choice === "namespace") return checked(new NamespaceDriver());
  if (choice === "kvm") return checked(await kvmDriver(options.kvmAccel ?? "kvm"));
  const device = await kvmDeviceUsable(options.kvmDevice);
  if (device.ok) {
    const kvm = await kvmDriver("kvm");
    const availability = await kvm.available();
    if (availability.ok) return { ok: true, driver: kvm };
    options.log(`driver auto: not kvm: ${availability.reason}`);
  } else {
    options.log(`driver auto: not kvm: ${device.reason}`);
  }
  const namespace = await checked(new NamespaceDriver());
  if (!namespace.ok)
    return { ok: false, reason: `no sandbox driver works here: ${namespace.reason}` };
  return namespace;
}

async function checked(driver: SandboxDriver): Promise<Selection> {
  const availability = await driver.available();
  if (!availability.ok) {
    return {
      ok: false,
      reason: `the ${driver.name} driver is not available: ${availability.reason}`,
    };
  }
  return { ok: true, driver };
}
