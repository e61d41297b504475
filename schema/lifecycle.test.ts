import { describe, expect, it } from "vitest";
import { tagPatternProblem } from "./lifecycle.ts";

describe("tagPatternProblem", () => {
  it("accepts globs over tag characters", () => {
    for (const pattern of ["v1", "v*", "release-?", "v[0-9]*", "[^a-z]*", "a[._-]b", "[a-]", "*"]) {
      expect(tagPatternProblem(pattern), pattern).toBeNull();
    }
  });

  it("refuses what is not a tag glob, saying why", () => {
    expect(tagPatternProblem("")).toContain("empty");
    expect(tagPatternProblem("x".repeat(129))).toContain("128");
    expect(tagPatternProblem("a/b")).toContain('"/"');
    expect(tagPatternProblem("v[0-9")).toContain("not closed");
    expect(tagPatternProblem("v[]")).toContain("empty");
    expect(tagPatternProblem("v[^]")).toContain("empty");
    expect(tagPatternProblem("v[a/b]")).toContain("tag characters");
    expect(tagPatternProblem("v]")).toContain('"]"');
  });
});
