// The fleet's own share of a build's latency: from a job received over the fleet WebSocket to the
// build running (`building`) and to the image pushed (`result`), with the namespace driver.
//
//   node build-fleet/bench/job-latency.ts [--runs N]      (`npx node …` takes the project's Node 22)
//
// Real pieces except the coordinator: the registry as `npm start` runs it (its own fleet host
// off) receives the push, a git daemon on loopback serves the source, and a stand-in coordinator
// (build-fleet/testing) sends each job, so no queue or dispatch time is counted; the end to end
// numbers from a webhook are scripts/bench/build-latency.ts. The job's token is an admin registry
// token (a build token needs the coordinator), hence a `FROM scratch` Dockerfile: the base image
// pull with its token exchange is measured end to end instead. One warm-up run is not counted.
import { execFile } from "node:child_process";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";

import { fmt, renderTable, summarize } from "../../scripts/bench/stats.ts";
import { startGitServer } from "../../test/support/git-server.ts";
import { startRegistry } from "../../test/support/registry-process.ts";
import { NamespaceDriver } from "../drivers/namespace.ts";
import { FleetDaemon } from "../fleet/daemon.ts";
import { RegistryClient } from "../fleet/registry-client.ts";
import { startCoordinatorDouble } from "../testing/coordinator-double.ts";

const run = promisify(execFile);
const { values } = parseArgs({ options: { runs: { type: "string", default: "10" } } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error("--runs must be a positive integer");

const driver = new NamespaceDriver();
const availability = await driver.available();
if (!availability.ok) {
  console.error(`the namespace driver is not available here: ${availability.reason}`);
  process.exit(1);
}

const registry = await startRegistry({ env: { REGISTRY_FLEET: "off" } });
const git = await startGitServer();
const credential = "erf_bench";
const coordinator = await startCoordinatorDouble({ credential });
const workDir = await mkdtemp(join(tmpdir(), "fleet-bench-"));
await chmod(workDir, 0o711);
const env = { PATH: process.env.PATH, LANG: "C.UTF-8" };
const daemon = new FleetDaemon({
  registry: new RegistryClient({ url: new URL(registry.url), env }),
  coordinatorUrl: coordinator.url,
  credential,
  hostId: "bench",
  concurrency: 1,
  driver,
  workDir,
  env,
  allowLocalGit: false,
  jobTimeoutMs: 600_000,
  log: () => {},
});

try {
  const basic = `Basic ${btoa(`${registry.adminUser}:${registry.adminPassword}`)}`;
  const created = await fetch(`${registry.url}/api/v1/repositories`, {
    method: "POST",
    headers: { Authorization: basic, "Content-Type": "application/json" },
    body: JSON.stringify({ name: "admin/bench" }),
  });
  if (!created.ok) throw new Error(`cannot create admin/bench: ${created.status}`);
  const tokenResponse = await fetch(
    `${registry.url}/v2/auth?scope=repository:admin/bench:pull,push`,
    { headers: { Authorization: basic } },
  );
  const { token } = (await tokenResponse.json()) as { token: string };

  const repo = await git.createRepository("bench");
  const busybox = await readFile("/bin/busybox");
  daemon.start();
  const host = await coordinator.waitForConnection(1);
  await coordinator.waitFor((m) => m.type === "hello");

  const rows: { building: number; pushing: number; pushed: number }[] = [];
  for (let i = 0; i <= runs; i++) {
    const commit = await repo.commit({
      busybox,
      Dockerfile: `FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "sh", "-c", "echo run ${i} > /ran"]\n`,
    });
    const buildId = `bench-${i}`;
    const sent = Date.now();
    host.send({
      type: "job",
      job: {
        buildId,
        attempt: 1,
        repository: "admin/bench",
        source: { kind: "git", cloneUrl: git.url("bench"), ref: "refs/heads/main", commit },
        dockerfilePath: "Dockerfile",
        contextDir: ".",
        tags: [`run-${i}`],
        token,
        tokenExpiresAt: Date.now() + 300_000,
      },
    });
    const result = await coordinator.waitFor(
      (m) => m.type === "result" && m.buildId === buildId,
      120_000,
    );
    if (result.type !== "result" || !result.ok) {
      throw new Error(`build ${i} failed: ${JSON.stringify(result)}`);
    }
    const phaseAt = (phase: string) => {
      const message = coordinator.messages.find(
        (m) => m.type === "phase" && m.buildId === buildId && m.phase === phase,
      );
      return coordinator.arrivedAt(message!)! - sent;
    };
    if (i === 0) continue; // warm-up
    rows.push({
      building: phaseAt("building"),
      pushing: phaseAt("pushing"),
      pushed: coordinator.arrivedAt(result)! - sent,
    });
  }

  const line = (label: string, pick: (row: (typeof rows)[number]) => number) => {
    const s = summarize(rows.map(pick))!;
    return [label, fmt(s.median), fmt(s.min), fmt(s.max)];
  };
  console.log(
    `\nnamespace driver, ${runs} builds (FROM scratch + COPY + RUN), ms after the job was sent:\n`,
  );
  console.log(
    renderTable(
      ["point", "median", "min", "max"],
      [
        line("running (building)", (r) => r.building),
        line("build done (pushing)", (r) => r.pushing),
        line("pushed (result)", (r) => r.pushed),
      ],
    ),
  );
  const { stdout } = await run("nproc");
  console.log(`\n(${stdout.trim()} cores, shared; registry on workerd at ${registry.url})`);
} finally {
  await daemon.shutdown(0);
  await coordinator.stop();
  await git.stop();
  await registry.stop();
  await rm(workDir, { recursive: true, force: true });
}
