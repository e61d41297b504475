// GitHub webhooks end to end on the hooks Worker: X-Hub-Signature-256 over the raw body, the
// X-GitHub-Delivery replay guard, ping, pushes the trigger does not build, and the exact
// BuildRequest that reaches the `builds` queue.
import { describe, expect, it } from "vitest";
import { signGithub } from "../../workers/hooks/signatures.ts";
import {
  auditedFor,
  COMMIT,
  deliveriesOf,
  expectNoBuildQueued,
  github,
  githubPush,
  hookUrl,
  makeTrigger,
  post,
  queuedBuild,
  ZERO,
} from "./fixtures.ts";

describe("GitHub hooks", () => {
  it("queues a build of the pushed commit with the templated tags and answers 202", async () => {
    const trigger = await makeTrigger({
      tagTemplates: ["latest@default", "{branch}", "sha-{sha:7}", "{tag}"],
      dockerfilePath: "docker/Dockerfile",
      contextDir: "src",
    });
    const delivery = crypto.randomUUID();
    const res = await github(trigger, githubPush("refs/heads/main"), { delivery });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { buildId: string; tags: string[]; skipped: unknown[] };
    expect(body).toMatchObject({
      status: "accepted",
      repository: trigger.repository,
      ref: "refs/heads/main",
      commit: COMMIT,
      tags: ["latest", "main", "sha-3f78685"],
    });
    expect(body.skipped).toEqual([
      { template: "{tag}", reason: "{tag} does not apply to refs/heads/main" },
    ]);

    const request = await queuedBuild(body.buildId);
    expect(request).toEqual({
      buildId: body.buildId,
      repository: trigger.repository,
      triggerId: trigger.id,
      source: { kind: "git", cloneUrl: trigger.cloneUrl, ref: "refs/heads/main", commit: COMMIT },
      dockerfilePath: "docker/Dockerfile",
      contextDir: "src",
      tags: ["latest", "main", "sha-3f78685"],
      requestedBy: { kind: "user", name: trigger.owner.name, id: trigger.owner.id },
      requestedAt: expect.any(Number),
    });
    expect(await deliveriesOf(trigger.id)).toEqual([
      { delivery_id: delivery, build_id: body.buildId },
    ]);
    const [audit] = await auditedFor(trigger.id, "build.requested");
    expect(audit).toMatchObject({
      repository: trigger.repository,
      namespace: trigger.owner.name,
      metadata: { build: body.buildId, delivery, commit: COMMIT, source: "github webhook" },
    });
  });

  it("builds a tag push with {tag} and leaves `latest` to the default branch", async () => {
    const trigger = await makeTrigger();
    const res = await github(trigger, githubPush("refs/tags/v1.2.0"));
    expect(res.status).toBe(202);
    const { buildId } = (await res.json()) as { buildId: string };
    expect((await queuedBuild(buildId)).tags).toEqual(["v1.2.0"]);

    const branch = await github(trigger, githubPush("refs/heads/feature/login"));
    const { buildId: branchBuild } = (await branch.json()) as { buildId: string };
    // `/` cannot appear in a tag: {branch} turns it into `-`.
    expect((await queuedBuild(branchBuild)).tags).toEqual(["feature-login"]);
  });

  it("refuses a forged signature, changes nothing and audits it", async () => {
    const trigger = await makeTrigger();
    const res = await github(trigger, githubPush("refs/heads/main"), { secret: "erh_not-it" });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ reason: "forged" });
    expect(await deliveriesOf(trigger.id)).toEqual([]);
    const [audit] = await auditedFor(trigger.id, "hook.rejected");
    expect(audit).toMatchObject({
      actor: { kind: "anonymous" },
      repository: trigger.repository,
      metadata: { provider: "github", reason: "forged" },
    });
    await expectNoBuildQueued(trigger, (b) => github(trigger, b), githubPush("refs/heads/main"));
  });

  it("refuses a body changed after signing, and a signature in the wrong shape", async () => {
    const trigger = await makeTrigger();
    const signedFor = githubPush("refs/heads/main");
    const signature = await signGithub(trigger.secret, signedFor);
    const tampered = await github(trigger, githubPush("refs/heads/evil"), { signature });
    expect(tampered.status).toBe(401);
    const sha1 = await github(trigger, signedFor, { signature: `sha1=${"a".repeat(40)}` });
    expect(sha1.status).toBe(401);
    expect(await auditedFor(trigger.id, "hook.rejected", 2)).toHaveLength(2);
    await expectNoBuildQueued(trigger, (b) => github(trigger, b), signedFor);
  });

  it("refuses a hook without a signature", async () => {
    const trigger = await makeTrigger();
    const body = githubPush("refs/heads/main");
    const res = await github(trigger, body, { signature: "" });
    expect(res.status).toBe(401);
    const missing = await post(hookUrl("github", trigger.id), body, {
      "X-GitHub-Event": "push",
      "X-GitHub-Delivery": crypto.randomUUID(),
    });
    expect(missing.status).toBe(401);
    expect(await missing.json()).toMatchObject({ reason: "missing-signature" });
    await expectNoBuildQueued(trigger, (b) => github(trigger, b), body);
  });

  it("refuses a replayed delivery: one build, the replay audited", async () => {
    const trigger = await makeTrigger();
    const delivery = crypto.randomUUID();
    const body = githubPush("refs/heads/main");
    const first = await github(trigger, body, { delivery });
    expect(first.status).toBe(202);
    const { buildId } = (await first.json()) as { buildId: string };
    const replay = await github(trigger, body, { delivery });
    expect(replay.status).toBe(409);
    expect(await replay.json()).toMatchObject({ reason: "replayed" });
    await queuedBuild(buildId);
    const [audit] = await auditedFor(trigger.id, "hook.rejected");
    expect(audit!.metadata).toMatchObject({ reason: "replayed", delivery });
    expect(await deliveriesOf(trigger.id)).toEqual([{ delivery_id: delivery, build_id: buildId }]);
  });

  it("answers a ping and ignores other events", async () => {
    const trigger = await makeTrigger();
    const ping = await github(trigger, JSON.stringify({ zen: "Keep it simple." }), {
      event: "ping",
    });
    expect(ping.status).toBe(200);
    expect(await ping.json()).toEqual({ status: "pong", trigger: trigger.id });
    const issues = await github(trigger, JSON.stringify({ action: "opened" }), { event: "issues" });
    expect(issues.status).toBe(200);
    expect(await issues.json()).toEqual({
      status: "ignored",
      reason: "ignored: event issues does not build",
    });
    await expectNoBuildQueued(trigger, (b) => github(trigger, b), githubPush("refs/heads/main"));
  });

  it("ignores a branch deletion and a push the ref filter does not admit, saying why", async () => {
    const trigger = await makeTrigger({
      refFilter: { branches: ["main", "release/*"], tags: ["v*"] },
    });
    const deleted = await github(trigger, githubPush("refs/heads/main", { after: ZERO }));
    expect(deleted.status).toBe(200);
    expect(await deleted.json()).toEqual({
      status: "ignored",
      reason: "ignored: refs/heads/main was deleted",
    });
    const other = await github(trigger, githubPush("refs/heads/feature/x"));
    expect(await other.json()).toEqual({
      status: "ignored",
      reason:
        'ignored: ref refs/heads/feature/x does not match the branches filter ["main","release/*"]',
    });
    // `*` stops at `/`: release/1/hotfix is not release/*.
    const deep = await github(trigger, githubPush("refs/heads/release/1/hotfix"));
    expect(((await deep.json()) as { status: string }).status).toBe("ignored");
    const tag = await github(trigger, githubPush("refs/tags/nightly"));
    expect(((await tag.json()) as { reason: string }).reason).toContain("tags filter");
    const release = await github(trigger, githubPush("refs/heads/release/1.0"));
    expect(release.status).toBe(202);
    const { buildId } = (await release.json()) as { buildId: string };
    expect((await queuedBuild(buildId)).tags).toEqual(["release-1.0"]);
  });

  it("ignores a push for which no template gives a valid tag, listing why", async () => {
    const trigger = await makeTrigger({ tagTemplates: ["latest@default", "{tag}"] });
    const res = await github(trigger, githubPush("refs/heads/dev"));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      status: "ignored",
      reason: "ignored: no tag template applies",
      skipped: [
        { template: "latest@default", reason: "refs/heads/dev is not the default branch" },
        { template: "{tag}", reason: "{tag} does not apply to refs/heads/dev" },
      ],
    });
    // A branch name that is no valid tag (leading `.`) is dropped with the reason.
    const dotted = await makeTrigger({ tagTemplates: ["{branch}"] });
    const invalid = await github(dotted, githubPush("refs/heads/.hidden"));
    expect(await invalid.json()).toMatchObject({
      status: "ignored",
      skipped: [{ template: "{branch}", reason: '".hidden" is not a valid tag' }],
    });
  });

  it("ignores pushes of a disabled trigger and into a read-only repository", async () => {
    const disabled = await makeTrigger({ enabled: false });
    const res = await github(disabled, githubPush("refs/heads/main"));
    expect(await res.json()).toEqual({
      status: "ignored",
      reason: "ignored: the trigger is disabled",
    });
    const frozen = await makeTrigger({ readOnly: true });
    const frozenRes = await github(frozen, githubPush("refs/heads/main"));
    expect(((await frozenRes.json()) as { reason: string }).reason).toBe(
      `ignored: repository ${frozen.repository} is read-only`,
    );
  });

  it("refuses a hook without a delivery id and a payload that is no push", async () => {
    const trigger = await makeTrigger();
    const noDelivery = await github(trigger, githubPush("refs/heads/main"), { delivery: null });
    expect(noDelivery.status).toBe(400);
    expect(await noDelivery.json()).toMatchObject({ error: "no X-GitHub-Delivery header" });
    const notJson = await github(trigger, "ref=refs/heads/main");
    expect(notJson.status).toBe(400);
    const shortCommit = await github(trigger, githubPush("refs/heads/main", { after: "abc123" }));
    expect(shortCommit.status).toBe(400);
    expect(await deliveriesOf(trigger.id)).toEqual([]);
    await expectNoBuildQueued(trigger, (b) => github(trigger, b), githubPush("refs/heads/main"));
  });

  it("uses the trigger's default branch when the payload names none", async () => {
    const trigger = await makeTrigger({ defaultBranch: "trunk", tagTemplates: ["latest@default"] });
    const body = JSON.stringify({ ref: "refs/heads/trunk", after: COMMIT, deleted: false });
    const res = await github(trigger, body);
    expect(res.status).toBe(202);
    const { buildId } = (await res.json()) as { buildId: string };
    expect((await queuedBuild(buildId)).tags).toEqual(["latest"]);
  });
});
