import { describe, expect, it } from "vitest";
import { formatDuration, parseDuration } from "./duration.ts";

describe("parseDuration", () => {
  it("reads every unit of the quay.expires-after format", () => {
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("15m")).toBe(900_000);
    expect(parseDuration("12h")).toBe(43_200_000);
    expect(parseDuration("2d")).toBe(172_800_000);
    expect(parseDuration("3w")).toBe(1_814_400_000);
    expect(parseDuration(" 0d ")).toBe(0);
  });

  it("refuses anything else", () => {
    for (const bad of ["", "12", "h", "1.5h", "-1d", "2y", "1d2h", "10 d", "1D", "9999999999s"]) {
      expect(parseDuration(bad), bad).toBeUndefined();
    }
  });
});

describe("formatDuration", () => {
  it("picks the largest exact unit", () => {
    expect(formatDuration(0)).toBe("0s");
    expect(formatDuration(14 * 86_400_000)).toBe("2w");
    expect(formatDuration(86_400_000)).toBe("1d");
    expect(formatDuration(90 * 60_000)).toBe("90m");
    expect(formatDuration(1_000)).toBe("1s");
  });

  it("round-trips what parseDuration reads", () => {
    for (const text of ["30s", "15m", "12h", "2d", "3w", "36h"]) {
      expect(parseDuration(formatDuration(parseDuration(text)!))).toBe(parseDuration(text));
    }
  });
});
