import { describe, expect, it } from "vitest";

import { StallWatchdog } from "./stall-watchdog.ts";

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

  it("counts a whole heartbeat line as progress, also split across chunks", () => {
    const { time, now } = clock();
    const watchdog = new StallWatchdog(30_000, now);
    time.now += 30_000;
    expect(watchdog.stalled()).toBe(true);
    watchdog.heartbeat("beat 12.");
    expect(watchdog.stalled()).toBe(true);
    watchdog.heartbeat("34\n");
    expect(watchdog.silentMs()).toBe(0);
  });

  it("ignores malformed heartbeat lines and refuses a nonsensical timeout", () => {
    const { time, now } = clock();
    const watchdog = new StallWatchdog(1_000, now);
    time.now += 1_000;
    watchdog.heartbeat("beat 1 extra\nbeat -5\nhello\nbeat\n");
    watchdog.heartbeat("x".repeat(100_000));
    expect(watchdog.stalled()).toBe(true);
    expect(() => new StallWatchdog(0)).toThrow(/stallTimeoutMs/);
    expect(() => new StallWatchdog(Number.NaN)).toThrow(/stallTimeoutMs/);
  });
});
