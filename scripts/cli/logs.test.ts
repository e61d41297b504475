// `logs`: the query it sends, the table it prints, the cursor hint, and --follow's polling.
import path from "node:path";
import { describe, expect, it } from "vitest";
import { writeConfig } from "./config.ts";
import { EXIT } from "./errors.ts";
import { err, type FakeIo, fakeIo, jsonResponse, out } from "./fake-io.ts";
import { actorText, type LogEntry, logLine, metadataText, parseTimeOption } from "./logs.ts";
import { main } from "./main.ts";

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);

function entry(n: number, overrides: Partial<LogEntry> = {}): LogEntry {
  return {
    id: `e${n}`,
    at: new Date(NOW - (100 - n) * 1000).toISOString(),
    kind: "tag.push",
    namespace: "acme",
    repository: "acme/app",
    actor: { kind: "user", name: "alice" },
    clientIp: "192.0.2.1",
    metadata: { tag: `v${n}` },
    ...overrides,
  };
}

async function loggedIn(options: Parameters<typeof fakeIo>[0] = {}): Promise<FakeIo> {
  const fake = fakeIo({ now: NOW, ...options });
  await writeConfig(path.join(fake.configHome, "edge-registry", "config.json"), {
    url: "http://r.test",
    token: "era_a",
  });
  return fake;
}

describe("formatting", () => {
  it("names actors, shortens digests and long values", () => {
    expect(actorText(entry(1))).toBe("alice");
    expect(actorText(entry(1, { actor: { kind: "token", name: "alice" } }))).toBe("alice (token)");
    expect(actorText(entry(1, { actor: { kind: "anonymous", name: "mallory" } }))).toBe(
      "anonymous (as mallory)",
    );
    expect(actorText(entry(1, { actor: { kind: "anonymous", name: null } }))).toBe("anonymous");
    const digest = `sha256:${"a".repeat(64)}`;
    expect(metadataText({ digest, tag: "v1", empty: null })).toBe(
      "digest=sha256:aaaaaaaaaaaa tag=v1",
    );
    expect(metadataText({ note: "x".repeat(100) })).toBe(`note=${"x".repeat(59)}…`);
    expect(metadataText(null)).toBe("");
    expect(logLine(entry(1, { clientIp: null, repository: null }))).toBe(
      "2026-01-15 11:58:21Z  tag.push  alice  acme  -  tag=v1",
    );
  });

  it("turns relative times into ISO and passes the rest on", () => {
    expect(parseTimeOption("2h", NOW)).toBe("2026-01-15T10:00:00.000Z");
    expect(parseTimeOption("7d", NOW)).toBe("2026-01-08T12:00:00.000Z");
    expect(parseTimeOption("2026-01-01", NOW)).toBe("2026-01-01");
    expect(parseTimeOption("1767225600000", NOW)).toBe("1767225600000");
  });
});

describe("logs", () => {
  it("sends the filters and prints a table, with the next cursor on stderr", async () => {
    const fake = await loggedIn();
    fake.answer(
      "GET",
      "/api/v1/logs",
      jsonResponse({ logs: [entry(2), entry(1)], next_cursor: "next1" }),
    );
    const code = await main(
      [
        "logs",
        "--namespace",
        "acme",
        "--repository",
        "acme/app",
        "--kind",
        "tag.push",
        "--kind",
        "team.*",
        "--since",
        "1h",
        "--actor",
        "alice",
        "--limit",
        "2",
      ],
      fake.io,
    );
    expect(code).toBe(EXIT.ok);
    const query = new URL(`http://x${fake.requests[0]!.url}`).searchParams;
    expect(Object.fromEntries(query)).toEqual({
      namespace: "acme",
      repository: "acme/app",
      kind: "tag.push,team.*",
      actor: "alice",
      since: "2026-01-15T11:00:00.000Z",
      limit: "2",
    });
    expect(out(fake)).toBe(
      [
        "TIME                  KIND      ACTOR  TARGET    CLIENT     DETAILS",
        "2026-01-15 11:58:22Z  tag.push  alice  acme/app  192.0.2.1  tag=v2",
        "2026-01-15 11:58:21Z  tag.push  alice  acme/app  192.0.2.1  tag=v1",
      ].join("\n"),
    );
    expect(err(fake)).toBe("more entries: add --cursor next1");
  });

  it("prints the API's page under --json and says so when empty", async () => {
    const fake = await loggedIn();
    fake.answer("GET", "/api/v1/logs", jsonResponse({ logs: [], next_cursor: null }));
    expect(await main(["logs", "--json"], fake.io)).toBe(EXIT.ok);
    expect(JSON.parse(out(fake))).toEqual({ logs: [], next_cursor: null });
    expect(await main(["logs"], fake.io)).toBe(EXIT.ok);
    expect(fake.stdout[1]).toBe("no log entries");
  });

  it("refuses a bad limit and --follow with --until", async () => {
    const fake = await loggedIn();
    expect(await main(["logs", "--limit", "0"], fake.io)).toBe(EXIT.usage);
    expect(await main(["logs", "-f", "--until", "1h"], fake.io)).toBe(EXIT.usage);
    expect(fake.requests).toEqual([]);
  });

  it("--follow prints the latest page oldest first, then only new entries, late ones included", async () => {
    let polls = 0;
    const fake = await loggedIn({
      onSleep: (self) => {
        polls += 1;
        if (polls === 3) self.controller.abort();
      },
    });
    // Poll 1 brings e3 and e4; poll 2 brings e5 and a late e0 (older than the watermark) and
    // repeats e4, which must not print twice.
    fake.answer("GET", "/api/v1/logs", (request) => {
      const page =
        polls === 0
          ? [entry(2), entry(1)]
          : polls === 1
            ? [entry(4), entry(3), entry(2)]
            : [entry(5), entry(4), entry(0)];
      if (polls > 0) expect(request.url).toMatch(/since=/);
      return jsonResponse({ logs: page, next_cursor: null });
    });
    expect(await main(["logs", "--follow", "--json", "--namespace", "acme"], fake.io)).toBe(
      EXIT.ok,
    );
    expect(fake.stdout.map((line) => (JSON.parse(line) as LogEntry).id)).toEqual([
      "e1",
      "e2",
      "e3",
      "e4",
      "e0",
      "e5",
    ]);
    expect(fake.requests.every((r) => r.url.includes("namespace=acme"))).toBe(true);
  });
});
