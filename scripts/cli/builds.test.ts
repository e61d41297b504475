// `builds`, `build show|cancel` and `logs <repo> <id> [--follow]`: the requests they send, what
// they print, the WebSocket follow (live lines, reconnect from the last line, exit status from
// the build's outcome) and the usage errors.
import path from "node:path";
import { describe, expect, it } from "vitest";
import { clean } from "./builds.ts";
import { writeConfig } from "./config.ts";
import { EXIT } from "./errors.ts";
import { err, type FakeIo, fakeIo, jsonResponse, out } from "./fake-io.ts";
import { main } from "./main.ts";

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const ID = "1b7c9e3e-5f1a-4d2b-9c4e-000000000001";

async function loggedIn(): Promise<FakeIo> {
  const fake = fakeIo({ now: NOW });
  await writeConfig(path.join(fake.configHome, "edge-registry", "config.json"), {
    url: "http://r.test",
    token: "era_a",
  });
  return fake;
}

function build(overrides: Record<string, unknown> = {}) {
  return {
    id: ID,
    repository: "acme/app",
    triggerId: null,
    phase: "complete",
    source: {
      kind: "git",
      cloneUrl: "https://g/app.git",
      ref: "refs/heads/main",
      commit: "a".repeat(40),
    },
    dockerfilePath: "Dockerfile",
    contextDir: ".",
    tags: ["latest", "main"],
    requestedBy: { kind: "user", name: "alice" },
    queuedAt: "2026-01-15T11:00:00.000Z",
    startedAt: "2026-01-15T11:00:01.000Z",
    finishedAt: "2026-01-15T11:01:05.000Z",
    attempts: 1,
    host: "rack1",
    digest: `sha256:${"b".repeat(64)}`,
    error: null,
    ...overrides,
  };
}

const line = (seq: number, text: string, stream = "stdout") => ({ seq, at: NOW, stream, text });

describe("builds", () => {
  it("lists a repository's builds with the next cursor on stderr", async () => {
    const fake = await loggedIn();
    fake.answer(
      "GET",
      "/api/v1/repositories/acme/app/builds",
      jsonResponse({ builds: [build()], next_cursor: "c2" }),
    );
    expect(await main(["builds", "acme/app", "--limit", "5"], fake.io)).toBe(EXIT.ok);
    expect(fake.requests[0]!.url).toBe("/api/v1/repositories/acme/app/builds?limit=5");
    expect(out(fake)).toContain("main@aaaaaaaaaaaa");
    expect(out(fake)).toContain("1m4s");
    expect(out(fake)).toMatch(/latest,main/);
    expect(err(fake)).toContain("--cursor c2");
  });

  it("cancels through the API and reports 409 as a conflict", async () => {
    const fake = await loggedIn();
    const cancel = `/api/v1/repositories/acme/app/builds/${ID}/cancel`;
    fake.answer(
      "POST",
      cancel,
      jsonResponse({ ...build({ phase: "cancelled" }), phases: [], logLines: 0 }),
    );
    expect(await main(["build", "cancel", "acme/app", ID], fake.io)).toBe(EXIT.ok);
    expect(out(fake)).toContain(`cancelled build ${ID}`);
    fake.answer(
      "POST",
      cancel,
      jsonResponse({ error: { code: "CONFLICT", message: "already ended" } }, 409),
    );
    expect(await main(["build", "cancel", "acme/app", ID], fake.io)).toBe(EXIT.conflict);
  });
});

describe("logs <repo> <build-id>", () => {
  it("pages through the stored log", async () => {
    const fake = await loggedIn();
    fake.answer("GET", `/api/v1/repositories/acme/app/builds/${ID}/logs`, (request) => {
      const after = new URL(request.url, "http://x").searchParams.get("after");
      return jsonResponse(
        after === "0"
          ? {
              lines: [line(1, "dispatched", "system"), line(2, "\u001b[31mred\u001b[0m step")],
              next_after: null,
              finished: true,
            }
          : { lines: [], next_after: null, finished: true },
      );
    });
    expect(await main(["logs", "acme/app", ID], fake.io)).toBe(EXIT.ok);
    expect(fake.stdout).toEqual(["--- dispatched", "red step"]);
  });

  it("--follow prints live lines, reconnects after the last one seen, and exits 0 on complete", async () => {
    const fake = await loggedIn();
    fake.answer("GET", `/api/v1/repositories/acme/app/builds/${ID}`, jsonResponse(build()));
    fake.onWebSocket = (socket) => {
      if (fake.sockets.length === 1) {
        socket.send({ type: "phase", phase: "building", at: NOW, attempt: 1 });
        socket.send({ type: "lines", lines: [line(1, "one"), line(2, "two")] });
        socket.close(1006, "");
      } else {
        // The server repeats what it sent before `after`; the CLI prints each line once.
        socket.send({ type: "phase", phase: "building", at: NOW, attempt: 1 });
        socket.send({ type: "lines", lines: [line(2, "two"), line(3, "three")] });
        socket.send({ type: "end", phase: "complete", digest: `sha256:${"b".repeat(64)}` });
        socket.close(1000, "build ended");
      }
    };
    expect(await main(["logs", "acme/app", ID, "--follow"], fake.io)).toBe(EXIT.ok);
    expect(fake.stdout).toEqual(["one", "two", "three"]);
    expect(fake.sockets.map((s) => s.url)).toEqual([
      `ws://r.test/api/v1/repositories/acme/app/builds/${ID}/logs?follow=1&after=0`,
      `ws://r.test/api/v1/repositories/acme/app/builds/${ID}/logs?follow=1&after=2`,
    ]);
    expect(fake.sockets[0]!.headers).toEqual({ Authorization: "Bearer era_a" });
    expect(err(fake).match(/\[building\]/g)).toHaveLength(1);
    expect(err(fake)).toContain("ended: complete");
  });

  it("--follow exits non-zero when the build failed, with its error", async () => {
    const fake = await loggedIn();
    fake.onWebSocket = (socket) => {
      socket.send({ type: "end", phase: "error", error: "RUN make: exit 2" });
      socket.close(1000);
    };
    expect(await main(["logs", "acme/app", ID, "-f"], fake.io)).toBe(EXIT.error);
    expect(err(fake)).toContain(`build ${ID} ended: error: RUN make: exit 2`);
  });

  it("--follow reports a refused stream as the API's error", async () => {
    const fake = await loggedIn();
    fake.answer(
      "GET",
      `/api/v1/repositories/acme/app/builds/${ID}`,
      jsonResponse({ error: { code: "NOT_FOUND", message: "repository acme/app not found" } }, 404),
    );
    fake.onWebSocket = (socket) => socket.close(1006);
    expect(await main(["logs", "acme/app", ID, "--follow"], fake.io)).toBe(EXIT.notFound);
  });

  it("refuses a repository without a build id, and audit filters", async () => {
    const fake = await loggedIn();
    expect(await main(["logs", "acme/app"], fake.io)).toBe(EXIT.usage);
    expect(await main(["logs", "acme/app", ID, "--kind", "tag.push"], fake.io)).toBe(EXIT.usage);
    expect(fake.requests).toEqual([]);
  });

  it("drops terminal escape sequences from build output", () => {
    expect(clean("\u001b[2J\u001b[31mhi\u0007\tthere")).toBe("hi\tthere");
  });
});
