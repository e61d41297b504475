// Build triggers of a repository, for its administrators: made, listed, changed, deleted, and
// their webhook secret regenerated. The secret is shown once (on create and regenerate) and kept
// only sealed (webhook-secrets.ts). Settings arrive validated against schema/build-triggers.ts.
import { and, asc, eq, gt } from "drizzle-orm";
import type { BuildTriggerProvider, RefFilter } from "../../../schema/build-triggers.ts";
import { buildTriggers } from "../../../schema/db/d1.ts";
import { namespaceOf } from "../auth/access.ts";
import { emit, type IdentityContext, ormOf, requireRepositoryAdmin } from "./identity/context.ts";
import { notFound } from "./identity/errors.ts";
import { type Page, type PageRequest, toPage } from "./identity/pagination.ts";
import { newWebhookSecret, sealWebhookSecret } from "./webhook-secrets.ts";

/** What an administrator may change (the provider is fixed: it is part of the webhook URL). */
export interface TriggerSettings {
  cloneUrl: string;
  dockerfilePath: string;
  contextDir: string;
  refFilter: RefFilter;
  tagTemplates: string[];
  defaultBranch: string | null;
  enabled: boolean;
}

export interface TriggerView extends TriggerSettings {
  id: string;
  repository: string;
  provider: BuildTriggerProvider;
  /** Where the provider sends its webhooks, on the hooks Worker's origin. */
  webhookPath: string;
  createdAt: string;
  updatedAt: string;
}

/** The key that seals webhook secrets (the WEBHOOK_SECRET_KEY binding). */
export interface SecretSealing {
  webhookSecretKey: string | undefined;
}

export async function createTrigger(
  ctx: IdentityContext,
  sealing: SecretSealing,
  repository: string,
  input: TriggerSettings & { provider: BuildTriggerProvider },
): Promise<TriggerView & { secret: string }> {
  await requireRepositoryAdmin(ctx, repository, "manage its build triggers");
  const id = crypto.randomUUID();
  const secret = newWebhookSecret();
  const now = new Date();
  const row: typeof buildTriggers.$inferSelect = {
    id,
    repository,
    ...input,
    secretSealed: await sealWebhookSecret(sealing.webhookSecretKey, id, secret),
    ownerId: ctx.caller.id,
    createdAt: now,
    updatedAt: now,
  };
  try {
    await ormOf(ctx).insert(buildTriggers).values(row).run();
  } catch (error) {
    // The repository was deleted between the check above and the insert.
    if (/FOREIGN KEY constraint failed/i.test(String(error))) {
      throw notFound(`repository ${repository} not found`);
    }
    throw error;
  }
  emit(ctx, "trigger.create", {
    namespace: namespaceOf(repository),
    repository,
    metadata: { trigger: id, ...auditedSettings(row) },
  });
  return { ...triggerView(row), secret };
}

export async function listTriggers(
  ctx: IdentityContext,
  repository: string,
  page: PageRequest,
): Promise<Page<TriggerView>> {
  await requireRepositoryAdmin(ctx, repository, "see its build triggers");
  const rows = await ormOf(ctx)
    .select()
    .from(buildTriggers)
    .where(
      and(
        eq(buildTriggers.repository, repository),
        page.after ? gt(buildTriggers.id, page.after[0]!) : undefined,
      ),
    )
    .orderBy(asc(buildTriggers.id))
    .limit(page.limit + 1)
    .all();
  return toPage(rows, page.limit, (row) => [row.id], triggerView);
}

export async function describeTrigger(
  ctx: IdentityContext,
  repository: string,
  id: string,
): Promise<TriggerView> {
  await requireRepositoryAdmin(ctx, repository, "see its build triggers");
  return triggerView(await findTrigger(ctx, repository, id));
}

/** Applies the changes; the caller becomes the trigger's owner (builds pull with their rights). */
export async function updateTrigger(
  ctx: IdentityContext,
  repository: string,
  id: string,
  changes: Partial<TriggerSettings>,
): Promise<TriggerView> {
  await requireRepositoryAdmin(ctx, repository, "manage its build triggers");
  const before = await findTrigger(ctx, repository, id);
  const changed = Object.keys(changes).filter(
    (key) =>
      JSON.stringify(changes[key as keyof TriggerSettings]) !==
      JSON.stringify(before[key as keyof TriggerSettings]),
  );
  if (changed.length === 0) return triggerView(before);
  const [after] = await ormOf(ctx)
    .update(buildTriggers)
    .set({ ...changes, ownerId: ctx.caller.id, updatedAt: new Date() })
    .where(and(eq(buildTriggers.id, id), eq(buildTriggers.repository, repository)))
    .returning()
    .all();
  if (!after) throw notFound(`build trigger ${id} not found in ${repository}`);
  emit(ctx, "trigger.update", {
    namespace: namespaceOf(repository),
    repository,
    metadata: { trigger: id, changed, ...auditedSettings(after) },
  });
  return triggerView(after);
}

/** Deletes the trigger; its webhook URL answers 404 from then on. */
export async function deleteTrigger(
  ctx: IdentityContext,
  repository: string,
  id: string,
): Promise<void> {
  await requireRepositoryAdmin(ctx, repository, "manage its build triggers");
  const deleted = await ormOf(ctx)
    .delete(buildTriggers)
    .where(and(eq(buildTriggers.id, id), eq(buildTriggers.repository, repository)))
    .returning({ provider: buildTriggers.provider })
    .all();
  if (deleted.length === 0) throw notFound(`build trigger ${id} not found in ${repository}`);
  emit(ctx, "trigger.delete", {
    namespace: namespaceOf(repository),
    repository,
    metadata: { trigger: id, provider: deleted[0]!.provider },
  });
}

/** Replaces the webhook secret: hooks signed with the old one are refused at once. */
export async function regenerateTriggerSecret(
  ctx: IdentityContext,
  sealing: SecretSealing,
  repository: string,
  id: string,
): Promise<TriggerView & { secret: string }> {
  await requireRepositoryAdmin(ctx, repository, "manage its build triggers");
  await findTrigger(ctx, repository, id);
  const secret = newWebhookSecret();
  const [after] = await ormOf(ctx)
    .update(buildTriggers)
    .set({
      secretSealed: await sealWebhookSecret(sealing.webhookSecretKey, id, secret),
      updatedAt: new Date(),
    })
    .where(and(eq(buildTriggers.id, id), eq(buildTriggers.repository, repository)))
    .returning()
    .all();
  if (!after) throw notFound(`build trigger ${id} not found in ${repository}`);
  emit(ctx, "trigger.secret.regenerate", {
    namespace: namespaceOf(repository),
    repository,
    metadata: { trigger: id },
  });
  return { ...triggerView(after), secret };
}

// ---- internals -------------------------------------------------------------------------------

type TriggerRow = typeof buildTriggers.$inferSelect;

async function findTrigger(
  ctx: IdentityContext,
  repository: string,
  id: string,
): Promise<TriggerRow> {
  const row = await ormOf(ctx)
    .select()
    .from(buildTriggers)
    .where(and(eq(buildTriggers.id, id), eq(buildTriggers.repository, repository)))
    .get();
  if (!row) throw notFound(`build trigger ${id} not found in ${repository}`);
  return row;
}

/** Everything but the sealed secret: what the audit log records of a trigger. */
function auditedSettings(row: TriggerRow): Record<string, unknown> {
  return {
    provider: row.provider,
    cloneUrl: row.cloneUrl,
    dockerfilePath: row.dockerfilePath,
    contextDir: row.contextDir,
    refFilter: row.refFilter,
    tagTemplates: row.tagTemplates,
    defaultBranch: row.defaultBranch,
    enabled: row.enabled,
  };
}

function triggerView(row: TriggerRow): TriggerView {
  return {
    id: row.id,
    repository: row.repository,
    provider: row.provider,
    cloneUrl: row.cloneUrl,
    dockerfilePath: row.dockerfilePath,
    contextDir: row.contextDir,
    refFilter: row.refFilter,
    tagTemplates: row.tagTemplates,
    defaultBranch: row.defaultBranch,
    enabled: row.enabled,
    webhookPath: `/hooks/${row.provider}/${row.id}`,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}
