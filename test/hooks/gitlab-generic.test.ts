// GitLab (X-Gitlab-Token, Idempotency-Key) and generic (Stripe-like X-Registry-Signature with a
// signed timestamp, X-Registry-Delivery) webhooks on the hooks Worker.
import { describe, expect, it } from "vitest";
import { MAX_SIGNATURE_AGE_SECONDS, signGeneric } from "../../workers/hooks/signatures.ts";
import {
  auditedFor,
  COMMIT,
  deliveriesOf,
  expectNoBuildQueued,
  generic,
  genericPush,
  gitlab,
  gitlabPush,
  makeTrigger,
  queuedBuild,
  ZERO,
} from "./fixtures.ts";

describe("GitLab hooks", () => {
  it("queues a push whose token is the secret", async () => {
    const trigger = await makeTrigger({ provider: "gitlab" });
    const res = await gitlab(trigger, gitlabPush("refs/heads/main"));
    expect(res.status).toBe(202);
    const { buildId } = (await res.json()) as { buildId: string };
    const request = await queuedBuild(buildId);
    expect(request).toMatchObject({
      triggerId: trigger.id,
      source: { kind: "git", cloneUrl: trigger.cloneUrl, ref: "refs/heads/main", commit: COMMIT },
      tags: ["latest", "main"],
    });
  });

  it("builds a Tag Push Hook with {tag}", async () => {
    const trigger = await makeTrigger({ provider: "gitlab" });
    const res = await gitlab(trigger, gitlabPush("refs/tags/v2.0", { tag: true }), {
      event: "Tag Push Hook",
    });
    const { buildId } = (await res.json()) as { buildId: string };
    expect((await queuedBuild(buildId)).tags).toEqual(["v2.0"]);
  });

  it("refuses a wrong or missing token and audits it", async () => {
    const trigger = await makeTrigger({ provider: "gitlab" });
    const body = gitlabPush("refs/heads/main");
    const wrong = await gitlab(trigger, body, { token: `${trigger.secret}x` });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ reason: "forged" });
    const missing = await gitlab(trigger, body, { token: null });
    expect(missing.status).toBe(401);
    expect(await missing.json()).toMatchObject({ reason: "missing-signature" });
    const audits = await auditedFor(trigger.id, "hook.rejected", 2);
    expect(audits.map((a) => a.metadata?.reason).sort()).toEqual(["forged", "missing-signature"]);
    expect(await deliveriesOf(trigger.id)).toEqual([]);
    await expectNoBuildQueued(trigger, (b) => gitlab(trigger, b), body);
  });

  it("refuses a replayed Idempotency-Key and ignores branch deletions", async () => {
    const trigger = await makeTrigger({ provider: "gitlab" });
    const delivery = crypto.randomUUID();
    const first = await gitlab(trigger, gitlabPush("refs/heads/main"), { delivery });
    expect(first.status).toBe(202);
    const replay = await gitlab(trigger, gitlabPush("refs/heads/main"), { delivery });
    expect(replay.status).toBe(409);
    const deleted = await gitlab(trigger, gitlabPush("refs/heads/old", { after: ZERO }));
    expect(await deleted.json()).toEqual({
      status: "ignored",
      reason: "ignored: refs/heads/old was deleted",
    });
    const other = await gitlab(trigger, "{}", { event: "Merge Request Hook" });
    expect(await other.json()).toMatchObject({ status: "ignored" });
  });
});

describe("generic hooks", () => {
  it("queues a signed push", async () => {
    const trigger = await makeTrigger({ provider: "generic", defaultBranch: "main" });
    const res = await generic(trigger, genericPush("refs/heads/main"));
    expect(res.status).toBe(202);
    const { buildId } = (await res.json()) as { buildId: string };
    expect(await queuedBuild(buildId)).toMatchObject({
      source: { kind: "git", cloneUrl: trigger.cloneUrl, ref: "refs/heads/main", commit: COMMIT },
      tags: ["latest", "main"],
    });
  });

  it("takes the default branch from the payload when it names one", async () => {
    const trigger = await makeTrigger({ provider: "generic", tagTemplates: ["latest@default"] });
    const withDefault = await generic(
      trigger,
      genericPush("refs/heads/trunk", COMMIT, { defaultBranch: "trunk" }),
    );
    expect(withDefault.status).toBe(202);
    // Without it (and none on the trigger) `@default` cannot apply.
    const without = await generic(trigger, genericPush("refs/heads/trunk"));
    expect(await without.json()).toMatchObject({ reason: "ignored: no tag template applies" });
  });

  it("refuses a stale or future timestamp, audited as stale", async () => {
    const trigger = await makeTrigger({ provider: "generic" });
    const now = Math.floor(Date.now() / 1000);
    const body = genericPush("refs/heads/main");
    const old = await generic(trigger, body, { at: now - MAX_SIGNATURE_AGE_SECONDS - 5 });
    expect(old.status).toBe(401);
    expect(await old.json()).toMatchObject({ reason: "stale" });
    const ahead = await generic(trigger, body, { at: now + MAX_SIGNATURE_AGE_SECONDS + 5 });
    expect(ahead.status).toBe(401);
    // Just inside the window is fine.
    const recent = await generic(trigger, body, { at: now - MAX_SIGNATURE_AGE_SECONDS + 30 });
    expect(recent.status).toBe(202);
    const audits = await auditedFor(trigger.id, "hook.rejected", 2);
    expect(audits.map((a) => a.metadata?.reason)).toEqual(["stale", "stale"]);
  });

  it("refuses a forged signature, a re-signed timestamp and a malformed header", async () => {
    const trigger = await makeTrigger({ provider: "generic" });
    const body = genericPush("refs/heads/main");
    const now = Math.floor(Date.now() / 1000);
    const forged = await generic(trigger, body, { secret: "erh_guess" });
    expect(forged.status).toBe(401);
    // An old signature with a fresh `t=` does not verify: the timestamp is signed.
    const oldSignature = await signGeneric(trigger.secret, body, now - 3600);
    const moved = oldSignature.replace(/^t=\d+/, `t=${now}`);
    expect((await generic(trigger, body, { signature: moved })).status).toBe(401);
    expect((await generic(trigger, body, { signature: "v1=abc" })).status).toBe(401);
    const audits = await auditedFor(trigger.id, "hook.rejected", 3);
    expect(audits.every((a) => a.metadata?.reason === "forged")).toBe(true);
    await expectNoBuildQueued(trigger, (b) => generic(trigger, b), body);
  });

  it("accepts any one valid v1 entry, for a sender rotating secrets", async () => {
    const trigger = await makeTrigger({ provider: "generic" });
    const body = genericPush("refs/heads/main");
    const now = Math.floor(Date.now() / 1000);
    const good = await signGeneric(trigger.secret, body, now);
    const bad = await signGeneric("erh_old-secret", body, now);
    const both = `${bad},${good.split(",")[1]}`;
    expect((await generic(trigger, body, { signature: both })).status).toBe(202);
  });

  it("refuses a replayed delivery and a payload without a commit", async () => {
    const trigger = await makeTrigger({ provider: "generic" });
    const delivery = "ci-run-42";
    expect((await generic(trigger, genericPush("refs/heads/main"), { delivery })).status).toBe(202);
    const replay = await generic(trigger, genericPush("refs/heads/main"), { delivery });
    expect(replay.status).toBe(409);
    const [audit] = await auditedFor(trigger.id, "hook.rejected");
    expect(audit!.metadata).toMatchObject({ reason: "replayed", delivery });
    const noCommit = await generic(trigger, JSON.stringify({ ref: "refs/heads/main" }));
    expect(noCommit.status).toBe(400);
    expect(await noCommit.json()).toMatchObject({ error: "payload.commit is missing" });
    const shortRef = await generic(trigger, genericPush("main"));
    expect(shortRef.status).toBe(400);
  });
});
