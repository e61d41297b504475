// Management API: manual builds. A Dockerfile or a context archive uploaded by someone who may
// push becomes a build: the upload lands in R2 under build-sources/, a BuildRequest goes on the
// `builds` queue (seen here as the row its consumer records), and the answer is 202 with the id.
// Refusals (no push right, bad type, size or content) store nothing and queue nothing.
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { buildSourceKey } from "../../schema/blob-keys.ts";
import type { BuildRequest } from "../../schema/builds.ts";
import { startManualBuild } from "../../workers/registry/services/manual-builds.ts";
import {
  call,
  eventSince,
  events,
  expectApiError,
  expectStatus,
  json,
  makeUser,
  type TestUser,
  unique,
} from "./api-helpers.ts";

beforeEach(() => {
  events.length = 0;
});

const DOCKERFILE = "FROM registry.test/base/busybox:latest\nRUN echo built > /built\n";

interface Fixture {
  owner: TestUser;
  reader: TestUser;
  writer: TestUser;
  stranger: TestUser;
  repo: string;
}

async function fixture(): Promise<Fixture> {
  const [owner, reader, writer, stranger] = await Promise.all([
    makeUser(),
    makeUser(),
    makeUser(),
    makeUser(),
  ]);
  const repo = `${owner.name}/${unique("app")}`;
  await expectStatus(await call("POST", "/repositories", { as: owner, body: { name: repo } }), 201);
  for (const [user, role] of [
    [reader, "read"],
    [writer, "write"],
  ] as const) {
    await expectStatus(
      await call("PUT", `/repositories/${repo}/permissions/user/${user.name}`, {
        as: owner,
        body: { role },
      }),
      200,
    );
  }
  return { owner, reader, writer, stranger, repo };
}

function upload(
  repo: string,
  as: TestUser | undefined,
  body: Uint8Array | string,
  contentType: string,
  query = "",
): Promise<Response> {
  return call("POST", `/repositories/${repo}/builds${query}`, {
    as,
    raw: body,
    // As a real client sends it (a Request made in-process has none).
    headers: { "Content-Type": contentType, "Content-Length": String(lengthOf(body)) },
  });
}

function lengthOf(body: Uint8Array | string): number {
  return typeof body === "string" ? new TextEncoder().encode(body).length : body.length;
}

/** A one-file ustar archive. */
function tarOf(name: string, content: string): Uint8Array {
  const data = new TextEncoder().encode(content);
  const header = new Uint8Array(512);
  const put = (text: string, at: number) => header.set(new TextEncoder().encode(text), at);
  put(name, 0);
  put("0000644\0", 100);
  put("0000000\0", 108);
  put("0000000\0", 116);
  put(`${data.length.toString(8).padStart(11, "0")}\0`, 124);
  put("00000000000\0", 136);
  put("        ", 148);
  put("0", 156);
  put("ustar\0", 257);
  put("00", 263);
  let sum = 0;
  for (const byte of header) sum += byte;
  put(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  const padded = Math.ceil(data.length / 512) * 512;
  const tar = new Uint8Array(512 + padded + 1024);
  tar.set(header, 0);
  tar.set(data, 512);
  return tar;
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

interface BuildRow {
  id: string;
  repository: string;
  trigger_id: string | null;
  source: string;
  dockerfile_path: string;
  context_dir: string;
  tags: string;
  requested_by: string;
}

/** The row the `builds` queue consumer records on receiving the request. */
async function recordedBuild(buildId: string): Promise<BuildRow> {
  const deadline = Date.now() + 8_000;
  for (;;) {
    const row = await env.DB.prepare("SELECT * FROM builds WHERE id = ?")
      .bind(buildId)
      .first<BuildRow>();
    if (row) return row;
    if (Date.now() > deadline) throw new Error(`build ${buildId} never reached the queue consumer`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function storedSources(): Promise<string[]> {
  const listed = await env.BLOBS.list({ prefix: "build-sources/" });
  return listed.objects.map((object) => object.key).sort();
}

describe("manual builds", { timeout: 20_000 }, () => {
  it("queues a build of an uploaded Dockerfile for someone who may push", async () => {
    const f = await fixture();
    const res = await upload(
      f.repo,
      f.writer,
      DOCKERFILE,
      "text/plain; charset=utf-8",
      "?tags=1.0,latest",
    );
    expect(res.status).toBe(202);
    const build = await json<{ buildId: string }>(res);
    expect(build).toEqual({
      buildId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      repository: f.repo,
      tags: ["1.0", "latest"],
      dockerfilePath: "Dockerfile",
      contextDir: ".",
      source: { kind: "archive", format: "dockerfile", size: DOCKERFILE.length },
    });

    // Recorded before it was queued: the id the 202 names answers at once.
    const shown = await call("GET", `/repositories/${f.repo}/builds/${build.buildId}`, {
      as: f.writer,
    });
    expect(shown.status).toBe(200);
    expect(await json<{ id: string }>(shown)).toMatchObject({ id: build.buildId });

    const key = buildSourceKey(build.buildId);
    const stored = await env.BLOBS.get(key);
    expect(await stored!.text()).toBe(DOCKERFILE);
    expect(stored!.httpMetadata?.contentType).toBe("text/plain; charset=utf-8");

    const row = await recordedBuild(build.buildId);
    expect(row).toMatchObject({
      repository: f.repo,
      trigger_id: null,
      dockerfile_path: "Dockerfile",
    });
    expect(JSON.parse(row.source)).toEqual({
      kind: "archive",
      format: "dockerfile",
      key,
      size: DOCKERFILE.length,
    });
    expect(JSON.parse(row.tags)).toEqual(["1.0", "latest"]);
    expect(JSON.parse(row.requested_by)).toEqual({
      kind: "token",
      name: f.writer.name,
      id: f.writer.tokenId,
    });
    expect(eventSince(0, "build.requested")).toMatchObject({
      repository: f.repo,
      metadata: { build: build.buildId, source: "upload", format: "dockerfile" },
    });
  });

  it("queues a context archive, tar or gzip, with the Dockerfile path inside it", async () => {
    const f = await fixture();
    const tar = tarOf("app/build/Dockerfile", DOCKERFILE);
    const plain = await upload(
      f.repo,
      f.owner,
      tar,
      "application/x-tar",
      "?dockerfile=build/Dockerfile&context=app",
    );
    expect(plain.status).toBe(202);
    const tarBuild = await json<{ buildId: string }>(plain);
    expect(tarBuild).toMatchObject({
      tags: ["latest"],
      dockerfilePath: "build/Dockerfile",
      contextDir: "app",
      source: { format: "tar", size: tar.length },
    });
    const stored = await env.BLOBS.get(buildSourceKey(tarBuild.buildId));
    expect(new Uint8Array(await stored!.arrayBuffer())).toEqual(tar);

    const compressed = await gzip(tarOf("Dockerfile", DOCKERFILE));
    const gz = await upload(f.repo, f.owner, compressed, "application/gzip");
    expect(gz.status).toBe(202);
    const gzBuild = await json<{ buildId: string }>(gz);
    const row = await recordedBuild(gzBuild.buildId);
    expect(JSON.parse(row.source)).toMatchObject({ format: "tar.gz", size: compressed.length });
  });

  it("refuses those who may not push: readers 403, strangers 404, anonymous 401", async () => {
    const f = await fixture();
    const before = await storedSources();
    for (const [as, status] of [
      [f.reader, 403],
      [f.stranger, 404],
      [undefined, 401],
    ] as const) {
      const mark = events.length;
      await expectApiError(await upload(f.repo, as, DOCKERFILE, "text/plain"), status);
      expect(events.slice(mark).filter((e) => e.kind !== "login.failed")).toEqual([]);
    }
    // A repository that does not exist is as absent as a private one.
    await expectApiError(
      await upload(`${f.owner.name}/${unique("missing")}`, f.owner, DOCKERFILE, "text/plain"),
      404,
    );
    // A read-only repository takes no builds, even from its owner.
    await expectStatus(
      await call("PATCH", `/repositories/${f.repo}`, { as: f.owner, body: { state: "read-only" } }),
      200,
    );
    await expectApiError(await upload(f.repo, f.owner, DOCKERFILE, "text/plain"), 403);
    expect(await storedSources()).toEqual(before);
  });

  it("refuses bad uploads with a clear error, storing nothing", async () => {
    const f = await fixture();
    const before = await storedSources();
    const mark = events.length;
    const cases: [Uint8Array | string, string, string, number, RegExp][] = [
      [DOCKERFILE, "application/json", "", 415, /Content-Type must be one of/],
      ["RUN echo no base\n", "text/plain", "", 400, /no FROM instruction/],
      [new Uint8Array([0xff, 0xfe, 0x00]), "text/plain", "", 400, /not UTF-8/],
      [DOCKERFILE, "text/plain", "?dockerfile=Other", 400, /apply to archives/],
      [DOCKERFILE, "text/plain", "?tags=ok,-bad", 400, /"-bad" is not a valid tag/],
      [tarOf("Dockerfile", DOCKERFILE), "application/gzip", "", 400, /not gzip/],
      [DOCKERFILE, "application/x-tar", "", 400, /not a tar archive/],
      [new Uint8Array(1024), "application/x-tar", "", 400, /empty/],
      [
        tarOf("Dockerfile", DOCKERFILE),
        "application/x-tar",
        "?context=../up",
        400,
        /context may not contain/,
      ],
      [
        tarOf("Dockerfile", DOCKERFILE),
        "application/x-tar",
        "?dockerfile=/abs",
        400,
        /dockerfile must be relative/,
      ],
      ["x".repeat(1024 * 1024 + 1), "text/plain", "", 413, /at most 1048576 bytes/],
      ["", "text/plain", "", 400, /empty/],
    ];
    for (const [body, type, query, status, message] of cases) {
      const error = await expectApiError(await upload(f.repo, f.owner, body, type, query), status);
      expect(error.message, `${type} ${query}`).toMatch(message);
    }
    expect(events.slice(mark)).toEqual([]);
    expect(await storedSources()).toEqual(before);
  });

  it("refuses a body shorter than its Content-Length, storing nothing", async () => {
    const f = await fixture();
    const before = await storedSources();
    const tar = tarOf("Dockerfile", DOCKERFILE);
    for (const [body, type] of [
      [tar, "application/x-tar"],
      [DOCKERFILE, "text/plain"],
    ] as const) {
      const res = await call("POST", `/repositories/${f.repo}/builds`, {
        as: f.owner,
        raw: body,
        headers: { "Content-Type": type, "Content-Length": String(lengthOf(body) + 10) },
      });
      const error = await expectApiError(res, 400);
      expect(error.message).toMatch(/Content-Length announced/);
    }
    expect(await storedSources()).toEqual(before);
  });

  it("deletes the upload again when the queue refuses the build (503)", async () => {
    const f = await fixture();
    const before = await storedSources();
    const down = {
      send: () => Promise.reject(new Error("queue unavailable")),
      sendBatch: () => Promise.reject(new Error("queue unavailable")),
    } as unknown as Queue<BuildRequest>;
    const bytes = new TextEncoder().encode(DOCKERFILE);
    const mark = events.length;
    const started = startManualBuild(
      {
        db: env.DB,
        caller: { kind: "user", id: f.owner.id, name: f.owner.name, superuser: false },
        events: { emit: (event) => events.push({ id: "x", at: 0, ...event }) },
      },
      { blobs: env.BLOBS, builds: down },
      f.repo,
      { format: "dockerfile", body: new Blob([bytes]).stream(), size: bytes.length },
      { tags: ["latest"], dockerfilePath: "Dockerfile", contextDir: "." },
    );
    await expect(started).rejects.toMatchObject({ code: "UNAVAILABLE", status: 503 });
    expect(await storedSources()).toEqual(before);
    expect(events.slice(mark)).toEqual([]);
    // The row recorded before queueing is gone again: no build that can never run is listed.
    const rows = await env.DB.prepare("SELECT id FROM builds WHERE repository = ?")
      .bind(f.repo)
      .all();
    expect(rows.results).toEqual([]);
  });
});
