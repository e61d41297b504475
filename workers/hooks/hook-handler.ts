// One webhook, start to end: find the trigger, verify the signature with its secret, claim the
// delivery id, decide whether the push builds (deleted ref, ref filter, tag templates), put the
// BuildRequest on the `builds` queue and answer 202 with the build id.
//
// A hook that fails verification, is stale or replays a delivery changes nothing and is audited
// (`hook.rejected` on the registry's event queue). A hook for a trigger that does not exist, or
// exists for another provider, gets the same 404 either way, so neither ids nor providers leak.
// A push the trigger does not build is answered 200 with the reason, so the provider's delivery
// log says why nothing happened.
import { error, json } from "itty-router";
import {
  BUILD_TRIGGER_PROVIDERS,
  type BuildTriggerProvider,
  expandTagTemplates,
  refFilterRefusal,
} from "../../schema/build-triggers.ts";
import type { BuildRequest } from "../../schema/builds.ts";
import type { EventActor } from "../../schema/events.ts";
import { namespaceOf } from "../registry/auth/access.ts";
import { clientIp } from "../registry/http/client-ip.ts";
import { type EventSink, eventSink } from "../registry/services/events.ts";
import { openWebhookSecret } from "../registry/services/webhook-secrets.ts";
import type { HooksEnv } from "./env.ts";
import {
  claimDelivery,
  findTrigger,
  releaseDelivery,
  type StoredTrigger,
  sweepExpiredDeliveries,
} from "./hook-store.ts";
import { deliveryIdOf, type Push, parseHookEvent } from "./push-events.ts";
import { readLimitedBody } from "./request-body.ts";
import { type Verification, verifyGeneric, verifyGithub, verifyGitlab } from "./signatures.ts";

/** Push payloads are a few kilobytes; GitHub caps its own at 25 MB, we need far less. */
export const MAX_HOOK_BODY_BYTES = 1024 * 1024;

const TRIGGER_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const noSuchTrigger = () => error(404, "no such trigger");

export async function handleHook(
  request: Request,
  env: HooksEnv,
  ctx: ExecutionContext,
  providerParam: string,
  triggerId: string,
): Promise<Response> {
  const provider = BUILD_TRIGGER_PROVIDERS.find((p) => p === providerParam);
  if (!provider || !TRIGGER_ID.test(triggerId)) return noSuchTrigger();
  const body = await readLimitedBody(request, MAX_HOOK_BODY_BYTES);
  if (body === "too-large") {
    return error(413, `a webhook body may be at most ${MAX_HOOK_BODY_BYTES} bytes`);
  }
  const trigger = await findTrigger(env.DB, triggerId);
  if (!trigger || trigger.provider !== provider) return noSuchTrigger();

  const events = eventSink(env.EVENTS, (promise) => ctx.waitUntil(promise));
  const audit = auditor(events, trigger, request);
  const secret = await openWebhookSecret(env.WEBHOOK_SECRET_KEY, trigger.id, trigger.secretSealed);
  const verification = await verify(provider, secret, request.headers, body);
  if (!verification.ok) {
    audit("hook.rejected", { reason: verification.reason, detail: verification.detail });
    return error(401, { error: `refused: ${verification.detail}`, reason: verification.reason });
  }
  const delivery = deliveryIdOf(provider, request.headers);
  if ("problem" in delivery) return error(400, delivery.problem);

  const event = parseHookEvent(provider, request.headers, body);
  if (event.kind === "ping") return json({ status: "pong", trigger: trigger.id });
  if (event.kind === "other") return ignored(`event ${event.event} does not build`);
  if (event.kind === "invalid") return error(400, event.problem);

  const now = Date.now();
  const decision = decide(trigger, event.push);
  const buildId = decision.build ? crypto.randomUUID() : null;
  const claim = { triggerId: trigger.id, deliveryId: delivery.id };
  if (!(await claimDelivery(env.DB, { ...claim, buildId, now }))) {
    audit("hook.rejected", { reason: "replayed", delivery: delivery.id });
    return error(409, {
      error: `delivery ${delivery.id} was already received`,
      reason: "replayed",
    });
  }
  ctx.waitUntil(
    sweepExpiredDeliveries(env.DB, now).catch((e: unknown) => console.warn("sweep failed", e)),
  );
  if (!decision.build) return ignored(decision.reason, decision.skipped);

  const build: BuildRequest = {
    buildId: buildId!,
    repository: trigger.repository,
    triggerId: trigger.id,
    source: {
      kind: "git",
      cloneUrl: trigger.cloneUrl,
      ref: event.push.ref,
      commit: event.push.commit,
    },
    dockerfilePath: trigger.dockerfilePath,
    contextDir: trigger.contextDir,
    tags: decision.tags,
    requestedBy: requesterOf(trigger),
    requestedAt: now,
  };
  try {
    await env.BUILDS.send(build, { contentType: "json" });
  } catch (cause) {
    console.error(`build ${build.buildId} not queued`, cause);
    await releaseDelivery(env.DB, claim);
    return error(503, "the build queue is unavailable; redeliver the hook later");
  }
  events.emit({
    kind: "build.requested",
    actor: build.requestedBy,
    namespace: namespaceOf(trigger.repository),
    repository: trigger.repository,
    ...clientIp(request),
    metadata: {
      build: build.buildId,
      source: `${provider} webhook`,
      trigger: trigger.id,
      delivery: delivery.id,
      ref: build.source.kind === "git" ? build.source.ref : undefined,
      commit: event.push.commit,
      tags: build.tags,
    },
  });
  return json(
    {
      status: "accepted",
      buildId: build.buildId,
      repository: build.repository,
      ref: event.push.ref,
      commit: event.push.commit,
      tags: build.tags,
      skipped: decision.skipped,
    },
    { status: 202 },
  );
}

type Decision =
  | { build: true; tags: string[]; skipped: { template: string; reason: string }[] }
  | { build: false; reason: string; skipped?: { template: string; reason: string }[] };

/** Whether this push builds, and with which tags. No I/O: the same push always decides alike. */
export function decide(trigger: StoredTrigger, push: Push): Decision {
  if (!trigger.enabled) return { build: false, reason: "the trigger is disabled" };
  if (trigger.repositoryState !== "normal") {
    return { build: false, reason: `repository ${trigger.repository} is read-only` };
  }
  if (push.deleted) return { build: false, reason: `${push.ref} was deleted` };
  const refused = refFilterRefusal(trigger.refFilter, push.ref);
  if (refused) return { build: false, reason: refused };
  const { tags, skipped } = expandTagTemplates(trigger.tagTemplates, {
    ref: push.ref,
    commit: push.commit,
    defaultBranch: push.defaultBranch ?? trigger.defaultBranch ?? undefined,
  });
  if (tags.length === 0) return { build: false, reason: `no tag template applies`, skipped };
  return { build: true, tags, skipped };
}

function verify(
  provider: BuildTriggerProvider,
  secret: string,
  headers: Headers,
  body: Uint8Array,
): Promise<Verification> {
  switch (provider) {
    case "github":
      return verifyGithub(secret, body, headers.get("X-Hub-Signature-256"));
    case "gitlab":
      return verifyGitlab(secret, headers.get("X-Gitlab-Token"));
    case "generic":
      return verifyGeneric(
        secret,
        body,
        headers.get("X-Registry-Signature"),
        Math.floor(Date.now() / 1000),
      );
  }
}

function ignored(reason: string, skipped?: { template: string; reason: string }[]): Response {
  return json({ status: "ignored", reason: `ignored: ${reason}`, ...(skipped ? { skipped } : {}) });
}

/** Webhook builds pull with the rights of the administrator who last configured the trigger. */
function requesterOf(trigger: StoredTrigger): EventActor {
  return trigger.owner
    ? { kind: "user", name: trigger.owner.name, id: trigger.owner.id }
    : { kind: "system", name: `trigger ${trigger.id}` };
}

/** Audits a refused hook: who sent it (unauthenticated), to which trigger, and why. */
function auditor(events: EventSink, trigger: StoredTrigger, request: Request) {
  return (kind: "hook.rejected", metadata: Record<string, unknown>) =>
    events.emit({
      kind,
      actor: { kind: "anonymous" },
      namespace: namespaceOf(trigger.repository),
      repository: trigger.repository,
      ...clientIp(request),
      metadata: { trigger: trigger.id, provider: trigger.provider, ...metadata },
    });
}
