// Output formatting: cells, times, tables and key/value blocks.
import { describe, expect, it } from "vitest";
import { cell, details, formatTime, listOrEmpty, table } from "./output.ts";

describe("cell", () => {
  it("renders absent values as a dash and keeps control characters off the terminal", () => {
    expect([undefined, null, "", []].map(cell)).toEqual(["-", "-", "-", "-"]);
    expect(cell(["a", "b"])).toBe("a,b");
    expect(cell({ a: 1 })).toBe('{"a":1}');
    expect(cell("evil\u001b[2Jname\n")).toBe("evil [2Jname ");
    expect(cell(42)).toBe("42");
  });
});

describe("formatTime", () => {
  it("prints UTC to the second from ISO strings and milliseconds", () => {
    expect(formatTime("2026-01-15T12:00:03.456Z")).toBe("2026-01-15 12:00:03Z");
    expect(formatTime(Date.UTC(2026, 0, 15, 12, 0, 3))).toBe("2026-01-15 12:00:03Z");
    expect(formatTime(null)).toBe("-");
    expect(formatTime("soon")).toBe("soon");
  });
});

describe("table", () => {
  const rows = [
    { name: "acme/app", visibility: "private", state: "normal" },
    { name: "acme/a-much-longer-name", visibility: "public", state: null },
  ];
  const columns = [
    { header: "repository", value: (r: (typeof rows)[number]) => r.name },
    { header: "visibility", value: (r: (typeof rows)[number]) => r.visibility },
    { header: "state", value: (r: (typeof rows)[number]) => r.state },
  ];

  it("aligns columns under capitalised headers without trailing spaces", () => {
    expect(table(rows, columns)).toBe(
      [
        "REPOSITORY               VISIBILITY  STATE",
        "acme/app                 private     normal",
        "acme/a-much-longer-name  public      -",
      ].join("\n"),
    );
  });

  it("prints a placeholder for an empty list", () => {
    expect(listOrEmpty([], columns, "no repositories")).toBe("no repositories");
    expect(table([], columns)).toBe("REPOSITORY  VISIBILITY  STATE");
  });
});

describe("details", () => {
  it("aligns keys", () => {
    expect(
      details([
        ["robot", "acme+ci"],
        ["description", null],
      ]),
    ).toBe("robot:       acme+ci\ndescription: -");
  });
});
