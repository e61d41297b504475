// Driver choice: `auto` takes kvm only where /dev/kvm really opens read-write and KVM boots.
import { describe, expect, it } from "vitest";

import { kvmDeviceUsable, selectDriver } from "./select.ts";

describe("driver selection", () => {
  it("tests the KVM device with a real read-write open", async () => {
    expect(await kvmDeviceUsable("/nonexistent/kvm")).toEqual({
      ok: false,
      reason: "/nonexistent/kvm cannot be opened read-write (ENOENT)",
    });
    // Any character device that opens read-write passes this first check.
    expect(await kvmDeviceUsable("/dev/null")).toEqual({ ok: true });
  });

  it("falls back to the namespace driver where KVM cannot be opened, saying why", async () => {
    const notes: string[] = [];
    const selection = await selectDriver("auto", {
      kvmDevice: "/nonexistent/kvm",
      log: (t) => notes.push(t),
    });
    expect(notes).toEqual([
      "driver auto: not kvm: /nonexistent/kvm cannot be opened read-write (ENOENT)",
    ]);
    if (selection.ok) expect(selection.driver.name).toBe("namespace");
    else expect(selection.reason).toMatch(/^no sandbox driver works here: /);
  });
});
