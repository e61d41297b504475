// D1 tables (drizzle): identities and policy. Users, organizations, teams, robots, app tokens,
// repositories with visibility and state, per-repository permissions, default permissions for
// new repositories of an organization, and the audit log.
import { sql } from "drizzle-orm";
import {
  check,
  index,
  integer,
  primaryKey,
  sqliteTable,
  text,
  uniqueIndex,
} from "drizzle-orm/sqlite-core";
import { BUILD_TRIGGER_PROVIDERS, type RefFilter } from "../build-triggers.ts";

const createdAt = () =>
  integer("created_at", { mode: "timestamp_ms" })
    .notNull()
    .default(sql`(unixepoch('subsec') * 1000)`);

/** People. A user's own namespace is their username. */
export const users = sqliteTable("users", {
  id: text("id").primaryKey(),
  username: text("username").notNull().unique(),
  email: text("email"),
  /** PBKDF2-SHA256: `pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>`. */
  passwordHash: text("password_hash"),
  superuser: integer("superuser", { mode: "boolean" }).notNull().default(false),
  disabled: integer("disabled", { mode: "boolean" }).notNull().default(false),
  createdAt: createdAt(),
});

/** Every namespace: a user's (kind "user", same name) or an organization's (kind "org"). */
export const namespaces = sqliteTable("namespaces", {
  name: text("name").primaryKey(),
  kind: text("kind", { enum: ["user", "org"] }).notNull(),
  createdAt: createdAt(),
});

export const TEAM_ROLES = ["member", "creator", "admin"] as const;
export type TeamRole = (typeof TEAM_ROLES)[number];

/** Teams inside organizations: admin teams administer every repository of the organization;
 * creator teams may create repositories; member teams get what permissions grant them. */
export const teams = sqliteTable(
  "teams",
  {
    id: text("id").primaryKey(),
    org: text("org")
      .notNull()
      .references(() => namespaces.name, { onDelete: "cascade" }),
    name: text("name").notNull(),
    role: text("role", { enum: TEAM_ROLES }).notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("teams_org_name").on(t.org, t.name)],
);

export const teamMembers = sqliteTable(
  "team_members",
  {
    teamId: text("team_id")
      .notNull()
      .references(() => teams.id, { onDelete: "cascade" }),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
  },
  (t) => [primaryKey({ columns: [t.teamId, t.userId] }), index("team_members_user").on(t.userId)],
);

/** Robot accounts, named `<namespace>+<shortname>`, authenticating with a secret token. */
export const robots = sqliteTable(
  "robots",
  {
    id: text("id").primaryKey(),
    namespace: text("namespace")
      .notNull()
      .references(() => namespaces.name, { onDelete: "cascade" }),
    shortname: text("shortname").notNull(),
    description: text("description"),
    /** SHA-256 of the token (tokens are random 32-byte secrets: no slow hash needed). */
    tokenHash: text("token_hash").notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("robots_namespace_shortname").on(t.namespace, t.shortname)],
);

/** Personal app tokens for CLI and API use: shown once, stored as a SHA-256 hash. */
export const appTokens = sqliteTable(
  "app_tokens",
  {
    id: text("id").primaryKey(),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    tokenHash: text("token_hash").notNull().unique(),
    createdAt: createdAt(),
    lastUsedAt: integer("last_used_at", { mode: "timestamp_ms" }),
    expiresAt: integer("expires_at", { mode: "timestamp_ms" }),
    revokedAt: integer("revoked_at", { mode: "timestamp_ms" }),
  },
  (t) => [index("app_tokens_user").on(t.userId)],
);

export const VISIBILITIES = ["private", "public"] as const;
export type Visibility = (typeof VISIBILITIES)[number];
export const REPOSITORY_STATES = ["normal", "read-only"] as const;
export type RepositoryState = (typeof REPOSITORY_STATES)[number];

/** Every repository; `_catalog` pages through it by name. */
export const repositories = sqliteTable(
  "repositories",
  {
    name: text("name").primaryKey(),
    namespace: text("namespace").notNull().default(""),
    visibility: text("visibility", { enum: VISIBILITIES }).notNull().default("private"),
    state: text("state", { enum: REPOSITORY_STATES }).notNull().default("normal"),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [index("repositories_namespace").on(t.namespace, t.name)],
);

export const PERMISSION_ROLES = ["read", "write", "admin"] as const;
export type PermissionRole = (typeof PERMISSION_ROLES)[number];
export const PRINCIPAL_KINDS = ["user", "team", "robot"] as const;
export type PrincipalKind = (typeof PRINCIPAL_KINDS)[number];

/** read → pull; write → pull, push; admin → pull, push, delete and managing the repository. */
export const permissions = sqliteTable(
  "permissions",
  {
    repository: text("repository")
      .notNull()
      .references(() => repositories.name, { onDelete: "cascade" }),
    principalKind: text("principal_kind", { enum: PRINCIPAL_KINDS }).notNull(),
    principalId: text("principal_id").notNull(),
    role: text("role", { enum: PERMISSION_ROLES }).notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.repository, t.principalKind, t.principalId] }),
    index("permissions_principal").on(t.principalKind, t.principalId),
  ],
);

/** Granted on every repository created in the organization from then on. */
export const defaultPermissions = sqliteTable(
  "default_permissions",
  {
    org: text("org")
      .notNull()
      .references(() => namespaces.name, { onDelete: "cascade" }),
    principalKind: text("principal_kind", { enum: PRINCIPAL_KINDS }).notNull(),
    principalId: text("principal_id").notNull(),
    role: text("role", { enum: PERMISSION_ROLES }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.org, t.principalKind, t.principalId] })],
);

/** Who did what, where, when, from which address. Written from the event queue. */
export const auditLog = sqliteTable(
  "audit_log",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    at: integer("at", { mode: "timestamp_ms" }).notNull(),
    kind: text("kind").notNull(),
    namespace: text("namespace"),
    repository: text("repository"),
    actorKind: text("actor_kind", {
      enum: ["user", "robot", "token", "anonymous", "build", "system"],
    }),
    actor: text("actor"),
    clientIp: text("client_ip"),
    /** Deduplicates redelivered queue messages. */
    eventId: text("event_id").notNull().unique(),
    metadata: text("metadata", { mode: "json" }),
  },
  (t) => [
    index("audit_namespace_at").on(t.namespace, t.at),
    index("audit_repository_at").on(t.repository, t.at),
    index("audit_kind_at").on(t.kind, t.at),
    index("audit_at").on(t.at),
  ],
);

/** Manifest pulls per repository and UTC day. */
export const pullCounts = sqliteTable(
  "pull_counts",
  {
    repository: text("repository").notNull(),
    day: text("day").notNull(),
    count: integer("count").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.repository, t.day] })],
);

/**
 * Build triggers: a git repository whose pushes build an image into `repository` (see
 * schema/build-triggers.ts for the ref filter and tag template grammar). The webhook secret is
 * stored sealed (AES-GCM, workers/registry/services/webhook-secrets.ts): the hooks Worker needs it
 * back as an HMAC key, so it cannot be a hash.
 */
export const buildTriggers = sqliteTable(
  "build_triggers",
  {
    id: text("id").primaryKey(),
    repository: text("repository")
      .notNull()
      .references(() => repositories.name, { onDelete: "cascade" }),
    provider: text("provider", { enum: BUILD_TRIGGER_PROVIDERS }).notNull(),
    cloneUrl: text("clone_url").notNull(),
    dockerfilePath: text("dockerfile_path").notNull(),
    contextDir: text("context_dir").notNull(),
    refFilter: text("ref_filter", { mode: "json" }).$type<RefFilter>().notNull(),
    tagTemplates: text("tag_templates", { mode: "json" }).$type<string[]>().notNull(),
    /** Used by `@default` templates when the push does not name its default branch. */
    defaultBranch: text("default_branch"),
    enabled: integer("enabled", { mode: "boolean" }).notNull().default(true),
    secretSealed: text("secret_sealed").notNull(),
    /** The administrator who last configured it: webhook builds pull with their rights. */
    ownerId: text("owner_id").references(() => users.id, { onDelete: "set null" }),
    createdAt: createdAt(),
    updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [index("build_triggers_repository").on(t.repository, t.id)],
);

/** Webhook deliveries seen per trigger, so a replayed delivery id is refused until it expires. */
export const hookDeliveries = sqliteTable(
  "hook_deliveries",
  {
    triggerId: text("trigger_id")
      .notNull()
      .references(() => buildTriggers.id, { onDelete: "cascade" }),
    deliveryId: text("delivery_id").notNull(),
    receivedAt: integer("received_at", { mode: "timestamp_ms" }).notNull(),
    expiresAt: integer("expires_at", { mode: "timestamp_ms" }).notNull(),
    /** The build the delivery requested; null when it was ignored (filter, deletion, ping). */
    buildId: text("build_id"),
  },
  (t) => [
    primaryKey({ columns: [t.triggerId, t.deliveryId] }),
    index("hook_deliveries_expires").on(t.expiresAt),
  ],
);

/**
 * Builds, newest first per repository: the registry-wide index the builds API lists. Written
 * once by the `builds` queue consumer (idempotent by id); the build's BuildObject owns its live
 * state (phases, logs) and mirrors phase, attempts, host, digest and error here.
 */
export const builds = sqliteTable(
  "builds",
  {
    id: text("id").primaryKey(),
    repository: text("repository")
      .notNull()
      .references(() => repositories.name, { onDelete: "cascade" }),
    triggerId: text("trigger_id"),
    /** schema/builds.ts BuildPhase. */
    phase: text("phase").notNull(),
    /** schema/builds.ts BuildSource. */
    source: text("source", { mode: "json" }).notNull(),
    dockerfilePath: text("dockerfile_path").notNull(),
    contextDir: text("context_dir").notNull(),
    tags: text("tags", { mode: "json" }).$type<string[]>().notNull(),
    /** schema/events.ts EventActor: whose pull rights the build has. */
    requestedBy: text("requested_by", { mode: "json" }).notNull(),
    queuedAt: integer("queued_at", { mode: "timestamp_ms" }).notNull(),
    startedAt: integer("started_at", { mode: "timestamp_ms" }),
    finishedAt: integer("finished_at", { mode: "timestamp_ms" }),
    /** Fleet hosts the build was dispatched to. */
    attempts: integer("attempts").notNull().default(0),
    digest: text("digest"),
    error: text("error"),
    /** The fleet host of the latest attempt. */
    host: text("host"),
  },
  (t) => [index("builds_repository_queued").on(t.repository, t.queuedAt, t.id)],
);

/**
 * Credentials fleet hosts connect with (`Authorization: Bearer erf_…` on /fleet/v1/connect):
 * made by superusers, shown once, stored as a SHA-256 hash, revoked by stamping `revokedAt`.
 */
export const fleetCredentials = sqliteTable("fleet_credentials", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  tokenHash: text("token_hash").notNull().unique(),
  createdBy: text("created_by").references(() => users.id, { onDelete: "set null" }),
  createdAt: createdAt(),
  lastUsedAt: integer("last_used_at", { mode: "timestamp_ms" }),
  revokedAt: integer("revoked_at", { mode: "timestamp_ms" }),
});

// ---- tag lifecycle policy (services/lifecycle-policy.ts pushes the effective policy of each
// repository into its RepositoryObject; D1 is the source of truth) --------------------------

/** A namespace's time machine window: how long ended tag lifetimes stay restorable. */
export const tagRetention = sqliteTable("tag_retention", {
  namespace: text("namespace")
    .primaryKey()
    .references(() => namespaces.name, { onDelete: "cascade" }),
  retentionSeconds: integer("retention_seconds").notNull(),
  updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
});

/**
 * Immutable tag patterns (schema/lifecycle.ts: SQLite GLOB syntax), for every repository of a
 * namespace or for one repository: exactly one of the two is set.
 */
export const immutabilityRules = sqliteTable(
  "immutability_rules",
  {
    id: text("id").primaryKey(),
    namespace: text("namespace").references(() => namespaces.name, { onDelete: "cascade" }),
    repository: text("repository").references(() => repositories.name, { onDelete: "cascade" }),
    tagPattern: text("tag_pattern").notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("immutability_rules_namespace").on(t.namespace, t.tagPattern),
    uniqueIndex("immutability_rules_repository").on(t.repository, t.tagPattern),
    check("immutability_rules_scope", sql`(namespace IS NULL) <> (repository IS NULL)`),
  ],
);

export const PRUNE_METHODS = ["keep-count", "older-than"] as const;
export type PruneMethod = (typeof PRUNE_METHODS)[number];

/**
 * Auto-prune policies, for every repository of a namespace or for one repository. `value` is
 * the number of tags kept (keep-count) or the age in seconds (older-than).
 */
export const prunePolicies = sqliteTable(
  "prune_policies",
  {
    id: text("id").primaryKey(),
    namespace: text("namespace").references(() => namespaces.name, { onDelete: "cascade" }),
    repository: text("repository").references(() => repositories.name, { onDelete: "cascade" }),
    method: text("method", { enum: PRUNE_METHODS }).notNull(),
    value: integer("value").notNull(),
    tagPattern: text("tag_pattern"),
    createdAt: createdAt(),
  },
  (t) => [
    index("prune_policies_namespace").on(t.namespace),
    index("prune_policies_repository").on(t.repository),
    check("prune_policies_scope", sql`(namespace IS NULL) <> (repository IS NULL)`),
  ],
);

/**
 * One row: bumped in the same transaction as every lifecycle policy change and read with the
 * policy, so a RepositoryObject can tell a newer policy from a late older one.
 */
export const lifecycleRevision = sqliteTable("lifecycle_revision", {
  id: integer("id").primaryKey(),
  revision: integer("revision").notNull(),
});
