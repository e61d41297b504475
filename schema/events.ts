// Events sent on the `registry-events` queue after a state change commits. The consumer writes
// them to the audit log (and, later, notifications and replication read the same stream).

export type ActorKind = "user" | "robot" | "token" | "anonymous" | "build";

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
  | "login.failed";

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
