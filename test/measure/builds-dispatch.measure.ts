// Measures build dispatch on workerd: a recorded build to its job on a connected fleet host (the
// queue consumer's whole path), log lines from a host to a live watcher, and what the revocation
// check adds to a /v2 request made with a build token. Run with
// `npx vitest run --config vitest.measure.config.ts test/measure/builds-dispatch.measure.ts`.
// It reports figures and asserts only that the runs happened.
import { env } from "cloudflare:test";
import { expect, it } from "vitest";
import { registryAuth } from "../../workers/registry/auth/registry-auth.ts";
import { issueRegistryToken } from "../../workers/registry/auth/registry-tokens.ts";
import {
  bearerOf,
  buildRequest,
  buildWorld,
  deliver,
  FakeHost,
  resetCoordinator,
  Watcher,
} from "../integration/builds-helpers.ts";

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

it("reports dispatch latency, log throughput and the build-token check", async () => {
  await resetCoordinator();
  const world = await buildWorld();
  const host = await FakeHost.connect({ concurrency: 1 });

  const latencies: number[] = [];
  for (let i = 0; i < 30; i++) {
    const request = buildRequest(world.repository, world.writer);
    const started = performance.now();
    await deliver(request);
    const job = await host.job(request.buildId);
    latencies.push(performance.now() - started);
    host.succeed(job);
  }
  console.log(
    `queue message → job on the host: median ${median(latencies).toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms (30 builds)`,
  );

  const request = buildRequest(world.repository, world.writer);
  await deliver(request);
  const job = await host.job(request.buildId);
  const watcher = await Watcher.open(world.repository, request.buildId, bearerOf(world.reader));
  const MESSAGES = 200;
  const PER_MESSAGE = 50;
  const started = performance.now();
  for (let m = 0; m < MESSAGES; m++) {
    host.log(
      job,
      ...Array.from({ length: PER_MESSAGE }, (_, i) => `message ${m} line ${i} ${"x".repeat(60)}`),
    );
  }
  host.succeed(job);
  await watcher.next("end", () => true, 60_000);
  const seconds = (performance.now() - started) / 1000;
  const lines = watcher.texts().filter((t) => t.startsWith("message ")).length;
  console.log(
    `log lines host → watcher: ${lines} lines in ${seconds.toFixed(2)} s = ${(lines / seconds).toFixed(0)} lines/s`,
  );
  expect(lines).toBe(MESSAGES * PER_MESSAGE);

  // A build token against an ordinary token of the same access: the difference is the check.
  const running = buildRequest(world.repository, world.writer);
  await deliver(running);
  const live = await host.job(running.buildId);
  const { token: ordinary } = await issueRegistryToken(env.TOKEN_SIGNING_KEY, "edge-registry", {
    sub: "alice",
    access: [{ type: "repository", name: world.repository, actions: ["pull", "push"] }],
    principal: { kind: "user", id: world.writer.id, name: world.writer.name },
  });
  const ROUNDS = 500;
  const time = async (token: string) => {
    const begin = performance.now();
    for (let i = 0; i < ROUNDS; i++) {
      const auth = await registryAuth(
        new Request(`http://registry.test/v2/${world.repository}/manifests/latest`, {
          headers: { Authorization: `Bearer ${token}` },
        }),
        env,
      );
      await auth.require(world.repository, "push");
    }
    return ((performance.now() - begin) * 1000) / ROUNDS;
  };
  const plain = await time(ordinary);
  const build = await time(live.token);
  console.log(
    `authorizing a /v2 request: ordinary token ${plain.toFixed(1)} µs, build token ${build.toFixed(1)} µs (+${(build - plain).toFixed(1)} µs: one BuildObject call)`,
  );
  host.close();
  await resetCoordinator();
});
