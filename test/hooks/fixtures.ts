// Helpers for the hooks Worker suites: triggers made straight in D1 (sealed the way the management
// API seals them), signed webhook requests per provider, and what the queues received (through
// the test-only queue-recorder Worker that consumes them).
import { env, SELF } from "cloudflare:test";
import { drizzle } from "drizzle-orm/d1";
import { expect } from "vitest";
import {
  type BuildTriggerProvider,
  DEFAULT_REF_FILTER,
  DEFAULT_TAG_TEMPLATES,
  type RefFilter,
} from "../../schema/build-triggers.ts";
import type { BuildRequest } from "../../schema/builds.ts";
import { buildTriggers, namespaces, repositories, users } from "../../schema/db/d1.ts";
import type { RegistryEvent } from "../../schema/events.ts";
import type { HooksEnv } from "../../workers/hooks/env.ts";
import { signGeneric, signGithub } from "../../workers/hooks/signatures.ts";
import {
  newWebhookSecret,
  sealWebhookSecret,
} from "../../workers/registry/services/webhook-secrets.ts";

export const hooksEnv = env as unknown as HooksEnv & { QUEUE_RECORDER: Fetcher };

export const ORIGIN = "http://hooks.test";
export const COMMIT = "3f786850e387550fdab836ed7e6dc881de23001b";
export const OTHER_COMMIT = "89e6c98d92887913cadf06b2adb97f26cde4849b";
export const ZERO = "0".repeat(40);

let counter = 0;
export function unique(prefix: string): string {
  counter += 1;
  return `${prefix}${Date.now().toString(36)}${counter}${Math.floor(Math.random() * 1e6).toString(36)}`;
}

export interface TestTrigger {
  id: string;
  secret: string;
  repository: string;
  provider: BuildTriggerProvider;
  cloneUrl: string;
  owner: { id: string; name: string };
}

export interface TriggerOptions {
  provider?: BuildTriggerProvider;
  refFilter?: RefFilter;
  tagTemplates?: string[];
  defaultBranch?: string | null;
  enabled?: boolean;
  readOnly?: boolean;
  dockerfilePath?: string;
  contextDir?: string;
}

/** A user, their namespace, a repository in it and a trigger on it, all in D1. */
export async function makeTrigger(options: TriggerOptions = {}): Promise<TestTrigger> {
  const orm = drizzle(hooksEnv.DB);
  const owner = { id: crypto.randomUUID(), name: unique("u") };
  const repository = `${owner.name}/app`;
  const id = crypto.randomUUID();
  const secret = newWebhookSecret();
  const provider = options.provider ?? "github";
  const cloneUrl = `https://git.example.test/${owner.name}/app.git`;
  const now = new Date();
  await orm.batch([
    orm.insert(users).values({ id: owner.id, username: owner.name, createdAt: now }),
    orm.insert(namespaces).values({ name: owner.name, kind: "user", createdAt: now }),
    orm.insert(repositories).values({
      name: repository,
      namespace: owner.name,
      state: options.readOnly ? "read-only" : "normal",
      createdAt: now,
    }),
    orm.insert(buildTriggers).values({
      id,
      repository,
      provider,
      cloneUrl,
      dockerfilePath: options.dockerfilePath ?? "Dockerfile",
      contextDir: options.contextDir ?? ".",
      refFilter: options.refFilter ?? DEFAULT_REF_FILTER,
      tagTemplates: options.tagTemplates ?? [...DEFAULT_TAG_TEMPLATES],
      defaultBranch: options.defaultBranch ?? null,
      enabled: options.enabled ?? true,
      secretSealed: await sealWebhookSecret(hooksEnv.WEBHOOK_SECRET_KEY, id, secret),
      ownerId: owner.id,
      createdAt: now,
      updatedAt: now,
    }),
  ]);
  return { id, secret, repository, provider, cloneUrl, owner };
}

export function hookUrl(provider: string, triggerId: string): string {
  return `${ORIGIN}/hooks/${provider}/${triggerId}`;
}

export function post(url: string, body: string, headers: Record<string, string>) {
  return SELF.fetch(url, { method: "POST", body, headers });
}

// ---- payloads and signatures per provider ---------------------------------------------------

export function githubPush(
  ref: string,
  options: { after?: string; defaultBranch?: string; deleted?: boolean } = {},
): string {
  const after = options.after ?? COMMIT;
  const deleted = options.deleted ?? after === ZERO;
  return JSON.stringify({
    ref,
    before: OTHER_COMMIT,
    after,
    created: false,
    deleted,
    forced: false,
    head_commit: deleted ? null : { id: after, message: "change" },
    repository: {
      full_name: "acme/app",
      clone_url: "https://github.com/acme/app.git",
      default_branch: options.defaultBranch ?? "main",
    },
    pusher: { name: "octocat" },
  });
}

export async function github(
  trigger: TestTrigger,
  body: string,
  options: { event?: string; delivery?: string | null; secret?: string; signature?: string } = {},
): Promise<Response> {
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    "X-GitHub-Event": options.event ?? "push",
    "X-Hub-Signature-256":
      options.signature ?? (await signGithub(options.secret ?? trigger.secret, body)),
  };
  if (options.delivery !== null)
    headers["X-GitHub-Delivery"] = options.delivery ?? crypto.randomUUID();
  return post(hookUrl("github", trigger.id), body, headers);
}

export function gitlabPush(ref: string, options: { after?: string; tag?: boolean } = {}): string {
  const after = options.after ?? COMMIT;
  return JSON.stringify({
    object_kind: options.tag ? "tag_push" : "push",
    ref,
    before: OTHER_COMMIT,
    after,
    checkout_sha: after === ZERO ? null : after,
    project: { path_with_namespace: "acme/app", default_branch: "main" },
  });
}

export function gitlab(
  trigger: TestTrigger,
  body: string,
  options: { event?: string; token?: string | null; delivery?: string } = {},
): Promise<Response> {
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    "X-Gitlab-Event": options.event ?? "Push Hook",
    "Idempotency-Key": options.delivery ?? crypto.randomUUID(),
  };
  if (options.token !== null) headers["X-Gitlab-Token"] = options.token ?? trigger.secret;
  return post(hookUrl("gitlab", trigger.id), body, headers);
}

export function genericPush(ref: string, commit = COMMIT, extra: Record<string, unknown> = {}) {
  return JSON.stringify({ ref, commit, ...extra });
}

export async function generic(
  trigger: TestTrigger,
  body: string,
  options: { at?: number; delivery?: string; secret?: string; signature?: string } = {},
): Promise<Response> {
  const at = options.at ?? Math.floor(Date.now() / 1000);
  return post(hookUrl("generic", trigger.id), body, {
    "Content-Type": "application/json",
    "X-Registry-Delivery": options.delivery ?? crypto.randomUUID(),
    "X-Registry-Signature":
      options.signature ?? (await signGeneric(options.secret ?? trigger.secret, body, at)),
  });
}

// ---- what happened ---------------------------------------------------------------------------

async function receivedOn<T>(queue: string): Promise<T[]> {
  const res = await hooksEnv.QUEUE_RECORDER.fetch(`http://recorder/?queue=${queue}`);
  return (await res.json()) as T[];
}

/** Polls the recorder until `pick` finds something in the queue's messages. */
export async function eventually<T, R>(
  queue: string,
  pick: (messages: T[]) => R | undefined,
  what: string,
): Promise<R> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const found = pick(await receivedOn<T>(queue));
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The BuildRequest the queue received for `buildId`. */
export function queuedBuild(buildId: string): Promise<BuildRequest> {
  return eventually<BuildRequest, BuildRequest>(
    "builds",
    (messages) => messages.find((message) => message.buildId === buildId),
    `build ${buildId} on the builds queue`,
  );
}

/** The builds queued for a trigger so far. */
export async function buildsOf(triggerId: string): Promise<BuildRequest[]> {
  return (await receivedOn<BuildRequest>("builds")).filter((m) => m.triggerId === triggerId);
}

/**
 * Proves that a refused or ignored hook queued nothing: a valid hook sent afterwards is the only
 * build of the trigger once it has arrived (the queue delivers in order, and the hook Worker
 * awaits its send before answering, so anything earlier would have arrived first).
 */
export async function expectNoBuildQueued(
  trigger: TestTrigger,
  send: (body: string) => Promise<Response>,
  body: string,
): Promise<void> {
  const marker = await send(body);
  expect(marker.status, await marker.clone().text()).toBe(202);
  const { buildId } = (await marker.json()) as { buildId: string };
  await queuedBuild(buildId);
  expect((await buildsOf(trigger.id)).map((b) => b.buildId)).toEqual([buildId]);
}

/** The audit events the registry-events queue received for a trigger, of one kind. */
export function auditedFor(
  triggerId: string,
  kind: RegistryEvent["kind"],
  count = 1,
): Promise<RegistryEvent[]> {
  return eventually<RegistryEvent, RegistryEvent[]>(
    "registry-events",
    (events) => {
      const found = events.filter(
        (event) => event.kind === kind && event.metadata?.trigger === triggerId,
      );
      return found.length >= count ? found : undefined;
    },
    `${count} ${kind} event(s) of trigger ${triggerId}`,
  );
}

export async function deliveriesOf(
  triggerId: string,
): Promise<{ delivery_id: string; build_id: string | null }[]> {
  const { results } = await hooksEnv.DB.prepare(
    "SELECT delivery_id, build_id FROM hook_deliveries WHERE trigger_id = ? ORDER BY received_at",
  )
    .bind(triggerId)
    .all<{ delivery_id: string; build_id: string | null }>();
  return results;
}
