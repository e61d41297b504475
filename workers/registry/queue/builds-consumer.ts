// The `builds` queue consumer: records each BuildRequest (the D1 row and the build's BuildObject,
// both idempotent by build id) and hands it to the BuildCoordinator, which pushes it to a fleet
// host. Messages are acked one by one: a redelivery repeats only harmless steps, and one bad
// message never holds back the others.
//
// A request that fails its checks is recorded as failed with the reason when its id and
// repository are sound (so whoever asked sees why), and dropped with a log line otherwise.
import { isFinalPhase } from "../../../schema/builds.ts";
import type { Env } from "../env.ts";
import {
  buildObjects,
  checkBuildRequest,
  recordBuild,
  repositoryExists,
} from "../services/builds.ts";
import { retryDelaySeconds } from "./consumer.ts";

export async function handleBuildBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    try {
      await recordAndDispatch(env, message.body, message.id);
      message.ack();
    } catch (error) {
      console.error(`builds: message ${message.id} not recorded`, error);
      message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    }
  }
}

async function recordAndDispatch(env: Env, body: unknown, messageId: string): Promise<void> {
  const checked = checkBuildRequest(body);
  if (!checked.ok && !checked.request) {
    console.error(`builds: dropping message ${messageId}: ${checked.problem}`);
    return;
  }
  const request = checked.request!;
  if (!(await repositoryExists(env.DB, request.repository))) {
    console.error(`builds: dropping build ${request.buildId}: no repository ${request.repository}`);
    return;
  }
  const objects = buildObjects(env);
  const build = objects.build(request.buildId);
  // Independent writes, both idempotent: D1's index row and the build's own record.
  const [, state] = await Promise.all([recordBuild(env.DB, request), build.create(request)]);
  if (!checked.ok) {
    await build.finish({ kind: "failed", error: `invalid build request: ${checked.problem}` });
    return;
  }
  // Cancelled before it got here: nothing to dispatch.
  if (isFinalPhase(state.phase)) return;
  await objects.coordinator().enqueue(request);
}
