// The fleet host's protocol client against a real WebSocket server on loopback: authentication,
// hello and heartbeats, message checking, reconnecting with backoff, and nothing final lost while
// disconnected.
import { afterEach, describe, expect, it } from "vitest";

import type { FleetCoordinatorMessage, FleetHostMessage } from "../../schema/builds.ts";
import { type CoordinatorDouble, startCoordinatorDouble } from "../testing/coordinator-double.ts";
import {
  backoffDelay,
  FleetConnection,
  fleetSocketUrl,
  parseCoordinatorMessage,
} from "./connection.ts";

const CREDENTIAL = "erf_test-credential-0123456789";

let coordinator: CoordinatorDouble | undefined;
let connection: FleetConnection | undefined;

afterEach(async () => {
  await connection?.close(200);
  await coordinator?.stop();
  connection = undefined;
  coordinator = undefined;
});

function connect(
  url: URL,
  credential: string,
  received: FleetCoordinatorMessage[] = [],
  running: { buildId: string; attempt: number }[] = [],
): FleetConnection {
  connection = new FleetConnection({
    registryUrl: url,
    credential,
    hello: () => ({
      type: "hello",
      hostId: "host-a",
      driver: "namespace",
      concurrency: 2,
      version: "test",
    }),
    running: () => running,
    onMessage: (message) => received.push(message),
    log: () => {},
    initialBackoffMs: 20,
    maxBackoffMs: 100,
  });
  connection.start();
  return connection;
}

const isType =
  <K extends FleetHostMessage["type"]>(type: K) =>
  (message: FleetHostMessage): message is Extract<FleetHostMessage, { type: K }> =>
    message.type === type;

describe("fleet connection", () => {
  it("connects with the credential as a bearer token, says hello, then heartbeats", async () => {
    coordinator = await startCoordinatorDouble({ credential: CREDENTIAL, heartbeatMs: 50 });
    connect(coordinator.url, CREDENTIAL, [], [{ buildId: "b1", attempt: 2 }]);
    const first = await coordinator.waitForConnection(1);
    expect(first.headers.authorization).toBe(`Bearer ${CREDENTIAL}`);
    const hello = await coordinator.waitFor(isType("hello"));
    expect(hello).toEqual({
      type: "hello",
      hostId: "host-a",
      driver: "namespace",
      concurrency: 2,
      version: "test",
    });
    expect(first.messages[0]?.type).toBe("hello");
    // The first heartbeat goes at once after the welcome, the next one a heartbeat later.
    await coordinator.waitFor(
      (m) =>
        m.type === "heartbeat" &&
        coordinator!.messages.filter((x) => x.type === "heartbeat").length >= 2,
    );
    const heartbeat = coordinator.messages.find(isType("heartbeat"));
    expect(heartbeat?.running).toEqual([{ buildId: "b1", attempt: 2 }]);
  });

  it("is refused with a wrong credential and keeps retrying with backoff", async () => {
    coordinator = await startCoordinatorDouble({ credential: CREDENTIAL });
    const fleet = connect(coordinator.url, "erf_wrong");
    const started = Date.now();
    while (coordinator.refused < 3 && Date.now() - started < 5_000)
      await new Promise((r) => setTimeout(r, 10));
    expect(coordinator.refused).toBeGreaterThanOrEqual(3);
    expect(coordinator.connections).toHaveLength(0);
    expect(fleet.ready).toBe(false);
  });

  it("passes jobs and cancels on, and ignores malformed messages", async () => {
    coordinator = await startCoordinatorDouble({ credential: CREDENTIAL });
    const received: FleetCoordinatorMessage[] = [];
    const fleet = connect(coordinator.url, CREDENTIAL, received);
    expect(await fleet.waitReady(5_000)).toBe(true);
    const host = coordinator.connections[0]!;
    host.send({ type: "cancel", buildId: "b1", attempt: 1, reason: "by test" });
    host.send({ type: "job" } as unknown as FleetCoordinatorMessage);
    host.send({ type: "error", message: "hello?" });
    const started = Date.now();
    while (received.length < 2 && Date.now() - started < 5_000)
      await new Promise((r) => setTimeout(r, 10));
    expect(received).toEqual([
      { type: "cancel", buildId: "b1", attempt: 1, reason: "by test" },
      { type: "error", message: "hello?" },
    ]);
  });

  it("reconnects after the coordinator drops it and sends what was queued meanwhile", async () => {
    coordinator = await startCoordinatorDouble({ credential: CREDENTIAL });
    const fleet = connect(coordinator.url, CREDENTIAL);
    expect(await fleet.waitReady(5_000)).toBe(true);
    coordinator.connections[0]!.close(1012);
    // Sent while disconnected: kept, and delivered after the next hello.
    const waitClosed = Date.now();
    while (fleet.ready && Date.now() - waitClosed < 5_000)
      await new Promise((r) => setTimeout(r, 5));
    fleet.send({ type: "phase", buildId: "b1", attempt: 1, phase: "building" });
    fleet.send({ type: "result", buildId: "b1", attempt: 1, ok: false, error: "boom" });
    fleet.send({ type: "heartbeat", running: [] });
    const second = await coordinator.waitForConnection(2);
    await coordinator.waitFor((m) => m.type === "result");
    expect(second.messages.map((m) => m.type).slice(0, 3)).toEqual(["hello", "phase", "result"]);
  });

  it("heartbeats once per interval after a second hello is welcomed, and stops on close", async () => {
    coordinator = await startCoordinatorDouble({ credential: CREDENTIAL, heartbeatMs: 100 });
    const fleet = connect(coordinator.url, CREDENTIAL);
    expect(await fleet.waitReady(5_000)).toBe(true);
    fleet.sayHello();
    const host = coordinator.connections[0]!;
    await coordinator.waitFor(() => host.messages.filter((m) => m.type === "hello").length === 2);
    const before = host.messages.filter((m) => m.type === "heartbeat").length;
    await new Promise((resolve) => setTimeout(resolve, 550));
    const during = host.messages.filter((m) => m.type === "heartbeat").length - before;
    // One interval gives 5 or 6 (plus the one sent on welcome); two would give about 11.
    expect(during).toBeGreaterThanOrEqual(4);
    expect(during).toBeLessThanOrEqual(7);
    await fleet.close(200);
    const closedAt = host.messages.length;
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(host.messages.length).toBe(closedAt);
  });

  it("reads only well-formed coordinator messages", () => {
    expect(parseCoordinatorMessage("{")).toBeUndefined();
    expect(
      parseCoordinatorMessage(JSON.stringify({ type: "welcome", heartbeatMs: 0, leaseMs: 1 })),
    ).toBeUndefined();
    expect(
      parseCoordinatorMessage(
        JSON.stringify({ type: "cancel", buildId: "b", attempt: "1", reason: "" }),
      ),
    ).toBeUndefined();
    expect(parseCoordinatorMessage(JSON.stringify({ type: "surprise" }))).toBeUndefined();
    const job = {
      buildId: "b",
      attempt: 1,
      repository: "team/app",
      source: {
        kind: "git",
        cloneUrl: "git://x/y",
        ref: "refs/heads/main",
        commit: "a".repeat(40),
      },
      dockerfilePath: "Dockerfile",
      contextDir: ".",
      tags: ["latest"],
      token: "t",
      tokenExpiresAt: 1,
    };
    expect(parseCoordinatorMessage(JSON.stringify({ type: "job", job }))).toEqual({
      type: "job",
      job,
    });
    expect(
      parseCoordinatorMessage(JSON.stringify({ type: "job", job: { ...job, tags: [1] } })),
    ).toBeUndefined();
  });

  it("backs off exponentially with jitter, capped", () => {
    expect(backoffDelay(0, 500, 30_000, () => 0)).toBe(250);
    expect(backoffDelay(0, 500, 30_000, () => 1)).toBe(500);
    expect(backoffDelay(3, 500, 30_000, () => 1)).toBe(4_000);
    expect(backoffDelay(20, 500, 30_000, () => 1)).toBe(30_000);
    expect(backoffDelay(20, 500, 30_000, () => 0)).toBe(15_000);
  });

  it("maps the registry URL to the fleet socket URL", () => {
    expect(fleetSocketUrl(new URL("http://127.0.0.1:8787")).href).toBe(
      "ws://127.0.0.1:8787/fleet/v1/connect",
    );
    expect(fleetSocketUrl(new URL("https://registry.example/")).href).toBe(
      "wss://registry.example/fleet/v1/connect",
    );
  });
});
