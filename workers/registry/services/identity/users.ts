// User accounts: creation by superusers (with the user's namespace), the caller's own profile,
// and password changes, which require the current password and drop cached credentials.
import { asc, eq } from "drizzle-orm";
import { namespaces, teamMembers, teams, users } from "../../../../schema/db/d1.ts";
import { hashPassword, verifyPassword } from "../../auth/passwords.ts";
import { forgetCachedCredentials } from "../../auth/principals.ts";
import { emit, type IdentityContext, ormOf } from "./context.ts";
import { conflict, forbidden, IdentityError, isUniqueViolation, notFound } from "./errors.ts";

export interface UserView {
  username: string;
  email: string | null;
  superuser: boolean;
  createdAt: string;
}

export interface MeView extends UserView {
  /** How this request authenticated. */
  authenticatedWith: "password" | "token";
  organizations: { name: string; role: "member" | "creator" | "admin" }[];
}

export async function createUser(
  ctx: IdentityContext,
  input: { username: string; email?: string; password: string; superuser?: boolean },
): Promise<UserView> {
  if (!ctx.caller.superuser) throw forbidden("only superusers may create users");
  const orm = ormOf(ctx);
  const taken = await orm
    .select({ kind: namespaces.kind })
    .from(namespaces)
    .where(eq(namespaces.name, input.username))
    .get();
  const existing = await orm
    .select({ id: users.id })
    .from(users)
    .where(eq(users.username, input.username))
    .get();
  if (taken || existing) {
    throw conflict(
      `the name ${input.username} is taken by ${taken?.kind === "org" ? "an organization" : "a user"}`,
    );
  }
  const id = crypto.randomUUID();
  const passwordHash = await hashPassword(input.password);
  const now = new Date();
  try {
    // One batch is one D1 transaction: the user and their namespace appear together.
    await orm.batch([
      orm.insert(users).values({
        id,
        username: input.username,
        email: input.email ?? null,
        passwordHash,
        superuser: input.superuser ?? false,
        createdAt: now,
      }),
      orm.insert(namespaces).values({ name: input.username, kind: "user", createdAt: now }),
    ]);
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`the name ${input.username} is taken`);
    throw error;
  }
  emit(ctx, "user.create", {
    namespace: input.username,
    metadata: { username: input.username, superuser: input.superuser ?? false },
  });
  return {
    username: input.username,
    email: input.email ?? null,
    superuser: input.superuser ?? false,
    createdAt: now.toISOString(),
  };
}

export async function describeMe(ctx: IdentityContext): Promise<MeView> {
  const orm = ormOf(ctx);
  const user = await orm.select().from(users).where(eq(users.id, ctx.caller.id)).get();
  if (!user) throw notFound("your account no longer exists");
  const memberships = await orm
    .select({ org: teams.org, role: teams.role })
    .from(teamMembers)
    .innerJoin(teams, eq(teams.id, teamMembers.teamId))
    .where(eq(teamMembers.userId, user.id))
    .orderBy(asc(teams.org))
    .all();
  const rank = { member: 0, creator: 1, admin: 2 } as const;
  const organizations = new Map<string, "member" | "creator" | "admin">();
  for (const { org, role } of memberships) {
    const current = organizations.get(org);
    if (!current || rank[role] > rank[current]) organizations.set(org, role);
  }
  return {
    ...userView(user),
    authenticatedWith: ctx.caller.tokenId ? "token" : "password",
    organizations: [...organizations].map(([name, role]) => ({ name, role })),
  };
}

/** Changes the caller's password and/or email; the current password is always required. */
export async function updateMe(
  ctx: IdentityContext,
  input: { currentPassword: string; newPassword?: string; email?: string | null },
): Promise<UserView> {
  const orm = ormOf(ctx);
  const user = await orm.select().from(users).where(eq(users.id, ctx.caller.id)).get();
  if (!user) throw notFound("your account no longer exists");
  if (!user.passwordHash || !(await verifyPassword(input.currentPassword, user.passwordHash))) {
    ctx.events.emit({
      kind: "login.failed",
      actor: { kind: "user", name: user.username, id: user.id },
      ...(ctx.clientIp ? { clientIp: ctx.clientIp } : {}),
      metadata: { via: "management-api", reason: "wrong current password" },
    });
    throw new IdentityError("FORBIDDEN", "the current password is wrong");
  }
  const changes: Partial<typeof users.$inferInsert> = {};
  if (input.newPassword !== undefined) changes.passwordHash = await hashPassword(input.newPassword);
  if (input.email !== undefined) changes.email = input.email;
  const fields = Object.keys(changes).map((key) => (key === "passwordHash" ? "password" : key));
  if (fields.length === 0) return userView(user);
  const updated = await orm
    .update(users)
    .set(changes)
    .where(eq(users.id, user.id))
    .returning()
    .get();
  if (!updated) throw notFound("your account no longer exists");
  // The registry's Basic path remembers verified passwords for a few seconds: forget them now.
  if (changes.passwordHash) forgetCachedCredentials();
  emit(ctx, "user.update", { namespace: user.username, metadata: { fields } });
  return userView(updated);
}

function userView(user: typeof users.$inferSelect): UserView {
  return {
    username: user.username,
    email: user.email,
    superuser: user.superuser,
    createdAt: user.createdAt.toISOString(),
  };
}
