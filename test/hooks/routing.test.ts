// What the hooks Worker answers before any signature is checked: unknown triggers (and triggers
// of another provider) are one indistinguishable 404, oversized bodies 413, other methods 405;
// and how long a delivery id is remembered.
import { createExecutionContext, SELF, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { handleHook, MAX_HOOK_BODY_BYTES } from "../../workers/hooks/hook-handler.ts";
import { DELIVERY_RETENTION_MS, sweepExpiredDeliveries } from "../../workers/hooks/hook-store.ts";
import { signGeneric, signGithub } from "../../workers/hooks/signatures.ts";
import {
  deliveriesOf,
  expectNoBuildQueued,
  generic,
  genericPush,
  github,
  githubPush,
  gitlab,
  hooksEnv,
  hookUrl,
  makeTrigger,
  post,
  queuedBuild,
} from "./fixtures.ts";

async function signedGithubTo(url: string, secret: string, body: string): Promise<Response> {
  return post(url, body, {
    "X-GitHub-Event": "push",
    "X-GitHub-Delivery": crypto.randomUUID(),
    "X-Hub-Signature-256": await signGithub(secret, body),
  });
}

describe("hook routing", () => {
  it("answers an unknown trigger, another provider's trigger and a bad id with the same 404", async () => {
    const gitlabTrigger = await makeTrigger({ provider: "gitlab" });
    const body = githubPush("refs/heads/main");
    const answers = await Promise.all([
      // A correctly signed GitHub hook sent to a GitLab trigger's id.
      signedGithubTo(hookUrl("github", gitlabTrigger.id), gitlabTrigger.secret, body),
      signedGithubTo(hookUrl("github", crypto.randomUUID()), gitlabTrigger.secret, body),
      signedGithubTo(hookUrl("github", "not-a-trigger-id"), gitlabTrigger.secret, body),
      signedGithubTo(hookUrl("bitbucket", gitlabTrigger.id), gitlabTrigger.secret, body),
    ]);
    for (const res of answers) {
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ status: 404, error: "no such trigger" });
    }
    expect(await deliveriesOf(gitlabTrigger.id)).toEqual([]);
    await expectNoBuildQueued(
      gitlabTrigger,
      (b) => gitlab(gitlabTrigger, b),
      JSON.stringify({ ref: "refs/heads/main", after: "a".repeat(40), checkout_sha: null }),
    );
  });

  it("forgets a deleted trigger at once", async () => {
    const trigger = await makeTrigger();
    await hooksEnv.DB.prepare("DELETE FROM build_triggers WHERE id = ?").bind(trigger.id).run();
    const res = await github(trigger, githubPush("refs/heads/main"));
    expect(res.status).toBe(404);
  });

  it("refuses a body over the limit, declared or streamed, with 413", async () => {
    const trigger = await makeTrigger();
    const big = "x".repeat(MAX_HOOK_BODY_BYTES + 1);
    const declared = await post(hookUrl("github", trigger.id), big, {
      "X-GitHub-Event": "push",
    });
    expect(declared.status).toBe(413);
    // No Content-Length: cut off while reading.
    const encoder = new TextEncoder();
    const chunked = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 5; i++) controller.enqueue(encoder.encode(big.slice(0, 300_000)));
        controller.close();
      },
    });
    const streamed = await SELF.fetch(hookUrl("github", trigger.id), {
      method: "POST",
      body: chunked,
      headers: { "X-GitHub-Event": "push" },
    });
    expect(streamed.status).toBe(413);
    expect(await deliveriesOf(trigger.id)).toEqual([]);
  });

  it("answers other methods with 405 and other paths with 404", async () => {
    const trigger = await makeTrigger();
    const get = await SELF.fetch(hookUrl("github", trigger.id));
    expect(get.status).toBe(405);
    expect(get.headers.get("Allow")).toBe("POST");
    expect((await SELF.fetch("http://hooks.test/")).status).toBe(404);
    expect((await SELF.fetch("http://hooks.test/hooks/github", { method: "POST" })).status).toBe(
      404,
    );
  });

  it("accepts a delivery id again once its record expired, and sweeps expired records", async () => {
    const trigger = await makeTrigger();
    const delivery = crypto.randomUUID();
    const body = githubPush("refs/heads/main");
    expect((await github(trigger, body, { delivery })).status).toBe(202);
    // Age the record past its retention, as the clock would.
    await hooksEnv.DB.prepare(
      "UPDATE hook_deliveries SET expires_at = expires_at - ? WHERE trigger_id = ?",
    )
      .bind(DELIVERY_RETENTION_MS + 1000, trigger.id)
      .run();
    const again = await github(trigger, body, { delivery });
    expect(again.status).toBe(202);
    const { buildId } = (await again.json()) as { buildId: string };
    await queuedBuild(buildId);
    expect(await deliveriesOf(trigger.id)).toEqual([{ delivery_id: delivery, build_id: buildId }]);

    const stale = await makeTrigger();
    expect((await github(stale, body)).status).toBe(202);
    await hooksEnv.DB.prepare("UPDATE hook_deliveries SET expires_at = 0 WHERE trigger_id = ?")
      .bind(stale.id)
      .run();
    expect(await sweepExpiredDeliveries(hooksEnv.DB, Date.now())).toBeGreaterThanOrEqual(1);
    expect(await deliveriesOf(stale.id)).toEqual([]);
  });

  it("answers 503 when the queue refuses the build, and forgets the delivery so a retry works", async () => {
    const trigger = await makeTrigger({ provider: "generic" });
    const body = genericPush("refs/heads/main");
    const delivery = crypto.randomUUID();
    const signature = await signGeneric(trigger.secret, body, Math.floor(Date.now() / 1000));
    const request = new Request(hookUrl("generic", trigger.id), {
      method: "POST",
      body,
      headers: { "X-Registry-Delivery": delivery, "X-Registry-Signature": signature },
    });
    // The queue is down: the one thing a test cannot make Miniflare's queue do.
    const down: Queue = {
      send: () => Promise.reject(new Error("queue unavailable")),
      sendBatch: () => Promise.reject(new Error("queue unavailable")),
    } as unknown as Queue;
    const ctx = createExecutionContext();
    const res = await handleHook(
      request,
      { ...hooksEnv, BUILDS: down },
      ctx,
      "generic",
      trigger.id,
    );
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(503);
    expect(await deliveriesOf(trigger.id)).toEqual([]);
    // The sender's retry of the same delivery is not a replay.
    const retry = await generic(trigger, body, { delivery });
    expect(retry.status).toBe(202);
  });
});
