// Builds as people see them: a BuildRequest checked and recorded in D1, the list and detail views,
// cancel, and log history or a live log watch. Who may do what: anyone who may pull from the
// repository may see its builds and logs; cancelling takes push (write). A repository the caller
// cannot see is "not found", whatever the build id.
import { and, desc, eq, sql } from "drizzle-orm";
import type { BuildCoordinator } from "../../../durable-objects/build-coordinator.ts";
import { COORDINATOR_NAME } from "../../../durable-objects/build-coordinator.ts";
import type { BuildObject, LogPage } from "../../../durable-objects/build-object.ts";
import { normalizeSourcePath } from "../../../schema/build-triggers.ts";
import {
  BUILD_PHASES,
  type BuildDetailView,
  type BuildPhase,
  type BuildRequest,
  type BuildSource,
  type BuildView,
} from "../../../schema/builds.ts";
import { builds, repositories } from "../../../schema/db/d1.ts";
import type { ActorKind, EventActor } from "../../../schema/events.ts";
import { parseRepositoryName, parseTag } from "../../../schema/oci/reference.ts";
import { type Action, repositoryAccess } from "../auth/access.ts";
import { actorOf, type IdentityContext, ormOf } from "./identity/context.ts";
import { conflict, forbidden, invalid, notFound } from "./identity/errors.ts";
import { type Page, type PageRequest, toPage } from "./identity/pagination.ts";

/** The queue (wrangler.toml) whose batches the registry Worker hands to the builds consumer. */
export const BUILDS_QUEUE = "builds";
export const BUILD_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const MAX_TAGS = 100;
const ACTOR_KINDS: readonly ActorKind[] = [
  "user",
  "robot",
  "token",
  "anonymous",
  "build",
  "system",
];

/** The Durable Objects behind builds. */
export interface BuildObjects {
  coordinator(): DurableObjectStub<BuildCoordinator>;
  build(id: string): DurableObjectStub<BuildObject>;
}

export function buildObjects(env: {
  BUILD_COORDINATOR: DurableObjectNamespace<BuildCoordinator>;
  BUILD: DurableObjectNamespace<BuildObject>;
}): BuildObjects {
  return {
    coordinator: () => env.BUILD_COORDINATOR.getByName(COORDINATOR_NAME),
    build: (id) => env.BUILD.getByName(id),
  };
}

// ---- requests from the queue -----------------------------------------------------------------

export type CheckedRequest =
  | { ok: true; request: BuildRequest }
  /** Unusable. With `request` when the id and repository are sound: record it as failed. */
  | { ok: false; problem: string; request?: BuildRequest };

/** Checks a `builds` queue message field by field; nothing unchecked reaches a fleet host. */
export function checkBuildRequest(value: unknown): CheckedRequest {
  if (typeof value !== "object" || value === null) {
    return { ok: false, problem: "a build request is a JSON object" };
  }
  const body = value as Record<string, unknown>;
  if (typeof body.buildId !== "string" || !BUILD_ID.test(body.buildId)) {
    return { ok: false, problem: "buildId must be 1-64 letters, digits, _ or -" };
  }
  if (typeof body.repository !== "string" || !parseRepositoryName(body.repository)) {
    return { ok: false, problem: "repository is not a repository name" };
  }
  const requestedBy = actorOfValue(body.requestedBy);
  const requestedAt =
    typeof body.requestedAt === "number" && Number.isFinite(body.requestedAt)
      ? body.requestedAt
      : Date.now();
  const dockerfile = normalizeSourcePath(
    typeof body.dockerfilePath === "string" ? body.dockerfilePath : "",
  );
  const context = normalizeSourcePath(typeof body.contextDir === "string" ? body.contextDir : "");
  const source = sourceOf(body.source);
  const tags = Array.isArray(body.tags) ? body.tags : [];
  const request: BuildRequest = {
    buildId: body.buildId,
    repository: body.repository,
    ...(typeof body.triggerId === "string" ? { triggerId: body.triggerId.slice(0, 64) } : {}),
    source:
      typeof source === "string" ? { kind: "archive", format: "tar", key: "", size: 0 } : source,
    dockerfilePath: "path" in dockerfile ? dockerfile.path : "Dockerfile",
    contextDir: "path" in context ? context.path : ".",
    tags: tags.filter((tag): tag is string => typeof tag === "string" && !!parseTag(tag)),
    requestedBy: requestedBy ?? { kind: "anonymous" },
    requestedAt,
  };
  const problem =
    (typeof source === "string" ? source : undefined) ??
    (typeof body.dockerfilePath !== "string" || "problem" in dockerfile
      ? `dockerfilePath ${"problem" in dockerfile ? dockerfile.problem : "is required"}`
      : undefined) ??
    (typeof body.contextDir !== "string" || "problem" in context
      ? `contextDir ${"problem" in context ? context.problem : "is required"}`
      : undefined) ??
    (tags.length === 0 || tags.length > MAX_TAGS || request.tags.length !== tags.length
      ? `tags must be 1 to ${MAX_TAGS} valid tags`
      : undefined) ??
    (requestedBy ? undefined : "requestedBy must name an actor") ??
    (body.triggerId !== undefined && typeof body.triggerId !== "string"
      ? "triggerId must be a string"
      : undefined);
  return problem ? { ok: false, problem, request } : { ok: true, request };
}

function sourceOf(value: unknown): BuildSource | string {
  if (typeof value !== "object" || value === null) return "source is required";
  const source = value as Record<string, unknown>;
  const plain = (v: unknown, max: number) =>
    typeof v === "string" &&
    v.length > 0 &&
    v.length <= max &&
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
    !/[\x00-\x1f\x7f]/.test(v);
  if (source.kind === "git") {
    if (!plain(source.cloneUrl, 2048)) return "source.cloneUrl must be a URL";
    if (!plain(source.ref, 1024)) return "source.ref must be a git ref";
    if (typeof source.commit !== "string" || !/^([0-9a-f]{40}|[0-9a-f]{64})$/.test(source.commit)) {
      return "source.commit must be a full commit id";
    }
    return {
      kind: "git",
      cloneUrl: source.cloneUrl as string,
      ref: source.ref as string,
      commit: source.commit,
    };
  }
  if (source.kind === "archive") {
    if (source.format !== "dockerfile" && source.format !== "tar" && source.format !== "tar.gz") {
      return "source.format must be dockerfile, tar or tar.gz";
    }
    if (!plain(source.key, 1024)) return "source.key must name the uploaded archive";
    if (!Number.isSafeInteger(source.size) || (source.size as number) < 0) {
      return "source.size must be a byte count";
    }
    return {
      kind: "archive",
      format: source.format,
      key: source.key as string,
      size: source.size as number,
    };
  }
  return "source.kind must be git or archive";
}

function actorOfValue(value: unknown): EventActor | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const actor = value as Record<string, unknown>;
  if (!ACTOR_KINDS.includes(actor.kind as ActorKind)) return undefined;
  const text = (v: unknown) => (typeof v === "string" ? v.slice(0, 256) : undefined);
  const name = text(actor.name);
  const id = text(actor.id);
  return {
    kind: actor.kind as ActorKind,
    ...(name !== undefined ? { name } : {}),
    ...(id !== undefined ? { id } : {}),
  };
}

export async function repositoryExists(db: D1Database, repository: string): Promise<boolean> {
  const row = await ormOf({ db } as IdentityContext)
    .select({ name: repositories.name })
    .from(repositories)
    .where(eq(repositories.name, repository))
    .get();
  return row !== undefined;
}

/**
 * The D1 row of a build, written once (a redelivered request changes nothing). Exported so that a
 * producer may record the build before queueing it, and list it at once.
 */
export async function recordBuild(db: D1Database, request: BuildRequest): Promise<void> {
  await ormOf({ db } as IdentityContext)
    .insert(builds)
    .values({
      id: request.buildId,
      repository: request.repository,
      triggerId: request.triggerId ?? null,
      phase: "queued",
      source: request.source,
      dockerfilePath: request.dockerfilePath,
      contextDir: request.contextDir,
      tags: request.tags,
      requestedBy: request.requestedBy,
      queuedAt: new Date(request.requestedAt),
    })
    .onConflictDoNothing({ target: builds.id })
    .run();
}

/** Undoes `recordBuild` for a request that never reached the queue. */
export async function forgetBuild(db: D1Database, buildId: string): Promise<void> {
  await ormOf({ db } as IdentityContext)
    .delete(builds)
    .where(and(eq(builds.id, buildId), eq(builds.phase, "queued")))
    .run();
}

// ---- views -----------------------------------------------------------------------------------

type BuildRow = typeof builds.$inferSelect;

function viewOf(row: BuildRow): BuildView {
  const source = row.source as BuildSource;
  return {
    id: row.id,
    repository: row.repository,
    triggerId: row.triggerId,
    phase: (BUILD_PHASES as readonly string[]).includes(row.phase)
      ? (row.phase as BuildPhase)
      : "error",
    source:
      source.kind === "git"
        ? { kind: "git", cloneUrl: source.cloneUrl, ref: source.ref, commit: source.commit }
        : { kind: "archive", format: source.format, size: source.size },
    dockerfilePath: row.dockerfilePath,
    contextDir: row.contextDir,
    tags: row.tags,
    requestedBy: row.requestedBy as EventActor,
    queuedAt: row.queuedAt.toISOString(),
    startedAt: row.startedAt?.toISOString() ?? null,
    finishedAt: row.finishedAt?.toISOString() ?? null,
    attempts: row.attempts,
    host: row.host,
    digest: row.digest,
    error: row.error,
  };
}

/** 404 unless the caller may pull from the repository; 403 when `action` is more than they may. */
async function requireBuildAccess(
  ctx: IdentityContext,
  repository: string,
  action: Action,
  purpose: string,
): Promise<void> {
  const access = await repositoryAccess(ctx.db, ctx.caller, repository);
  if (!access.exists || !access.actions.has("pull")) {
    throw notFound(`repository ${repository} not found`);
  }
  if (!access.actions.has(action)) {
    throw forbidden(`${purpose} takes ${action} permission on ${repository}`);
  }
}

async function buildRow(ctx: IdentityContext, repository: string, id: string): Promise<BuildRow> {
  if (!BUILD_ID.test(id)) throw notFound(`build ${id} not found`);
  const row = await ormOf(ctx)
    .select()
    .from(builds)
    .where(and(eq(builds.id, id), eq(builds.repository, repository)))
    .get();
  if (!row) throw notFound(`build ${id} not found in ${repository}`);
  return row;
}

/** A repository's builds, newest first. */
export async function listBuilds(
  ctx: IdentityContext,
  repository: string,
  page: PageRequest,
): Promise<Page<BuildView>> {
  await requireBuildAccess(ctx, repository, "pull", "seeing builds");
  const after = page.after
    ? sql`(${builds.queuedAt}, ${builds.id}) < (${Number(page.after[0])}, ${page.after[1]})`
    : undefined;
  const rows = await ormOf(ctx)
    .select()
    .from(builds)
    .where(and(eq(builds.repository, repository), after))
    .orderBy(desc(builds.queuedAt), desc(builds.id))
    .limit(page.limit + 1)
    .all();
  return toPage(rows, page.limit, (row) => [String(row.queuedAt.getTime()), row.id], viewOf);
}

/** One build, with the live state of its BuildObject (phases, current attempt). */
export async function describeBuild(
  ctx: IdentityContext,
  objects: BuildObjects,
  repository: string,
  id: string,
): Promise<BuildDetailView> {
  await requireBuildAccess(ctx, repository, "pull", "seeing builds");
  const row = await buildRow(ctx, repository, id);
  const view = viewOf(row);
  const live = await objects.build(id).state();
  if (!live) return { ...view, phases: [], logLines: 0 };
  return {
    ...view,
    phase: live.phase,
    attempts: live.attempt,
    host: live.host,
    startedAt: live.startedAt === null ? null : new Date(live.startedAt).toISOString(),
    finishedAt: live.finishedAt === null ? null : new Date(live.finishedAt).toISOString(),
    digest: live.digest,
    error: live.error,
    phases: live.phases.map((p) => ({ ...p, at: new Date(p.at).toISOString() })),
    logLines: live.logLines,
  };
}

/** Cancels a build at whatever phase it is; a build that already ended is a 409. */
export async function cancelBuild(
  ctx: IdentityContext,
  objects: BuildObjects,
  repository: string,
  id: string,
): Promise<BuildDetailView> {
  await requireBuildAccess(ctx, repository, "push", "cancelling a build");
  await buildRow(ctx, repository, id);
  const by = actorOf(ctx.caller);
  const result = await objects
    .coordinator()
    .cancel(id, repository, by, `cancelled through the API by ${ctx.caller.name}`);
  if (!result.changed) {
    throw conflict(`build ${id} already ended (${result.phase})`);
  }
  return describeBuild(ctx, objects, repository, id);
}

export const MAX_LOG_PAGE = 1000;

/** A page of a build's log lines after sequence number `after`. */
export async function buildLogPage(
  ctx: IdentityContext,
  objects: BuildObjects,
  repository: string,
  id: string,
  after: number,
  limit: number,
): Promise<LogPage> {
  await requireBuildAccess(ctx, repository, "pull", "reading build logs");
  await buildRow(ctx, repository, id);
  if (!Number.isSafeInteger(after) || after < 0) throw invalid("after must be a sequence number");
  return objects.build(id).logs(after, limit);
}

/** Hands a WebSocket upgrade to the build's object: history after `after`, then live lines. */
export async function watchBuildLogs(
  ctx: IdentityContext,
  objects: BuildObjects,
  repository: string,
  id: string,
  after: number,
): Promise<Response> {
  await requireBuildAccess(ctx, repository, "pull", "reading build logs");
  await buildRow(ctx, repository, id);
  return objects.build(id).fetch(`https://build/watch?after=${after}`, {
    headers: { Upgrade: "websocket" },
  });
}
