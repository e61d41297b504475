// Namespace quotas in the management API: who may see them (the namespace's members and admins,
// superusers; anyone else is told it does not exist) and who may change them (superusers only:
// a quota bounds what an organization's own admins may store), with every change audited.
import type { QuotaView } from "../../../schema/rpc.ts";
import type { ObjectDirectory } from "../storage/repository-stubs.ts";
import { emit, type IdentityContext, namespaceStanding } from "./identity/context.ts";
import { forbidden, notFound } from "./identity/errors.ts";

export interface QuotaSettings {
  limitBytes: number;
  /** Percent of the limit at which `quota.warning` is announced; unchanged when absent. */
  warningPercent?: number;
}

export async function describeQuota(
  ctx: IdentityContext,
  objects: ObjectDirectory,
  namespace: string,
): Promise<QuotaView> {
  await requireVisible(ctx, namespace);
  return objects.namespace(namespace).describe();
}

export async function setQuota(
  ctx: IdentityContext,
  objects: ObjectDirectory,
  namespace: string,
  settings: QuotaSettings,
): Promise<QuotaView> {
  await requireSuperuser(ctx, namespace);
  const view = await objects
    .namespace(namespace)
    .setLimit(settings.limitBytes, settings.warningPercent ?? null);
  emit(ctx, "quota.set", {
    namespace,
    metadata: { limitBytes: view.limitBytes, warningPercent: view.warningPercent },
  });
  return view;
}

/** Removes the namespace's limit; usage stays counted. Removing none changes (and audits) nothing. */
export async function removeQuota(
  ctx: IdentityContext,
  objects: ObjectDirectory,
  namespace: string,
): Promise<void> {
  await requireSuperuser(ctx, namespace);
  const { removed } = await objects.namespace(namespace).clearLimit();
  if (removed) emit(ctx, "quota.delete", { namespace });
}

async function requireVisible(ctx: IdentityContext, namespace: string): Promise<void> {
  const standing = await namespaceStanding(ctx, namespace);
  if (!standing?.visible) throw notFound(`namespace ${namespace} not found`);
}

async function requireSuperuser(ctx: IdentityContext, namespace: string): Promise<void> {
  await requireVisible(ctx, namespace);
  if (!ctx.caller.superuser) throw forbidden("only superusers may change storage quotas");
}
