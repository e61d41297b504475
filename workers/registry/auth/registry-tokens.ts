// Registry bearer tokens (the Docker token authentication spec): short-lived ES256 JWTs signed
// with jose, whose `access` claim lists what the holder may do. The Worker verifies them with the
// public key alone — algorithm, issuer, audience and expiry pinned — and no storage lookup.
import {
  calculateJwkThumbprint,
  exportJWK,
  importJWK,
  type JWK,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from "jose";
import type { EventActor } from "../../../schema/events.ts";
import type { Action } from "./access.ts";

export const TOKEN_ISSUER = "edge-registry-token-service";
export const TOKEN_TTL_SECONDS = 300;

export interface AccessEntry {
  type: "repository" | "registry";
  name: string;
  actions: string[];
}

export interface RegistryClaims extends JWTPayload {
  sub: string;
  access: AccessEntry[];
  /** Who the token speaks for, so list endpoints (catalog) can filter without asking again. */
  principal: {
    kind: "anonymous" | "user" | "robot";
    id?: string;
    name?: string;
    superuser?: boolean;
  };
  /**
   * Set on build tokens (and on the pull tokens they are exchanged for): the build and attempt
   * they belong to. The token is honoured only while that attempt is the build's current one and
   * the build has not ended (services/builds-tokens.ts).
   */
  build?: BuildClaim;
}

export interface BuildClaim {
  id: string;
  attempt: number;
  /** The repository the build pushes to. */
  repository: string;
  /** Whose pull rights the build has for base images. */
  requester: EventActor;
}

interface KeySet {
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

// One parsed key per secret value per isolate: importing keys is not free.
const keySets = new Map<string, Promise<KeySet>>();

export function signingKeys(secret: string): Promise<KeySet> {
  let keys = keySets.get(secret);
  if (!keys) {
    keys = loadKeys(secret);
    keySets.set(secret, keys);
  }
  return keys;
}

async function loadKeys(secret: string): Promise<KeySet> {
  let jwk: JWK;
  try {
    jwk = JSON.parse(secret) as JWK;
  } catch {
    throw new Error("TOKEN_SIGNING_KEY must be an EC P-256 private JWK (JSON)");
  }
  if (jwk.kty !== "EC" || jwk.crv !== "P-256" || !jwk.d) {
    throw new Error("TOKEN_SIGNING_KEY must be an EC P-256 private JWK");
  }
  // The public half, without the private scalar or usages meant for the private key.
  const { d: _private, key_ops: _ops, ext: _ext, ...publicPart } = jwk;
  const kid = jwk.kid ?? (await calculateJwkThumbprint(publicPart));
  const privateKey = (await importJWK({ ...jwk, alg: "ES256" }, "ES256")) as CryptoKey;
  const publicKey = (await importJWK({ ...publicPart, alg: "ES256" }, "ES256")) as CryptoKey;
  const exported = await exportJWK(publicKey);
  return { kid, privateKey, publicKey, publicJwk: { ...exported, kid, alg: "ES256", use: "sig" } };
}

export async function issueRegistryToken(
  secret: string,
  service: string,
  claims: Pick<RegistryClaims, "sub" | "access" | "principal" | "build">,
  now = Date.now(),
  ttlSeconds = TOKEN_TTL_SECONDS,
): Promise<{ token: string; expiresIn: number; issuedAt: string }> {
  const keys = await signingKeys(secret);
  const issuedAt = Math.floor(now / 1000);
  const token = await new SignJWT({
    access: claims.access,
    principal: claims.principal,
    ...(claims.build ? { build: claims.build } : {}),
  })
    .setProtectedHeader({ alg: "ES256", kid: keys.kid, typ: "JWT" })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(service)
    .setSubject(claims.sub)
    .setIssuedAt(issuedAt)
    .setNotBefore(issuedAt - 5)
    .setExpirationTime(issuedAt + ttlSeconds)
    .setJti(crypto.randomUUID())
    .sign(keys.privateKey);
  return { token, expiresIn: ttlSeconds, issuedAt: new Date(issuedAt * 1000).toISOString() };
}

const verifiedTokens = new Map<string, { claims: RegistryClaims; exp: number }>();
const VERIFIED_MAX = 2000;

/** Verifies a token; returns its claims or null. Verified tokens are remembered until expiry. */
export async function verifyRegistryToken(
  secret: string,
  service: string,
  token: string,
  now = Date.now(),
): Promise<RegistryClaims | null> {
  const hit = verifiedTokens.get(token);
  if (hit && hit.exp * 1000 > now) return hit.claims;
  const keys = await signingKeys(secret);
  try {
    const { payload } = await jwtVerify(token, keys.publicKey, {
      algorithms: ["ES256"],
      issuer: TOKEN_ISSUER,
      audience: service,
      currentDate: new Date(now),
      requiredClaims: ["exp", "sub", "access"],
    });
    const claims = payload as RegistryClaims;
    if (!Array.isArray(claims.access)) return null;
    if (verifiedTokens.size >= VERIFIED_MAX)
      verifiedTokens.delete(verifiedTokens.keys().next().value!);
    verifiedTokens.set(token, { claims, exp: claims.exp! });
    return claims;
  } catch {
    return null;
  }
}

export function allows(claims: RegistryClaims, repository: string, action: Action): boolean {
  return claims.access.some(
    (entry) =>
      entry.type === "repository" &&
      entry.name === repository &&
      (entry.actions.includes(action) || entry.actions.includes("*")),
  );
}
