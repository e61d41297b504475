// Bootstrap access until identity lands: one admin account over HTTP Basic. Anonymous or wrong
// credentials get the spec's 401 with a challenge, so clients know to send credentials.
import { createMiddleware } from "hono/factory";
import { RegistryError } from "../../../schema/oci/errors.ts";
import type { AppEnv } from "../env.ts";

export const REALM = "edge-registry";

export const requireAdmin = createMiddleware<AppEnv>(async (c, next) => {
  const header = c.req.header("Authorization");
  const credentials = header ? parseBasic(header) : undefined;
  const { REGISTRY_ADMIN_USER: user, REGISTRY_ADMIN_PASSWORD: password } = c.env;
  const ok =
    credentials !== undefined &&
    typeof password === "string" &&
    password.length > 0 &&
    (await timingSafeEqualStrings(credentials.user, user)) &&
    (await timingSafeEqualStrings(credentials.password, password));
  if (!ok) {
    throw new RegistryError("UNAUTHORIZED", undefined, {
      headers: { "WWW-Authenticate": `Basic realm="${REALM}", charset="UTF-8"` },
    });
  }
  await next();
});

function parseBasic(header: string): { user: string; password: string } | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!match) return undefined;
  let decoded: string;
  try {
    decoded = new TextDecoder().decode(Uint8Array.from(atob(match[1]!), (ch) => ch.charCodeAt(0)));
  } catch {
    return undefined;
  }
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Compares two secrets in time independent of where they differ (and of their lengths). */
async function timingSafeEqualStrings(a: string, b: string): Promise<boolean> {
  const encoder = new TextEncoder();
  const [da, db] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(a)),
    crypto.subtle.digest("SHA-256", encoder.encode(b)),
  ]);
  return crypto.subtle.timingSafeEqual(da, db);
}
