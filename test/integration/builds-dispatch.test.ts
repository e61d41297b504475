// Dispatch end to end on workerd: the `builds` queue consumer records a build (D1 row, BuildObject)
// and hands it to the BuildCoordinator; a fake fleet host connected over a real WebSocket gets the
// job pushed, reports phases, log lines and the result; a watcher sees the lines live; the outcome
// is mirrored to D1, archived to R2 and announced. Then what goes wrong: lost hosts, exhausted
// attempts, stale messages, cancels at every phase.
import {
  env,
  evictDurableObject,
  runDurableObjectAlarm,
  runInDurableObject,
} from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildLogKey } from "../../schema/blob-keys.ts";
import { MAX_BUILD_ATTEMPTS } from "../../schema/builds.ts";
import {
  BOOTSTRAP_FLEET_CREDENTIAL,
  bearerOf,
  buildRequest,
  buildWorld,
  connectFleet,
  coordinator,
  coordinatorJob,
  deliver,
  eventually,
  FakeHost,
  resetCoordinator,
  silenceHost,
  Watcher,
} from "./builds-helpers.ts";

const hosts: FakeHost[] = [];
async function host(options: Parameters<typeof FakeHost.connect>[0] = {}): Promise<FakeHost> {
  const connected = await FakeHost.connect(options);
  hosts.push(connected);
  return connected;
}

beforeEach(resetCoordinator);
afterEach(async () => {
  for (const h of hosts.splice(0)) h.close();
  await resetCoordinator();
});

async function buildRow(id: string) {
  return env.DB.prepare("SELECT * FROM builds WHERE id = ?")
    .bind(id)
    .first<Record<string, unknown>>();
}

describe("queue → record → dispatch", () => {
  it("records the build in D1 and on its object, and the coordinator holds it pending", async () => {
    const world = await buildWorld();
    const request = buildRequest(world.repository, world.writer);
    const result = await deliver(request);
    expect(result.explicitAcks).toHaveLength(1);
    expect(result.retryMessages).toEqual([]);

    const row = await buildRow(request.buildId);
    expect(row).toMatchObject({ repository: world.repository, phase: "queued", attempts: 0 });
    expect(await coordinatorJob(request.buildId)).toMatchObject({ state: "pending", attempt: 0 });

    // Redelivery changes nothing.
    await deliver(request);
    expect(await buildRow(request.buildId)).toEqual(row);
  });

  it("pushes the job to a host, forwards phases and logs, and records the result", async () => {
    const world = await buildWorld();
    const request = buildRequest(world.repository, world.writer, { tags: ["v1", "latest"] });
    await deliver(request);
    const fleet = await host();
    const job = await fleet.job(request.buildId);
    expect(job).toMatchObject({
      buildId: request.buildId,
      attempt: 1,
      repository: world.repository,
      tags: ["v1", "latest"],
      source: request.source,
    });
    expect(job.token.split(".")).toHaveLength(3);
    expect(job.tokenExpiresAt).toBeGreaterThan(Date.now());

    const watcher = await Watcher.open(world.repository, request.buildId, bearerOf(world.reader));
    fleet.phase(job, "pulling");
    fleet.log(job, "step 1/2 : FROM scratch", "step 2/2 : COPY . /");
    fleet.phase(job, "building");
    await eventually(() => expect(watcher.texts()).toContain("step 2/2 : COPY . /"));
    fleet.phase(job, "pushing");
    fleet.succeed(job);
    const end = await watcher.next("end");
    expect(end).toMatchObject({ phase: "complete", digest: `sha256:${"ab".repeat(32)}` });
    expect((await watcher.closedWith()).code).toBe(1000);

    await eventually(async () =>
      expect(await buildRow(request.buildId)).toMatchObject({
        phase: "complete",
        attempts: 1,
        host: fleet.hostId,
        digest: `sha256:${"ab".repeat(32)}`,
      }),
    );
    const archive = await env.BLOBS.get(buildLogKey(request.buildId));
    expect(archive).not.toBeNull();
    const archived = (await archive!.text()).split("\n").map((line) => JSON.parse(line).text);
    expect(archived).toContain("step 1/2 : FROM scratch");
    expect(await coordinatorJob(request.buildId)).toBeUndefined();
  });
});

describe("requests that cannot be built", () => {
  it("records a request with a sound id and repository as failed, with the reason", async () => {
    const world = await buildWorld();
    const request = buildRequest(world.repository, world.writer, {
      dockerfilePath: "../etc/passwd",
    });
    const result = await deliver(request);
    expect(result.explicitAcks).toHaveLength(1);
    await eventually(async () =>
      expect(await buildRow(request.buildId)).toMatchObject({
        phase: "error",
        error: expect.stringMatching(/^invalid build request: dockerfilePath may not contain \.\./),
      }),
    );
    expect(await coordinatorJob(request.buildId)).toBeUndefined();
  });

  it("drops (acks) what it cannot even record: no id, or no such repository", async () => {
    const world = await buildWorld();
    const noId = { ...buildRequest(world.repository, world.writer), buildId: "../x" };
    const noRepo = buildRequest(`${world.repository}-missing`, world.writer);
    const result = await deliver(noId, "not even an object", noRepo);
    expect(result.explicitAcks).toHaveLength(3);
    expect(result.retryMessages).toEqual([]);
    expect(await buildRow(noRepo.buildId)).toBeNull();
  });
});

describe("capacity", () => {
  it("pushes no more jobs than a host's concurrency, and the next one when a slot frees", async () => {
    const world = await buildWorld();
    const requests = [1, 2, 3].map((n) =>
      buildRequest(world.repository, world.writer, { requestedAt: Date.now() + n }),
    );
    for (const request of requests) await deliver(request);
    const fleet = await host({ concurrency: 2 });
    const first = await fleet.job(requests[0]!.buildId);
    await fleet.job(requests[1]!.buildId);
    expect(await coordinatorJob(requests[2]!.buildId)).toMatchObject({ state: "pending" });
    fleet.succeed(first);
    const third = await fleet.job(requests[2]!.buildId);
    expect(third.attempt).toBe(1);
  });

  it("spreads jobs over hosts by free capacity", async () => {
    const world = await buildWorld();
    const a = await host({ concurrency: 1 });
    const b = await host({ concurrency: 1 });
    const first = buildRequest(world.repository, world.writer);
    const second = buildRequest(world.repository, world.writer);
    await deliver(first);
    await deliver(second);
    const jobs = await Promise.all([a.next("job"), b.next("job")]);
    expect(new Set(jobs.map((m) => m.job.buildId))).toEqual(
      new Set([first.buildId, second.buildId]),
    );
  });
});

describe("leases", () => {
  it("heartbeats extend a lease; a heartbeat naming an attempt that is not current gets a cancel", async () => {
    const world = await buildWorld();
    const request = buildRequest(world.repository, world.writer);
    await deliver(request);
    const fleet = await host();
    const job = await fleet.job(request.buildId);
    const before = (await coordinatorJob(request.buildId))!.lease_until!;
    await new Promise((resolve) => setTimeout(resolve, 5));
    fleet.heartbeat(job, { ...job, buildId: "no-such-build" });
    const cancel = await fleet.next("cancel");
    expect(cancel).toMatchObject({ buildId: "no-such-build", attempt: job.attempt });
    expect((await coordinatorJob(request.buildId))!.lease_until!).toBeGreaterThan(before);
  });

  it("a silent host loses its lease: the job is retried on another host and completes", async () => {
    const world = await buildWorld();
    const request = buildRequest(world.repository, world.writer);
    await deliver(request);
    const lost = await host();
    const first = await lost.job(request.buildId);
    lost.phase(first, "building");
    const standby = await host();

    await silenceHost(lost.hostId);
    expect(await runDurableObjectAlarm(coordinator())).toBe(true);
    // The silent host is disconnected, and the job goes to the other one as attempt 2.
    expect((await lost.closedWith()).code).toBe(4000);
    const second = await standby.job(request.buildId);
    expect(second.attempt).toBe(2);
    expect(second.token).not.toBe(first.token);
    expect(await coordinatorJob(request.buildId)).toMatchObject({ attempt: 2, lost: 1 });

    standby.phase(second, "building");
    standby.succeed(second);
    await eventually(async () =>
      expect(await buildRow(request.buildId)).toMatchObject({
        phase: "complete",
        attempts: 2,
        host: standby.hostId,
      }),
    );
    const state = await env.BUILD.getByName(request.buildId).state();
    expect(state!.phases.map((p) => `${p.phase}@${p.attempt}`)).toEqual([
      "queued@0",
      "waiting@1",
      "building@1",
      "queued@1",
      "waiting@2",
      "building@2",
      "complete@2",
    ]);
  });

  it(`fails the build after ${MAX_BUILD_ATTEMPTS} lost attempts, saying why`, async () => {
    const world = await buildWorld();
    const request = buildRequest(world.repository, world.writer);
    await deliver(request);
    for (let attempt = 1; attempt <= MAX_BUILD_ATTEMPTS; attempt++) {
      const fleet = await host();
      const job = await fleet.job(request.buildId);
      expect(job.attempt).toBe(attempt);
      await silenceHost(fleet.hostId);
      await runDurableObjectAlarm(coordinator());
      await fleet.closedWith();
    }
    await eventually(async () =>
      expect(await buildRow(request.buildId)).toMatchObject({
        phase: "error",
        attempts: MAX_BUILD_ATTEMPTS,
        error: expect.stringMatching(
          new RegExp(
            `^gave up after ${MAX_BUILD_ATTEMPTS} attempts lost their fleet host; last: fleet host .* stopped heartbeating`,
          ),
        ),
      }),
    );
    expect(await coordinatorJob(request.buildId)).toBeUndefined();
    // A new host gets nothing.
    const late = await host();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(late.received.filter((m) => m.type === "job")).toEqual([]);
  });

  it("ignores every message of a stale attempt, and tells its host to stop", async () => {
    const world = await buildWorld();
    const request = buildRequest(world.repository, world.writer);
    await deliver(request);
    const slow = await host();
    const first = await slow.job(request.buildId);
    const fast = await host();
    // The lease lapses while the slow host still talks (it never listed the job as running).
    await runInDurableObject(coordinator(), (_o, state) => {
      state.storage.sql.exec("UPDATE jobs SET lease_until = 0 WHERE build_id = ?", request.buildId);
    });
    await runDurableObjectAlarm(coordinator());
    expect(await slow.next("cancel")).toMatchObject({ buildId: request.buildId, attempt: 1 });
    const second = await fast.job(request.buildId);
    const watcher = await Watcher.open(world.repository, request.buildId, bearerOf(world.reader));

    slow.log(first, "stale line");
    slow.phase(first, "pushing");
    slow.succeed(first, `sha256:${"66".repeat(32)}`);
    fast.log(second, "fresh line");
    fast.succeed(second);
    await watcher.next("end");
    expect(watcher.texts()).toContain("fresh line");
    expect(watcher.texts()).not.toContain("stale line");
    const state = await env.BUILD.getByName(request.buildId).state();
    expect(state).toMatchObject({
      phase: "complete",
      attempt: 2,
      digest: `sha256:${"ab".repeat(32)}`,
    });
    expect(state!.phases.some((p) => p.phase === "pushing")).toBe(false);
  });

  it("a released job goes to another host without counting as lost; the releasing host gets no more", async () => {
    const world = await buildWorld();
    const request = buildRequest(world.repository, world.writer);
    await deliver(request);
    const leaving = await host({ concurrency: 2 });
    const first = await leaving.job(request.buildId);
    leaving.send({
      type: "release",
      buildId: first.buildId,
      attempt: first.attempt,
      reason: "shutting down",
    });
    const other = await host();
    const second = await other.job(request.buildId);
    expect(second.attempt).toBe(2);
    expect(await coordinatorJob(request.buildId)).toMatchObject({ lost: 0, attempt: 2 });
    const next = buildRequest(world.repository, world.writer);
    await deliver(next);
    other.succeed(second);
    // The draining host has a free slot but is skipped; the other host gets the next build.
    expect((await other.job(next.buildId)).attempt).toBe(1);
    expect(leaving.received.filter((m) => m.type === "job")).toEqual([]);
  });

  it("a host that reconnects under the same id keeps its lease", async () => {
    const world = await buildWorld();
    const request = buildRequest(world.repository, world.writer);
    await deliver(request);
    const before = await host({ hostId: "reconnecting-host" });
    const job = await before.job(request.buildId);
    const after = await host({ hostId: "reconnecting-host" });
    expect((await before.closedWith()).code).toBe(4001);
    after.heartbeat(job);
    after.succeed(job);
    await eventually(async () =>
      expect(await buildRow(request.buildId)).toMatchObject({ phase: "complete", attempts: 1 }),
    );
  });

  it("stops and fails an attempt that runs past the build timeout", async () => {
    const world = await buildWorld();
    const request = buildRequest(world.repository, world.writer);
    await deliver(request);
    const fleet = await host();
    const job = await fleet.job(request.buildId);
    await runInDurableObject(coordinator(), (_o, state) => {
      state.storage.sql.exec("UPDATE jobs SET deadline = 0 WHERE build_id = ?", request.buildId);
    });
    await runDurableObjectAlarm(coordinator());
    expect(await fleet.next("cancel")).toMatchObject({ buildId: job.buildId, attempt: 1 });
    await eventually(async () =>
      expect(await buildRow(request.buildId)).toMatchObject({
        phase: "error",
        error: expect.stringMatching(/^timed out/),
      }),
    );
  });
});

describe("the host protocol", () => {
  it("answers malformed or premature messages with an error and changes nothing", async () => {
    const res = await connectFleet(BOOTSTRAP_FLEET_CREDENTIAL);
    const ws = res.webSocket!;
    ws.accept();
    const errors: string[] = [];
    ws.addEventListener("message", (event) => {
      const message = JSON.parse(event.data as string);
      if (message.type === "error") errors.push(message.message);
    });
    ws.send("not json");
    ws.send(JSON.stringify({ type: "heartbeat", running: [] }));
    ws.send(
      JSON.stringify({
        type: "hello",
        hostId: "../bad",
        driver: "x",
        concurrency: 1,
        version: "1",
      }),
    );
    ws.send(JSON.stringify({ type: "teleport" }));
    await eventually(() => expect(errors).toHaveLength(4));
    expect(errors).toEqual([
      "messages are JSON text",
      "say hello first",
      expect.stringMatching(/^hello.hostId/),
      'unknown message type "teleport"',
    ]);
    ws.close(1000);
  });
});

describe("hibernation", () => {
  it("knows its hosts and watchers again after being evicted", async () => {
    const world = await buildWorld();
    const request = buildRequest(world.repository, world.writer);
    await deliver(request);
    const fleet = await host();
    const job = await fleet.job(request.buildId);
    const watcher = await Watcher.open(world.repository, request.buildId, bearerOf(world.reader));
    await watcher.next("phase", (m) => m.phase === "waiting");

    // Both objects leave memory; their sockets hibernate with their attachments.
    await evictDurableObject(coordinator());
    await evictDurableObject(env.BUILD.getByName(request.buildId));

    fleet.log(job, "after hibernation");
    fleet.succeed(job);
    await eventually(() => expect(watcher.texts()).toContain("after hibernation"));
    expect(await watcher.next("end")).toMatchObject({ phase: "complete" });
    // The host's slot is free again: the next build goes to it.
    const next = buildRequest(world.repository, world.writer);
    await deliver(next);
    expect((await fleet.job(next.buildId)).attempt).toBe(1);
  });
});
