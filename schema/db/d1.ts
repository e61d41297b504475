// D1 tables (drizzle): identities and policy. Users, organizations, teams, robots, app tokens,
// repositories with visibility and state, per-repository permissions, default permissions for
// new repositories of an organization, and the audit log.
import { sql } from "drizzle-orm";
import {
  index,
  integer,
  primaryKey,
  sqliteTable,
  text,
  uniqueIndex,
} from "drizzle-orm/sqlite-core";

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
    actorKind: text("actor_kind", { enum: ["user", "robot", "token", "anonymous", "build"] }),
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
