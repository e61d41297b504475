// Events sent on the `registry-events` queue after a state change commits. The consumer writes
// them to the audit log (and, later, notifications and replication read the same stream).

/** "system": the registry itself, with no request behind it (e.g. a quota threshold crossed). */
export type ActorKind = "user" | "robot" | "token" | "anonymous" | "build" | "system";

export interface EventActor {
  kind: ActorKind;
  /** Username, `namespace+robot`, or the user behind an app token. */
  name?: string;
  id?: string;
}

export type EventKind =
  | "manifest.push"
  | "manifest.pull"
  | "manifest.delete"
  | "tag.push"
  | "tag.delete"
  | "blob.delete"
  | "repository.create"
  | "repository.delete"
  | "repository.visibility"
  | "repository.state"
  | "permission.grant"
  | "permission.revoke"
  | "default-permission.grant"
  | "default-permission.revoke"
  | "organization.create"
  | "organization.delete"
  | "team.create"
  | "team.update"
  | "team.delete"
  | "team.member.add"
  | "team.member.remove"
  | "robot.create"
  | "robot.delete"
  | "robot.token.regenerate"
  | "user.create"
  | "user.update"
  | "token.create"
  | "token.revoke"
  | "login.failed"
  // Tag lifecycle (tag-lifecycle.ts, services/lifecycle-policy.ts): the time machine, expiry,
  // auto-prune (expire and prune are batched, by the "system" actor) and the policies.
  | "tag.restore"
  | "tag.history.delete"
  | "tag.expiry"
  | "tag.expire"
  | "tag.prune"
  // Garbage collection (gc-collector.ts, blob-ref-object.ts), by the "system" actor: a manifest
  // nothing keeps, blob links no manifest references (batched), blobs swept from R2 (batched).
  | "manifest.collect"
  | "blob.unlink"
  | "blob.collect"
  | "tag-retention.set"
  | "immutability-rule.create"
  | "immutability-rule.delete"
  | "prune-policy.create"
  | "prune-policy.delete"
  | "quota.set"
  | "quota.delete"
  | "quota.warning"
  | "quota.exceeded"
  | "trigger.create"
  | "trigger.update"
  | "trigger.delete"
  | "trigger.secret.regenerate"
  /** A webhook refused for its signature, age or delivery id (hooks Worker); nothing changed. */
  | "hook.rejected"
  /** A build put on the `builds` queue, by a webhook or a manual upload. */
  | "build.requested"
  // Dispatch (BuildObject, BuildCoordinator): the end of a build (for notifications), a retry
  // after a fleet host was lost, and the fleet credentials superusers manage.
  | "build.complete"
  | "build.failed"
  | "build.cancelled"
  | "build.retry"
  | "fleet-credential.create"
  | "fleet-credential.revoke";

export interface RegistryEvent {
  /** Unique per event: the consumer stores each id once, so a redelivery is harmless. */
  id: string;
  /** Milliseconds since the epoch, when the change committed. */
  at: number;
  kind: EventKind;
  namespace?: string;
  repository?: string;
  actor: EventActor;
  clientIp?: string;
  metadata?: Record<string, unknown>;
}
