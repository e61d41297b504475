import { describe, expect, it } from "vitest";
import { IdentityError } from "./errors.ts";
import { checkName, robotShortname, splitRobotName, teamName } from "./names.ts";

describe("checkName", () => {
  it("accepts path components and refuses the rest", () => {
    for (const ok of ["a", "acme", "a.b", "a_b", "a__b", "a--b", "x9"]) {
      expect(checkName("username", ok)).toBe(ok);
    }
    for (const bad of ["", "A", "a+b", "a/b", "-a", "a-", "a..b", "a b", "x".repeat(65)]) {
      expect(() => checkName("organization", bad)).toThrow(IdentityError);
    }
  });
});

describe("grantee names", () => {
  it("splits robot names", () => {
    expect(splitRobotName("acme+ci")).toEqual({ namespace: "acme", shortname: "ci" });
    expect(splitRobotName("ci")).toBeUndefined();
    expect(splitRobotName("+ci")).toBeUndefined();
    expect(splitRobotName("acme+")).toBeUndefined();
  });

  it("resolves short and full names inside their namespace only", () => {
    expect(robotShortname("acme", "ci")).toBe("ci");
    expect(robotShortname("acme", "acme+ci")).toBe("ci");
    expect(() => robotShortname("acme", "other+ci")).toThrow(/belongs to namespace other/);
    expect(teamName("acme", "devs")).toBe("devs");
    expect(teamName("acme", "acme/devs")).toBe("devs");
    expect(() => teamName("acme", "other/devs")).toThrow(/belongs to organization other/);
  });
});
