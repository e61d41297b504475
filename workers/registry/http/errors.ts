// The one renderer of registry errors: the spec's JSON body, its status, and any extra headers.
import { ERROR_TABLE, type ErrorCode, RegistryError } from "../../../schema/oci/errors.ts";

export function errorResponse(error: RegistryError, method = "GET"): Response {
  const headers = new Headers(error.headers);
  headers.set("Content-Type", "application/json");
  // A HEAD answer carries the status and headers only (RFC 9110 §9.3.2).
  const body = method === "HEAD" ? null : JSON.stringify(error.toBody());
  return new Response(body, { status: error.status, headers });
}

export function registryError(code: ErrorCode, message?: string, detail?: unknown): RegistryError {
  return new RegistryError(code, message ?? ERROR_TABLE[code].message, { detail });
}
