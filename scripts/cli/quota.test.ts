// `quota`: sizes in and out, the calls it makes to show, set and remove a limit, and its refusals.
import path from "node:path";
import { describe, expect, it } from "vitest";
import { writeConfig } from "./config.ts";
import { EXIT } from "./errors.ts";
import { apiError, err, type FakeIo, fakeIo, jsonResponse, out } from "./fake-io.ts";
import { main } from "./main.ts";
import { formatSize, parseSize, type QuotaView } from "./quota.ts";

const PATH = "/api/v1/namespaces/acme/quota";

async function loggedIn(): Promise<FakeIo> {
  const fake = fakeIo();
  await writeConfig(path.join(fake.configHome, "edge-registry", "config.json"), {
    url: "http://r.test",
    token: "era_a",
  });
  return fake;
}

const view = (overrides: Partial<QuotaView> = {}): QuotaView => ({
  usageBytes: 3 * 2 ** 30,
  limitBytes: 10 * 2 ** 30,
  warningPercent: 80,
  blobs: 42,
  ...overrides,
});

describe("sizes", () => {
  it("parses bytes and decimal or binary units", () => {
    expect(parseSize("500")).toBe(500);
    expect(parseSize("512MiB")).toBe(512 * 2 ** 20);
    expect(parseSize("1.5GB")).toBe(1_500_000_000);
    expect(parseSize("10 gib")).toBe(10 * 2 ** 30);
    for (const bad of ["", "ten", "5XB", "-1", "1e9"]) expect(() => parseSize(bad)).toThrow();
  });

  it("prints binary units", () => {
    expect(formatSize(0)).toBe("0 B");
    expect(formatSize(1023)).toBe("1023 B");
    expect(formatSize(1536)).toBe("1.5 KiB");
    expect(formatSize(3 * 2 ** 30)).toBe("3.0 GiB");
  });
});

describe("quota", () => {
  it("shows usage against the limit", async () => {
    const fake = await loggedIn();
    fake.answer("GET", PATH, jsonResponse(view()));
    expect(await main(["quota", "acme"], fake.io)).toBe(EXIT.ok);
    expect(out(fake)).toContain("3.0 GiB of 10.0 GiB (30%)");
    expect(out(fake)).toContain("42");
    expect(out(fake)).toContain("80% of the limit");
    expect(fake.requests.map((r) => r.method)).toEqual(["GET"]);
  });

  it("sets a limit and threshold, then shows the result; --json prints the API's answer", async () => {
    const fake = await loggedIn();
    fake.answer("PUT", PATH, jsonResponse(view({ warningPercent: 90 })));
    fake.answer("GET", PATH, jsonResponse(view({ warningPercent: 90 })));
    const code = await main(
      ["quota", "acme", "--limit", "10GiB", "--warn-percent", "90", "--json"],
      fake.io,
    );
    expect(code).toBe(EXIT.ok);
    expect(fake.requests[0]).toMatchObject({
      method: "PUT",
      body: { limitBytes: 10 * 2 ** 30, warningPercent: 90 },
    });
    expect(JSON.parse(out(fake))).toEqual(view({ warningPercent: 90 }));
  });

  it("removes a limit", async () => {
    const fake = await loggedIn();
    fake.answer("DELETE", PATH, new Response(null, { status: 204 }));
    fake.answer("GET", PATH, jsonResponse(view({ limitBytes: null })));
    expect(await main(["quota", "acme", "--remove"], fake.io)).toBe(EXIT.ok);
    expect(fake.requests.map((r) => r.method)).toEqual(["DELETE", "GET"]);
    expect(out(fake)).toMatch(/limit:\s+none/);
  });

  it("reports the API's refusal of a non-superuser as forbidden", async () => {
    const fake = await loggedIn();
    fake.answer(
      "PUT",
      PATH,
      apiError(403, "FORBIDDEN", "only superusers may change storage quotas"),
    );
    expect(await main(["quota", "acme", "--limit", "1GB"], fake.io)).toBe(EXIT.forbidden);
    expect(err(fake)).toContain("only superusers");
  });

  it.each([
    [["quota", "acme", "--limit", "lots"]],
    [["quota", "acme", "--warn-percent", "50"]],
    [["quota", "acme", "--limit", "1GB", "--warn-percent", "0"]],
    [["quota", "acme", "--remove", "--limit", "1GB"]],
  ])("refuses %j as a usage error without calling the API", async (argv) => {
    const fake = await loggedIn();
    expect(await main(argv, fake.io)).toBe(EXIT.usage);
    expect(fake.requests).toEqual([]);
  });
});
