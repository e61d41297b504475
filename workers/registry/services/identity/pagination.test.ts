import { describe, expect, it } from "vitest";
import { decodeCursor, encodeCursor, MAX_PAGE_SIZE, pageRequest, toPage } from "./pagination.ts";

describe("cursors", () => {
  it("round-trip any key, including non-ASCII and separators", () => {
    const key = ["team", "acme/dévs+ci"];
    expect(decodeCursor(encodeCursor(key), 2)).toEqual(key);
    expect(encodeCursor(key)).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it("refuse anything they did not make", () => {
    for (const raw of ["!!", "bm90IGpzb24", encodeCursor(["a"]).concat("="), btoa("[1,2]")]) {
      expect(() => decodeCursor(raw, 2)).toThrow(/cursor/);
    }
    expect(() => decodeCursor(encodeCursor(["a"]), 2)).toThrow(/cursor/);
  });
});

describe("pageRequest and toPage", () => {
  it("caps the limit and refuses nonsense", () => {
    expect(pageRequest(undefined, undefined, 1).limit).toBe(50);
    expect(pageRequest("1000", undefined, 1).limit).toBe(MAX_PAGE_SIZE);
    for (const bad of ["0", "-1", "x", "1.5"])
      expect(() => pageRequest(bad, undefined, 1)).toThrow();
  });

  it("returns a cursor only when more rows follow", () => {
    const rows = ["a", "b", "c"];
    const more = toPage(
      rows,
      2,
      (r) => [r],
      (r) => r.toUpperCase(),
    );
    expect(more.items).toEqual(["A", "B"]);
    expect(decodeCursor(more.nextCursor!, 1)).toEqual(["b"]);
    expect(
      toPage(
        rows,
        3,
        (r) => [r],
        (r) => r,
      ).nextCursor,
    ).toBeNull();
  });
});
