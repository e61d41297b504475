// The builds API on workerd: listing (newest first, paged), one build with its phases, cancel at
// every phase, log pages (from the object, then from the R2 archive once pruned) and live
// watching; who may do each (read to see, write to cancel) and the refusals; the end-of-build
// events on the audit log.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BUILD_LOG_RETENTION_MS } from "../../durable-objects/build-object.ts";
import type {
  BuildDetailView as BuildDetail,
  BuildJob,
  BuildRequest,
  BuildView,
} from "../../schema/builds.ts";
import { recordBuild } from "../../workers/registry/services/builds.ts";
import {
  apiAs,
  bearerOf,
  buildRequest,
  buildWorld,
  coordinatorJob,
  deliver,
  eventually,
  expectJson,
  FakeHost,
  resetCoordinator,
  Watcher,
  watchRequest,
} from "./builds-helpers.ts";

const hosts: FakeHost[] = [];
async function host(): Promise<FakeHost> {
  const connected = await FakeHost.connect();
  hosts.push(connected);
  return connected;
}

beforeEach(resetCoordinator);
afterEach(async () => {
  for (const h of hosts.splice(0)) h.close();
  await resetCoordinator();
});

const path = (request: BuildRequest, rest = "") =>
  `/repositories/${request.repository}/builds/${request.buildId}${rest}`;

async function runningBuild(): Promise<{
  world: Awaited<ReturnType<typeof buildWorld>>;
  request: BuildRequest;
  fleet: FakeHost;
  job: BuildJob;
}> {
  const world = await buildWorld();
  const request = buildRequest(world.repository, world.writer);
  await deliver(request);
  const fleet = await host();
  const job = await fleet.job(request.buildId);
  return { world, request, fleet, job };
}

describe("listing and showing", () => {
  it("lists a repository's builds newest first, page by page", async () => {
    const world = await buildWorld();
    const requests = [0, 1, 2].map((n) =>
      buildRequest(world.repository, world.writer, { requestedAt: 1_700_000_000_000 + n * 1000 }),
    );
    for (const request of requests) await deliver(request);
    const first = await expectJson<{ builds: BuildView[]; next_cursor: string | null }>(
      await apiAs(world.reader, "GET", `/repositories/${world.repository}/builds?limit=2`),
      200,
    );
    expect(first.builds.map((b) => b.id)).toEqual([requests[2]!.buildId, requests[1]!.buildId]);
    expect(first.builds[0]).toMatchObject({
      repository: world.repository,
      phase: "queued",
      tags: ["latest"],
      requestedBy: { kind: "user", name: world.writer.name },
      source: {
        kind: "git",
        commit: requests[2]!.source.kind === "git" ? requests[2]!.source.commit : "",
      },
      queuedAt: new Date(1_700_000_002_000).toISOString(),
    });
    const second = await expectJson<{ builds: BuildView[]; next_cursor: string | null }>(
      await apiAs(
        world.reader,
        "GET",
        `/repositories/${world.repository}/builds?limit=2&cursor=${first.next_cursor}`,
      ),
      200,
    );
    expect(second.builds.map((b) => b.id)).toEqual([requests[0]!.buildId]);
    expect(second.next_cursor).toBeNull();
  });

  it("shows one build with its live phases", async () => {
    const { world, request, fleet, job } = await runningBuild();
    fleet.phase(job, "building");
    const detail = await eventually(async () => {
      const body = await expectJson<BuildDetail>(
        await apiAs(world.reader, "GET", path(request)),
        200,
      );
      expect(body.phase).toBe("building");
      return body;
    });
    expect(detail).toMatchObject({ id: request.buildId, attempts: 1, host: fleet.hostId });
    expect(detail.phases.map((p) => p.phase)).toEqual(["queued", "waiting", "building"]);
  });

  it("refuses those who may not see the repository, and unknown builds, as not found", async () => {
    const { world, request } = await runningBuild();
    for (const [who, status] of [
      [world.outsider, 404],
      [null, 401],
    ] as const) {
      for (const suffix of ["", "/logs"]) {
        const res = await apiAs(who, "GET", path(request, suffix));
        expect(res.status, `${suffix} as ${who?.name ?? "anonymous"}`).toBe(status);
      }
      expect((await apiAs(who, "GET", `/repositories/${world.repository}/builds`)).status).toBe(
        status,
      );
    }
    expect(
      (await apiAs(world.reader, "GET", `/repositories/${world.repository}/builds/nope`)).status,
    ).toBe(404);
    // A build id under another repository the caller can see is not found either.
    const other = await buildWorld();
    const res = await apiAs(
      world.reader,
      "GET",
      `/repositories/${other.repository}/builds/${request.buildId}`,
    );
    expect(res.status).toBe(404);
  });
});

describe("cancel", () => {
  it("cancels a pending build at once, and it is never dispatched", async () => {
    const world = await buildWorld();
    const request = buildRequest(world.repository, world.writer);
    await deliver(request);
    const body = await expectJson<BuildDetail>(
      await apiAs(world.writer, "POST", path(request, "/cancel")),
      200,
    );
    expect(body.phase).toBe("cancelled");
    expect(await coordinatorJob(request.buildId)).toBeUndefined();
    const fleet = await host();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(fleet.received.filter((m) => m.type === "job")).toEqual([]);
    await eventually(async () =>
      expect(
        await env.DB.prepare("SELECT phase FROM builds WHERE id = ?")
          .bind(request.buildId)
          .first("phase"),
      ).toBe("cancelled"),
    );
  });

  it("cancels a running build: its host is told to stop, watchers see the end", async () => {
    const { world, request, fleet, job } = await runningBuild();
    fleet.phase(job, "building");
    const watcher = await Watcher.open(world.repository, request.buildId, bearerOf(world.reader));
    await watcher.next("phase", (m) => m.phase === "building");
    await expectJson(await apiAs(world.writer, "POST", path(request, "/cancel")), 200);
    expect(await fleet.next("cancel")).toMatchObject({ buildId: request.buildId, attempt: 1 });
    expect(await watcher.next("end")).toEqual({ type: "end", phase: "cancelled" });
    // What the host says afterwards changes nothing.
    fleet.succeed(job);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await env.BUILD.getByName(request.buildId).state())!.phase).toBe("cancelled");
  });

  it("cancels a build recorded but not yet handed to the coordinator; the late request is not run", async () => {
    const world = await buildWorld();
    const request = buildRequest(world.repository, world.writer);
    await recordBuild(env.DB, request);
    await expectJson(await apiAs(world.writer, "POST", path(request, "/cancel")), 200);
    await deliver(request);
    expect(await coordinatorJob(request.buildId)).toBeUndefined();
    expect((await env.BUILD.getByName(request.buildId).state())!.phase).toBe("cancelled");
  });

  it("refuses to cancel a build that ended (409), and readers and outsiders (403, 404)", async () => {
    const { world, request, fleet, job } = await runningBuild();
    expect((await apiAs(world.reader, "POST", path(request, "/cancel"))).status).toBe(403);
    expect((await apiAs(world.outsider, "POST", path(request, "/cancel"))).status).toBe(404);
    expect((await apiAs(null, "POST", path(request, "/cancel"))).status).toBe(401);
    expect((await env.BUILD.getByName(request.buildId).state())!.phase).toBe("waiting");
    fleet.succeed(job);
    await eventually(async () =>
      expect((await env.BUILD.getByName(request.buildId).state())!.phase).toBe("complete"),
    );
    const res = await apiAs(world.writer, "POST", path(request, "/cancel"));
    expect(res.status).toBe(409);
    expect((await env.BUILD.getByName(request.buildId).state())!.phase).toBe("complete");
  });
});

describe("logs", () => {
  it("pages the log by sequence number, then from the R2 archive once pruned", async () => {
    const { world, request, fleet, job } = await runningBuild();
    fleet.log(job, ...Array.from({ length: 5 }, (_, i) => `line ${i + 1}`));
    fleet.succeed(job);
    await eventually(async () =>
      expect((await env.BUILD.getByName(request.buildId).state())!.phase).toBe("complete"),
    );
    type Page = {
      lines: { seq: number; text: string }[];
      next_after: number | null;
      finished: boolean;
    };
    const readAll = async () => {
      const texts: string[] = [];
      let after: number | null = 0;
      while (after !== null) {
        const page: Page = await expectJson<Page>(
          await apiAs(world.reader, "GET", path(request, `/logs?after=${after}&limit=3`)),
          200,
        );
        texts.push(...page.lines.map((l) => l.text));
        expect(page.finished).toBe(true);
        after = page.next_after;
      }
      return texts;
    };
    const live = await readAll();
    expect(live.filter((t) => t.startsWith("line "))).toEqual([
      "line 1",
      "line 2",
      "line 3",
      "line 4",
      "line 5",
    ]);

    // Past the retention, the alarm drops the object's copy; pages come from the archive.
    const build = env.BUILD.getByName(request.buildId);
    await runInDurableObject(build, (_o, state) => {
      state.storage.sql.exec(
        "UPDATE build SET finished_at = ?",
        Date.now() - BUILD_LOG_RETENTION_MS - 1,
      );
    });
    await runDurableObjectAlarm(build);
    expect(
      await runInDurableObject(
        build,
        (_o, state) =>
          state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM log_lines").one().n,
      ),
    ).toBe(0);
    expect(await readAll()).toEqual(live);
  });

  it("a watcher gets the history after `after`, then live lines, then the end", async () => {
    const { world, request, fleet, job } = await runningBuild();
    fleet.log(job, "early 1", "early 2");
    await eventually(async () =>
      expect((await env.BUILD.getByName(request.buildId).state())!.logLines).toBeGreaterThanOrEqual(
        3,
      ),
    );
    // Line 1 is the coordinator's own "dispatched" line; start after it and the first early line.
    const watcher = await Watcher.open(
      world.repository,
      request.buildId,
      bearerOf(world.reader),
      2,
    );
    await eventually(() => expect(watcher.texts()).toEqual(["early 2"]));
    fleet.log(job, "live 1");
    fleet.succeed(job);
    await watcher.next("end");
    expect(watcher.texts().slice(0, 2)).toEqual(["early 2", "live 1"]);
    // A watcher of an ended build gets the history and the end, then the socket closes.
    const late = await Watcher.open(world.repository, request.buildId, bearerOf(world.reader));
    expect(await late.next("end")).toMatchObject({ phase: "complete" });
    expect(late.texts()).toContain("live 1");
    expect((await late.closedWith()).code).toBe(1000);
  });

  it("refuses to watch without read permission, and without the WebSocket upgrade", async () => {
    const { world, request } = await runningBuild();
    expect(
      (await watchRequest(world.repository, request.buildId, bearerOf(world.outsider))).status,
    ).toBe(404);
    expect((await watchRequest(world.repository, request.buildId, null)).status).toBe(401);
    const plain = await apiAs(world.reader, "GET", path(request, "/logs?follow=1"));
    expect(plain.status).toBe(400);
    expect((await apiAs(world.reader, "GET", path(request, "/logs?after=-1"))).status).toBe(400);
    expect((await apiAs(world.reader, "GET", path(request, "/logs?limit=0"))).status).toBe(400);
  });
});

describe("events", () => {
  it("announces the end of a build on the event queue (audit log, notifications)", async () => {
    const { request, fleet, job } = await runningBuild();
    fleet.succeed(job);
    const row = await eventually(async () => {
      const found = await env.DB.prepare("SELECT * FROM audit_log WHERE event_id = ?")
        .bind(`build:${request.buildId}:end`)
        .first<{ kind: string; repository: string; actor_kind: string; metadata: string }>();
      expect(found).not.toBeNull();
      return found!;
    }, 5000);
    expect(row).toMatchObject({
      kind: "build.complete",
      repository: request.repository,
      actor_kind: "build",
    });
    expect(JSON.parse(row.metadata)).toMatchObject({
      buildId: request.buildId,
      digest: `sha256:${"ab".repeat(32)}`,
      tags: ["latest"],
      attempts: 1,
    });
  });

  it("names the person who cancelled", async () => {
    const world = await buildWorld();
    const request = buildRequest(world.repository, world.writer);
    await deliver(request);
    await expectJson(await apiAs(world.writer, "POST", path(request, "/cancel")), 200);
    const row = await eventually(async () => {
      const found = await env.DB.prepare("SELECT kind, actor FROM audit_log WHERE event_id = ?")
        .bind(`build:${request.buildId}:end`)
        .first<{ kind: string; actor: string }>();
      expect(found).not.toBeNull();
      return found!;
    }, 5000);
    expect(row).toEqual({ kind: "build.cancelled", actor: world.writer.name });
  });
});
