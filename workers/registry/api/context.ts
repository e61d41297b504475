// What every management API handler shares: the hono environment with the authenticated caller,
// the identity-service context built from a request, JSON body and query parsing (bad input is a
// 400 naming the field), and the one renderer of API errors.
import type { Context } from "hono";
import {
  PERMISSION_ROLES,
  type PermissionRole,
  PRINCIPAL_KINDS,
  type PrincipalKind,
} from "../../../schema/db/d1.ts";
import { parseRepositoryName, type RepositoryName } from "../../../schema/oci/reference.ts";
import type { AppEnv } from "../env.ts";
import { clientIp } from "../http/client-ip.ts";
import type { Caller, IdentityContext } from "../services/identity/context.ts";
import { type IdentityError, invalid } from "../services/identity/errors.ts";
import { type Page, type PageRequest, pageRequest } from "../services/identity/pagination.ts";

/** AppEnv plus who is calling (set by `requireCaller` before any /api/v1 handler runs). */
export interface ApiEnv {
  Bindings: AppEnv["Bindings"];
  Variables: AppEnv["Variables"] & { caller: Caller };
}

export type ApiContext = Context<ApiEnv>;

export function identityContext(c: ApiContext): IdentityContext {
  return {
    db: c.env.DB,
    caller: c.var.caller,
    events: c.var.events,
    ...clientIp(c.req.raw),
  };
}

export function renderError(error: IdentityError): Response {
  return new Response(JSON.stringify(error.toBody()), {
    status: error.status,
    headers: { ...error.headers, "Content-Type": "application/json" },
  });
}

// ---- request bodies --------------------------------------------------------------------------

export type Body = Record<string, unknown>;

/** The JSON object body, refusing fields not in `allowed` (a typo should not pass silently). */
export async function readBody(c: ApiContext, allowed: readonly string[]): Promise<Body> {
  let body: unknown;
  try {
    const text = await c.req.text();
    body = text.trim() === "" ? {} : JSON.parse(text);
  } catch {
    throw invalid("the request body must be JSON");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw invalid("the request body must be a JSON object");
  }
  const unknown = Object.keys(body).filter((key) => !allowed.includes(key));
  if (unknown.length > 0) {
    throw invalid(`unknown field ${unknown.join(", ")} (expected: ${allowed.join(", ")})`);
  }
  return body as Body;
}

export function requiredString(body: Body, field: string): string {
  const value = body[field];
  if (typeof value !== "string") throw invalid(`${field} is required and must be a string`);
  return value;
}

export function optionalString(body: Body, field: string): string | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw invalid(`${field} must be a string`);
  return value;
}

export function optionalBoolean(body: Body, field: string): boolean | undefined {
  const value = body[field];
  if (value === undefined) return undefined;
  if (typeof value !== "boolean") throw invalid(`${field} must be true or false`);
  return value;
}

export function optionalInteger(
  body: Body,
  field: string,
  min: number,
  max: number,
): number | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${field} must be an integer from ${min} to ${max}`);
  }
  return value;
}

export function oneOf<T extends string>(field: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw invalid(`${field} must be one of ${allowed.join(", ")}`);
  }
  return value as T;
}

export function optionalOneOf<T extends string>(
  body: Body,
  field: string,
  allowed: readonly T[],
): T | undefined {
  return body[field] === undefined ? undefined : oneOf(field, body[field], allowed);
}

// ---- URL parts -------------------------------------------------------------------------------

export function repositoryParam(raw: string): RepositoryName {
  const name = parseRepositoryName(raw);
  if (!name) throw invalid(`invalid repository name ${JSON.stringify(raw)}`);
  return name;
}

export function principalKindParam(raw: string): PrincipalKind {
  return oneOf("kind", raw, PRINCIPAL_KINDS);
}

export function roleOf(body: Body): PermissionRole {
  return oneOf("role", body.role, PERMISSION_ROLES);
}

export function pageOf(c: ApiContext, arity: number): PageRequest {
  return pageRequest(c.req.query("limit"), c.req.query("cursor"), arity);
}

/** A list response: the items under their resource's name and the cursor of the next page. */
export function pageBody<T>(key: string, page: Page<T>): Record<string, unknown> {
  return { [key]: page.items, next_cursor: page.nextCursor };
}
