// The bootstrap superuser: created in D1 from REGISTRY_ADMIN_USER / REGISTRY_ADMIN_PASSWORD on the
// first request an isolate serves, and kept in step with the configured password.
import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { namespaces, users } from "../../../schema/db/d1.ts";
import { hashPassword, verifyPassword } from "./passwords.ts";
import { forgetCachedCredentials } from "./principals.ts";

let done: Promise<void> | null = null;

export function ensureBootstrapAdmin(
  db: D1Database,
  username: string,
  password: string | undefined,
): Promise<void> {
  if (!username || !password) return Promise.resolve();
  done ??= createOrUpdate(db, username, password).catch((error: unknown) => {
    done = null; // try again on the next request
    throw error;
  });
  return done;
}

async function createOrUpdate(db: D1Database, username: string, password: string): Promise<void> {
  const orm = drizzle(db);
  const existing = await orm.select().from(users).where(eq(users.username, username)).get();
  if (!existing) {
    const passwordHash = await hashPassword(password);
    await orm.batch([
      orm.insert(namespaces).values({ name: username, kind: "user" }).onConflictDoNothing(),
      orm
        .insert(users)
        .values({ id: crypto.randomUUID(), username, passwordHash, superuser: true })
        .onConflictDoNothing(),
    ]);
    return;
  }
  const current = existing.passwordHash
    ? await verifyPassword(password, existing.passwordHash)
    : false;
  if (!current || !existing.superuser || existing.disabled) {
    await orm
      .update(users)
      .set({ passwordHash: await hashPassword(password), superuser: true, disabled: false })
      .where(eq(users.id, existing.id))
      .run();
    forgetCachedCredentials();
  }
}
