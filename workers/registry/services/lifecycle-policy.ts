// Tag lifecycle policy in D1 (the source of truth): a namespace's retention window, immutability
// rules and auto-prune policies at namespace or repository level. Every change is written with a
// bump of the one revision counter, then the effective policy of each repository it touches is
// pushed into that repository's RepositoryObject, which enforces it without asking D1 again.
//
// Ordering: a push carries the revision read in the same D1 transaction as the policy, and the
// object keeps the highest revision it has seen. So of two concurrent changes the later state
// wins everywhere, whatever order the pushes arrive in; and a repository created during a
// namespace change either is listed by it or reads the new policy when it is created.
import { and, asc, eq, isNull, or, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import {
  immutabilityRules,
  lifecycleRevision,
  namespaces,
  type PruneMethod,
  prunePolicies,
  repositories,
  tagRetention,
} from "../../../schema/db/d1.ts";
import type { EventKind } from "../../../schema/events.ts";
import {
  DEFAULT_TAG_RETENTION_MS,
  type LifecyclePolicy,
  type PruneRule,
} from "../../../schema/lifecycle.ts";
import type { RepositoryName } from "../../../schema/oci/reference.ts";
import { namespaceOf, repositoryAccess } from "../auth/access.ts";
import { formatDuration } from "../lib/duration.ts";
import type { ObjectDirectory } from "../storage/repository-stubs.ts";
import {
  emit,
  type IdentityContext,
  type NamespaceStanding,
  namespaceStanding,
  ormOf,
  requireNamespaceAdmin,
  requireRepositoryAdmin,
} from "./identity/context.ts";
import { conflict, IdentityError, isUniqueViolation, notFound } from "./identity/errors.ts";

export const MAX_RETENTION_MS = 365 * 24 * 60 * 60 * 1000;
/** Per namespace or repository: every rule is evaluated by the object on each tag push. */
export const MAX_IMMUTABILITY_RULES = 50;
export const MAX_PRUNE_POLICIES = 20;
/** Objects updated at once when a namespace-level change fans out. */
const PUSH_CONCURRENCY = 8;
const PUSH_ATTEMPTS = 3;

type Objects = Pick<ObjectDirectory, "repository">;
type Orm = ReturnType<typeof drizzle>;
type RuleRow = typeof immutabilityRules.$inferSelect;
type PruneRow = typeof prunePolicies.$inferSelect;

/** Where a rule applies: every repository of a namespace, or one repository. */
export type PolicyScope = { namespace: string } | { repository: RepositoryName };

export interface RetentionView {
  namespace: string;
  retention: string;
  retentionSeconds: number;
  /** True when the namespace never set one (the default applies). */
  isDefault: boolean;
}

export interface ImmutabilityRuleView {
  id: string;
  scope: "namespace" | "repository";
  namespace: string;
  repository: string | null;
  tagPattern: string;
  createdAt: string;
}

export interface PrunePolicyView {
  id: string;
  scope: "namespace" | "repository";
  namespace: string;
  repository: string | null;
  method: PruneMethod;
  /** keep-count: how many of the newest tags stay. */
  keepCount: number | null;
  /** older-than: tags pushed longer ago than this go. */
  olderThan: string | null;
  olderThanSeconds: number | null;
  tagPattern: string | null;
  createdAt: string;
}

export type PrunePolicyInput =
  | { method: "keep-count"; count: number; tagPattern: string | null }
  | { method: "older-than"; seconds: number; tagPattern: string | null };

// ---- effective policy and its push ---------------------------------------------------------

/** The policy a repository's object enforces, read in one D1 transaction. */
export async function effectivePolicy(
  db: D1Database,
  repository: string,
): Promise<LifecyclePolicy> {
  const orm = drizzle(db);
  const namespace = namespaceOf(repository);
  const [revision, retention, rules, prunes] = await orm.batch([
    orm.select().from(lifecycleRevision).where(eq(lifecycleRevision.id, 1)),
    orm.select().from(tagRetention).where(eq(tagRetention.namespace, namespace)),
    orm
      .select()
      .from(immutabilityRules)
      .where(
        or(
          eq(immutabilityRules.namespace, namespace),
          eq(immutabilityRules.repository, repository),
        ),
      ),
    orm
      .select()
      .from(prunePolicies)
      .where(or(eq(prunePolicies.namespace, namespace), eq(prunePolicies.repository, repository))),
  ]);
  return buildPolicy(
    repository,
    revision[0]?.revision ?? 0,
    retention[0]?.retentionSeconds,
    rules,
    prunes,
  );
}

/** Pushes a repository's effective policy into its object (on creation, on a change). */
export async function pushRepositoryPolicy(
  db: D1Database,
  objects: Objects,
  repository: RepositoryName,
): Promise<void> {
  const policy = await effectivePolicy(db, repository);
  await withRetries(() => objects.repository(repository).setPolicy(policy));
}

/**
 * Pushes the effective policy of every repository of a namespace, read with the namespace's
 * rules in one transaction. Throws after trying every repository if some could not be updated:
 * the change is saved, and repeating the request pushes again.
 */
export async function pushNamespacePolicies(
  db: D1Database,
  objects: Objects,
  namespace: string,
): Promise<number> {
  const orm = drizzle(db);
  const inNamespace = eq(repositories.namespace, namespace);
  const [revision, retention, nsRules, nsPrunes, repoRules, repoPrunes, repos] = await orm.batch([
    orm.select().from(lifecycleRevision).where(eq(lifecycleRevision.id, 1)),
    orm.select().from(tagRetention).where(eq(tagRetention.namespace, namespace)),
    orm.select().from(immutabilityRules).where(eq(immutabilityRules.namespace, namespace)),
    orm.select().from(prunePolicies).where(eq(prunePolicies.namespace, namespace)),
    orm
      .select({ rule: immutabilityRules })
      .from(immutabilityRules)
      .innerJoin(repositories, eq(repositories.name, immutabilityRules.repository))
      .where(inNamespace),
    orm
      .select({ rule: prunePolicies })
      .from(prunePolicies)
      .innerJoin(repositories, eq(repositories.name, prunePolicies.repository))
      .where(inNamespace),
    orm
      .select({ name: repositories.name })
      .from(repositories)
      .where(inNamespace)
      .orderBy(asc(repositories.name)),
  ]);
  const rulesOf = groupBy(
    repoRules.map((row) => row.rule),
    (rule) => rule.repository!,
  );
  const prunesOf = groupBy(
    repoPrunes.map((row) => row.rule),
    (rule) => rule.repository!,
  );
  const failed: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < repos.length) {
      const { name } = repos[next++]!;
      const policy = buildPolicy(
        name,
        revision[0]?.revision ?? 0,
        retention[0]?.retentionSeconds,
        [...nsRules, ...(rulesOf.get(name) ?? [])],
        [...nsPrunes, ...(prunesOf.get(name) ?? [])],
      );
      try {
        await withRetries(() => objects.repository(name as RepositoryName).setPolicy(policy));
      } catch (error) {
        console.error(`lifecycle policy of ${name} not pushed`, error);
        failed.push(name);
      }
    }
  };
  await Promise.all(Array.from({ length: PUSH_CONCURRENCY }, worker));
  if (failed.length > 0) {
    // The change is committed in D1; only the copy in some objects lags. 503 says "retry", and a
    // retry of the same request pushes again (the objects keep the highest revision).
    throw new IdentityError(
      "UNAVAILABLE",
      `the change is saved, but ${failed.length} of ${repos.length} repositories could not be ` +
        "updated yet: send the same request again",
    );
  }
  return repos.length;
}

function buildPolicy(
  repository: string,
  revision: number,
  retentionSeconds: number | undefined,
  rules: RuleRow[],
  prunes: PruneRow[],
): LifecyclePolicy {
  return {
    repository,
    namespace: namespaceOf(repository),
    revision,
    retentionMs:
      retentionSeconds === undefined ? DEFAULT_TAG_RETENTION_MS : retentionSeconds * 1000,
    immutableTags: [...new Set(rules.map((rule) => rule.tagPattern))].sort(),
    prune: prunes.map(
      (row): PruneRule =>
        row.method === "keep-count"
          ? { id: row.id, kind: "keep-count", count: row.value, tagPattern: row.tagPattern }
          : {
              id: row.id,
              kind: "older-than",
              olderThanMs: row.value * 1000,
              tagPattern: row.tagPattern,
            },
    ),
  };
}

/** Only the RPC is retried, and it is idempotent (the object keeps the highest revision). */
async function withRetries<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (attempt >= PUSH_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
    }
  }
}

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const map = new Map<string, T[]>();
  for (const item of items) {
    const list = map.get(key(item)) ?? [];
    list.push(item);
    map.set(key(item), list);
  }
  return map;
}

/** The statement every change is batched with. */
function bumpRevision(orm: Orm) {
  return orm
    .insert(lifecycleRevision)
    .values({ id: 1, revision: 1 })
    .onConflictDoUpdate({
      target: lifecycleRevision.id,
      set: { revision: sql`${lifecycleRevision.revision} + 1` },
    });
}

/** A user's own namespace may predate its row; rules and retention reference the row. */
function namespaceRow(orm: Orm, standing: NamespaceStanding) {
  return orm
    .insert(namespaces)
    .values({ name: standing.name, kind: standing.kind, createdAt: new Date() })
    .onConflictDoNothing();
}

// ---- authorization -------------------------------------------------------------------------

/** 404 unless the caller may see the namespace (its owner, a member of the organization). */
async function requireNamespaceReader(ctx: IdentityContext, namespace: string): Promise<void> {
  const standing = await namespaceStanding(ctx, namespace);
  if (!standing?.visible) throw notFound(`namespace ${namespace} not found`);
}

/** 404 unless the caller may pull from the repository (a private name does not leak). */
export async function requireRepositoryReader(
  ctx: IdentityContext,
  repository: string,
): Promise<void> {
  const access = await repositoryAccess(ctx.db, ctx.caller, repository);
  if (!access.exists || !(access.admin || access.actions.has("pull"))) {
    throw notFound(`repository ${repository} not found`);
  }
}

async function requireScopeReader(ctx: IdentityContext, scope: PolicyScope): Promise<void> {
  if ("namespace" in scope) await requireNamespaceReader(ctx, scope.namespace);
  else await requireRepositoryReader(ctx, scope.repository);
}

async function requireScopeAdmin(
  ctx: IdentityContext,
  scope: PolicyScope,
  purpose: string,
): Promise<NamespaceStanding | null> {
  if ("namespace" in scope) return requireNamespaceAdmin(ctx, scope.namespace, purpose);
  await requireRepositoryAdmin(ctx, scope.repository, purpose);
  return null;
}

async function pushScope(ctx: IdentityContext, objects: Objects, scope: PolicyScope) {
  if ("namespace" in scope) await pushNamespacePolicies(ctx.db, objects, scope.namespace);
  else await pushRepositoryPolicy(ctx.db, objects, scope.repository);
}

function where(scope: PolicyScope): { namespace: string; repository?: string } {
  return "namespace" in scope
    ? { namespace: scope.namespace }
    : { namespace: namespaceOf(scope.repository), repository: scope.repository };
}

// ---- retention window ----------------------------------------------------------------------

export async function getRetention(
  ctx: IdentityContext,
  namespace: string,
): Promise<RetentionView> {
  await requireNamespaceReader(ctx, namespace);
  const row = await ormOf(ctx)
    .select()
    .from(tagRetention)
    .where(eq(tagRetention.namespace, namespace))
    .get();
  return retentionView(namespace, row?.retentionSeconds);
}

/** Namespace administrators set the window (0 allowed: history is kept for no time at all). */
export async function setRetention(
  ctx: IdentityContext,
  objects: Objects,
  namespace: string,
  retentionMs: number,
): Promise<RetentionView> {
  const standing = await requireNamespaceAdmin(ctx, namespace, "set its tag retention");
  const orm = ormOf(ctx);
  const seconds = Math.round(retentionMs / 1000);
  const before = await orm
    .select()
    .from(tagRetention)
    .where(eq(tagRetention.namespace, namespace))
    .get();
  const now = new Date();
  await orm.batch([
    namespaceRow(orm, standing),
    orm
      .insert(tagRetention)
      .values({ namespace, retentionSeconds: seconds, updatedAt: now })
      .onConflictDoUpdate({
        target: tagRetention.namespace,
        set: { retentionSeconds: seconds, updatedAt: now },
      }),
    bumpRevision(orm),
  ]);
  const previous = before?.retentionSeconds ?? DEFAULT_TAG_RETENTION_MS / 1000;
  if (previous !== seconds) {
    emit(ctx, "tag-retention.set", {
      namespace,
      metadata: { from: formatDuration(previous * 1000), to: formatDuration(seconds * 1000) },
    });
  }
  // Pushed even when unchanged: repeating the request repairs a push that failed before.
  await pushNamespacePolicies(ctx.db, objects, namespace);
  return retentionView(namespace, seconds);
}

function retentionView(namespace: string, seconds: number | undefined): RetentionView {
  const value = seconds ?? DEFAULT_TAG_RETENTION_MS / 1000;
  return {
    namespace,
    retention: formatDuration(value * 1000),
    retentionSeconds: value,
    isDefault: seconds === undefined,
  };
}

// ---- immutability rules --------------------------------------------------------------------

/** A namespace's rules; for a repository, its own and those it inherits from its namespace. */
export async function listImmutabilityRules(
  ctx: IdentityContext,
  scope: PolicyScope,
): Promise<ImmutabilityRuleView[]> {
  await requireScopeReader(ctx, scope);
  const rows = await ormOf(ctx)
    .select()
    .from(immutabilityRules)
    .where(scopeFilter(immutabilityRules, scope))
    .orderBy(asc(immutabilityRules.createdAt), asc(immutabilityRules.id))
    .all();
  return rows.map(ruleView);
}

export async function addImmutabilityRule(
  ctx: IdentityContext,
  objects: Objects,
  scope: PolicyScope,
  tagPattern: string,
): Promise<ImmutabilityRuleView> {
  const standing = await requireScopeAdmin(ctx, scope, "manage its immutability rules");
  const orm = ormOf(ctx);
  const id = crypto.randomUUID();
  const now = Date.now();
  const owner = ownerColumns(scope);
  // The limit is checked by the insert itself, so concurrent additions cannot pass it together.
  const insert = ctx.db
    .prepare(
      `INSERT INTO immutability_rules (id, namespace, repository, tag_pattern, created_at)
       SELECT ?1, ?2, ?3, ?4, ?5
       WHERE (SELECT COUNT(*) FROM immutability_rules WHERE namespace IS ?2 AND repository IS ?3) < ?6`,
    )
    .bind(id, owner.namespace, owner.repository, tagPattern, now, MAX_IMMUTABILITY_RULES);
  const inserted = await guardedInsert(ctx, orm, standing, insert, () =>
    conflict(`an immutability rule ${JSON.stringify(tagPattern)} already exists here`),
  );
  if (!inserted) {
    throw conflict(
      `at most ${MAX_IMMUTABILITY_RULES} immutability rules per namespace or repository`,
    );
  }
  const rule: RuleRow = { id, ...owner, tagPattern, createdAt: new Date(now) };
  emitRule(ctx, "immutability-rule.create", scope, { id, tagPattern });
  await pushScope(ctx, objects, scope);
  return ruleView(rule);
}

export async function deleteImmutabilityRule(
  ctx: IdentityContext,
  objects: Objects,
  scope: PolicyScope,
  id: string,
): Promise<void> {
  await requireScopeAdmin(ctx, scope, "manage its immutability rules");
  const orm = ormOf(ctx);
  const [deleted] = await orm.batch([
    orm
      .delete(immutabilityRules)
      .where(and(eq(immutabilityRules.id, id), ownerFilter(immutabilityRules, scope)))
      .returning(),
    bumpRevision(orm),
  ]);
  const rule = deleted[0];
  if (!rule) throw notFound(`immutability rule ${id} not found`);
  emitRule(ctx, "immutability-rule.delete", scope, { id, tagPattern: rule.tagPattern });
  await pushScope(ctx, objects, scope);
}

// ---- prune policies ------------------------------------------------------------------------

export async function listPrunePolicies(
  ctx: IdentityContext,
  scope: PolicyScope,
): Promise<PrunePolicyView[]> {
  await requireScopeReader(ctx, scope);
  const rows = await ormOf(ctx)
    .select()
    .from(prunePolicies)
    .where(scopeFilter(prunePolicies, scope))
    .orderBy(asc(prunePolicies.createdAt), asc(prunePolicies.id))
    .all();
  return rows.map(pruneView);
}

export async function addPrunePolicy(
  ctx: IdentityContext,
  objects: Objects,
  scope: PolicyScope,
  input: PrunePolicyInput,
): Promise<PrunePolicyView> {
  const standing = await requireScopeAdmin(ctx, scope, "manage its prune policies");
  const orm = ormOf(ctx);
  const id = crypto.randomUUID();
  const now = Date.now();
  const owner = ownerColumns(scope);
  const value = input.method === "keep-count" ? input.count : input.seconds;
  const insert = ctx.db
    .prepare(
      `INSERT INTO prune_policies (id, namespace, repository, method, value, tag_pattern, created_at)
       SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
       WHERE (SELECT COUNT(*) FROM prune_policies WHERE namespace IS ?2 AND repository IS ?3) < ?8`,
    )
    .bind(
      id,
      owner.namespace,
      owner.repository,
      input.method,
      value,
      input.tagPattern,
      now,
      MAX_PRUNE_POLICIES,
    );
  const inserted = await guardedInsert(ctx, orm, standing, insert);
  if (!inserted) {
    throw conflict(`at most ${MAX_PRUNE_POLICIES} prune policies per namespace or repository`);
  }
  const row: PruneRow = {
    id,
    ...owner,
    method: input.method,
    value,
    tagPattern: input.tagPattern,
    createdAt: new Date(now),
  };
  const view = pruneView(row);
  emitRule(ctx, "prune-policy.create", scope, {
    id,
    method: view.method,
    keepCount: view.keepCount,
    olderThan: view.olderThan,
    tagPattern: view.tagPattern,
  });
  await pushScope(ctx, objects, scope);
  return view;
}

export async function deletePrunePolicy(
  ctx: IdentityContext,
  objects: Objects,
  scope: PolicyScope,
  id: string,
): Promise<void> {
  await requireScopeAdmin(ctx, scope, "manage its prune policies");
  const orm = ormOf(ctx);
  const [deleted] = await orm.batch([
    orm
      .delete(prunePolicies)
      .where(and(eq(prunePolicies.id, id), ownerFilter(prunePolicies, scope)))
      .returning(),
    bumpRevision(orm),
  ]);
  if (!deleted[0]) throw notFound(`prune policy ${id} not found`);
  emitRule(ctx, "prune-policy.delete", scope, { id });
  await pushScope(ctx, objects, scope);
}

// ---- shared pieces -------------------------------------------------------------------------

/** Runs a conditional insert with the revision bump; false when its condition kept it out. */
async function guardedInsert(
  ctx: IdentityContext,
  orm: Orm,
  standing: NamespaceStanding | null,
  insert: D1PreparedStatement,
  duplicate?: () => IdentityError,
): Promise<boolean> {
  if (standing && !standing.stored) await namespaceRow(orm, standing).run();
  try {
    const [result] = await ctx.db.batch([insert, bumpStatement(ctx.db)]);
    return (result?.meta.changes ?? 0) > 0;
  } catch (error) {
    if (duplicate && isUniqueViolation(error)) throw duplicate();
    throw error;
  }
}

function bumpStatement(db: D1Database): D1PreparedStatement {
  return db.prepare(
    `INSERT INTO lifecycle_revision (id, revision) VALUES (1, 1)
     ON CONFLICT (id) DO UPDATE SET revision = revision + 1`,
  );
}

function ownerColumns(scope: PolicyScope): { namespace: string | null; repository: string | null } {
  return "namespace" in scope
    ? { namespace: scope.namespace, repository: null }
    : { namespace: null, repository: scope.repository };
}

type ScopedTable = typeof immutabilityRules | typeof prunePolicies;

/** Rows owned by exactly this scope (what it may delete). */
function ownerFilter(table: ScopedTable, scope: PolicyScope) {
  return "namespace" in scope
    ? and(eq(table.namespace, scope.namespace), isNull(table.repository))
    : eq(table.repository, scope.repository);
}

/** Rows that apply to the scope: a repository inherits its namespace's. */
function scopeFilter(table: ScopedTable, scope: PolicyScope) {
  return "namespace" in scope
    ? eq(table.namespace, scope.namespace)
    : or(
        eq(table.repository, scope.repository),
        eq(table.namespace, namespaceOf(scope.repository)),
      );
}

function emitRule(
  ctx: IdentityContext,
  kind: EventKind,
  scope: PolicyScope,
  metadata: Record<string, unknown>,
): void {
  emit(ctx, kind, { ...where(scope), metadata });
}

function ruleView(row: RuleRow): ImmutabilityRuleView {
  return {
    id: row.id,
    scope: row.repository === null ? "namespace" : "repository",
    namespace: row.namespace ?? namespaceOf(row.repository!),
    repository: row.repository,
    tagPattern: row.tagPattern,
    createdAt: row.createdAt.toISOString(),
  };
}

function pruneView(row: PruneRow): PrunePolicyView {
  const older = row.method === "older-than";
  return {
    id: row.id,
    scope: row.repository === null ? "namespace" : "repository",
    namespace: row.namespace ?? namespaceOf(row.repository!),
    repository: row.repository,
    method: row.method,
    keepCount: older ? null : row.value,
    olderThan: older ? formatDuration(row.value * 1000) : null,
    olderThanSeconds: older ? row.value : null,
    tagPattern: row.tagPattern,
    createdAt: row.createdAt.toISOString(),
  };
}
