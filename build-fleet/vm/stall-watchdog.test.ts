import { describe, expect, it } from "vitest";

import { HEARTBEAT_BUSY_TICKS, StallWatchdog } from "./stall-watchdog.ts";

function clock() {
  const time = { now: 1_000 };
  return { time, now: () => time.now };
}

describe("StallWatchdog", () => {
  it("is stalled after the timeout without output, and output resets it", () => {
    const { time, now } = clock();
    const watchdog = new StallWatchdog(30_000, now);
    time.now += 29_999;
    expect(watchdog.stalled()).toBe(false);
    watchdog.output();
    time.now += 29_999;
    expect(watchdog.stalled()).toBe(false);
    time.now += 1;
    expect(watchdog.stalled()).toBe(true);
    expect(watchdog.silentMs()).toBe(30_000);
  });

  it("counts a heartbeat as progress only when the guest used CPU since the last one", () => {
    const { time, now } = clock();
    const watchdog = new StallWatchdog(30_000, now);
    watchdog.heartbeat("beat 500\n");
    time.now += 20_000;
    // Idle: a beat that shows (almost) no CPU use keeps the silence going.
    watchdog.heartbeat(`beat ${500 + HEARTBEAT_BUSY_TICKS - 1}\n`);
    time.now += 10_000;
    expect(watchdog.stalled()).toBe(true);
    // Busy (a silent compile): progress, split across chunks as a socket may deliver it.
    watchdog.heartbeat("beat 10");
    watchdog.heartbeat("00\n");
    expect(watchdog.silentMs()).toBe(0);
  });

  it("ignores malformed heartbeat lines and refuses a nonsensical timeout", () => {
    const { time, now } = clock();
    const watchdog = new StallWatchdog(1_000, now);
    watchdog.heartbeat("beat 1\nbeat 99999 extra\nbeat -5\nhello\n");
    watchdog.heartbeat(`${"x".repeat(100_000)}`);
    time.now += 1_000;
    expect(watchdog.stalled()).toBe(true);
    expect(() => new StallWatchdog(0)).toThrow(/stallTimeoutMs/);
    expect(() => new StallWatchdog(Number.NaN)).toThrow(/stallTimeoutMs/);
  });
});
