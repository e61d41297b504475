import { describe, expect, it } from "vitest";
import { parseDigest, parseRepositoryName, parseTag } from "./reference.ts";

describe("repository names (distribution-spec grammar)", () => {
  it.each(["a", "library/ubuntu", "a0/b-c/d_e", "x__y", "a.b/c--d", "a/b/c/d/e"])(
    "accepts %s",
    (name) => {
      expect(parseRepositoryName(name)).toBe(name);
    },
  );
  it.each([
    "",
    "A",
    "a/",
    "/a",
    "a//b",
    "a..b",
    "-a",
    "a-",
    "a___b",
    "a/B",
    "a b",
    "a/.b",
    `a${"b".repeat(255)}`,
  ])("refuses %j", (name) => {
    expect(parseRepositoryName(name)).toBeUndefined();
  });
});

describe("tags", () => {
  it.each(["latest", "v1.0.0", "_x", "A-b_c.d", "a".repeat(128)])("accepts %s", (tag) => {
    expect(parseTag(tag)).toBe(tag);
  });
  it.each(["", ".a", "-a", "a/b", "a:b", "a".repeat(129), "a b"])("refuses %j", (tag) => {
    expect(parseTag(tag)).toBeUndefined();
  });
});

describe("digests", () => {
  it("accepts sha256 and sha512", () => {
    expect(parseDigest(`sha256:${"a".repeat(64)}`)).toMatchObject({
      ok: true,
      algorithm: "sha256",
    });
    expect(parseDigest(`sha512:${"b".repeat(128)}`)).toMatchObject({
      ok: true,
      algorithm: "sha512",
    });
  });
  it("tells malformed from unsupported", () => {
    expect(parseDigest(`sha256:${"A".repeat(64)}`)).toEqual({ ok: false, reason: "malformed" });
    expect(parseDigest(`sha256:${"a".repeat(63)}`)).toEqual({ ok: false, reason: "malformed" });
    expect(parseDigest("sha256")).toEqual({ ok: false, reason: "malformed" });
    expect(parseDigest(`md5:${"a".repeat(32)}`)).toEqual({ ok: false, reason: "unsupported" });
    expect(parseDigest(`sha384:${"a".repeat(96)}`)).toEqual({ ok: false, reason: "unsupported" });
  });
});
