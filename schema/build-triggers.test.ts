// The trigger grammar: ref filter globs, tag templates and their expansion, source paths and
// clone URLs.
import { describe, expect, it } from "vitest";
import {
  cloneUrlProblem,
  expandTagTemplates,
  matchesAny,
  normalizeSourcePath,
  parseTagTemplate,
  refFilterRefusal,
  refPatternProblem,
} from "./build-triggers.ts";

const SHA = "3f786850e387550fdab836ed7e6dc881de23001b";

describe("ref filter", () => {
  it("matches globs: * within a segment, ** across, ? one character", () => {
    expect(matchesAny(["main"], "main")).toBe(true);
    expect(matchesAny(["main"], "main2")).toBe(false);
    expect(matchesAny(["release/*"], "release/1.0")).toBe(true);
    expect(matchesAny(["release/*"], "release/1.0/fix")).toBe(false);
    expect(matchesAny(["release/**"], "release/1.0/fix")).toBe(true);
    expect(matchesAny(["v?.*"], "v1.2")).toBe(true);
    expect(matchesAny(["v?.*"], "v10.2")).toBe(false);
    // Regular-expression characters are literal.
    expect(matchesAny(["a.b"], "axb")).toBe(false);
    expect(matchesAny(["a+b(c)"], "a+b(c)")).toBe(true);
    expect(matchesAny([], "main")).toBe(false);
  });

  it("refuses with a reason naming the ref and the filter", () => {
    const filter = { branches: ["main"], tags: [] };
    expect(refFilterRefusal(filter, "refs/heads/main")).toBeUndefined();
    expect(refFilterRefusal(filter, "refs/heads/dev")).toBe(
      'ref refs/heads/dev does not match the branches filter ["main"]',
    );
    expect(refFilterRefusal(filter, "refs/tags/v1")).toBe(
      "ref refs/tags/v1 is a tag and the trigger builds no tags",
    );
    expect(refFilterRefusal(filter, "refs/pull/1/head")).toBe(
      "ref refs/pull/1/head is neither a branch nor a tag",
    );
  });

  it("refuses patterns git could never match", () => {
    expect(refPatternProblem("release/*")).toBeUndefined();
    expect(refPatternProblem("")).toBeDefined();
    expect(refPatternProblem("a b")).toBeDefined();
    expect(refPatternProblem("[ab]")).toBeDefined();
    expect(refPatternProblem("a:b")).toBeDefined();
  });
});

describe("tag templates", () => {
  it("parses placeholders and the @default suffix, refusing the rest with a reason", () => {
    expect(parseTagTemplate("latest@default")).toEqual({
      parts: [{ kind: "literal", text: "latest" }],
      onlyDefaultBranch: true,
    });
    expect(parseTagTemplate("{branch}-{sha:7}")).toMatchObject({ onlyDefaultBranch: false });
    expect(parseTagTemplate("{commit}")).toMatch(/unknown placeholder \{commit\}/);
    expect(parseTagTemplate("{sha:0}")).toMatch(/1 ≤ N ≤ 64/);
    expect(parseTagTemplate("{sha:65}")).toMatch(/1 ≤ N ≤ 64/);
    expect(parseTagTemplate("{branch")).toMatch(/unmatched/);
    expect(parseTagTemplate("a/b")).toMatch(/literal text/);
    expect(parseTagTemplate("{branch}-{tag}")).toMatch(/both/);
    expect(parseTagTemplate("{tag}@default")).toMatch(/never applies/);
    expect(parseTagTemplate("@default")).toMatch(/nothing before/);
  });

  it("expands per push, dropping what does not apply or is no valid tag", () => {
    const templates = ["latest@default", "{branch}", "{tag}", "sha-{sha:7}", "{sha}"];
    expect(
      expandTagTemplates(templates, { ref: "refs/heads/main", commit: SHA, defaultBranch: "main" }),
    ).toEqual({
      tags: ["latest", "main", "sha-3f78685", SHA],
      skipped: [{ template: "{tag}", reason: "{tag} does not apply to refs/heads/main" }],
    });
    const tag = expandTagTemplates(templates, {
      ref: "refs/tags/v1.0",
      commit: SHA,
      defaultBranch: "main",
    });
    expect(tag.tags).toEqual(["v1.0", "sha-3f78685", SHA]);
    expect(tag.skipped.map((s) => s.template)).toEqual(["latest@default", "{branch}"]);
    // `/` becomes `-`; a name still invalid as a tag is dropped with the reason.
    expect(
      expandTagTemplates(["{branch}"], {
        ref: "refs/heads/feat/x",
        commit: SHA,
        defaultBranch: undefined,
      }).tags,
    ).toEqual(["feat-x"]);
    expect(
      expandTagTemplates(["{branch}"], {
        ref: "refs/heads/-dash",
        commit: SHA,
        defaultBranch: undefined,
      }),
    ).toEqual({
      tags: [],
      skipped: [{ template: "{branch}", reason: '"-dash" is not a valid tag' }],
    });
    // A 129-character result is too long for a tag.
    const long = expandTagTemplates([`${"x".repeat(100)}-{sha}`], {
      ref: "refs/heads/main",
      commit: SHA,
      defaultBranch: undefined,
    });
    expect(long.tags).toEqual([]);
    // Duplicates collapse.
    expect(
      expandTagTemplates(["main", "{branch}"], {
        ref: "refs/heads/main",
        commit: SHA,
        defaultBranch: undefined,
      }).tags,
    ).toEqual(["main"]);
  });
});

describe("source paths", () => {
  it("normalizes relative paths and refuses escapes", () => {
    expect(normalizeSourcePath("./docker//Dockerfile")).toEqual({ path: "docker/Dockerfile" });
    expect(normalizeSourcePath("")).toEqual({ path: "." });
    expect(normalizeSourcePath(".")).toEqual({ path: "." });
    expect(normalizeSourcePath("/etc/passwd")).toHaveProperty("problem");
    expect(normalizeSourcePath("a/../../b")).toHaveProperty("problem");
    expect(normalizeSourcePath("..")).toHaveProperty("problem");
    expect(normalizeSourcePath("a\\b")).toHaveProperty("problem");
    expect(normalizeSourcePath("a\nb")).toHaveProperty("problem");
  });
});

describe("clone URLs", () => {
  it("takes network URLs and scp-like addresses, never local paths or passwords", () => {
    expect(cloneUrlProblem("https://github.com/acme/app.git")).toBeUndefined();
    expect(cloneUrlProblem("git://127.0.0.1:9418/app")).toBeUndefined();
    expect(cloneUrlProblem("ssh://git@gitlab.com/acme/app.git")).toBeUndefined();
    expect(cloneUrlProblem("git@github.com:acme/app.git")).toBeUndefined();
    expect(cloneUrlProblem("file:///etc")).toMatch(/scheme file:/);
    expect(cloneUrlProblem("/srv/git/app")).toMatch(/must be a URL/);
    expect(cloneUrlProblem("https://user:hunter2@github.com/a.git")).toMatch(/password/);
    expect(cloneUrlProblem("https://github.com/a b")).toMatch(/whitespace/);
    expect(cloneUrlProblem("")).toBeDefined();
  });
});
