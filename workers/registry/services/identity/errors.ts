// The management API's error table (code → HTTP status) and the error value the identity services
// throw for expected refusals; the API renders it once as `{ "error": { "code", "message" } }`.

export const IDENTITY_ERRORS = {
  INVALID_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  LENGTH_REQUIRED: 411,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  INTERNAL: 500,
  UNAVAILABLE: 503,
} as const satisfies Record<string, number>;

export type IdentityErrorCode = keyof typeof IDENTITY_ERRORS;

export class IdentityError extends Error {
  readonly code: IdentityErrorCode;
  readonly status: (typeof IDENTITY_ERRORS)[IdentityErrorCode];
  /** Extra response headers (the challenge of a 401). */
  readonly headers: Record<string, string>;

  constructor(code: IdentityErrorCode, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = "IdentityError";
    this.code = code;
    this.status = IDENTITY_ERRORS[code];
    this.headers = headers;
  }

  toBody(): { error: { code: IdentityErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

export const invalid = (message: string) => new IdentityError("INVALID_REQUEST", message);
export const forbidden = (message: string) => new IdentityError("FORBIDDEN", message);
export const notFound = (message: string) => new IdentityError("NOT_FOUND", message);
export const conflict = (message: string) => new IdentityError("CONFLICT", message);

/** A UNIQUE or PRIMARY KEY violation from D1: the row a concurrent request just created. */
export function isUniqueViolation(error: unknown): boolean {
  const text = error instanceof Error ? `${error.message} ${String(error.cause ?? "")}` : "";
  return /UNIQUE constraint failed|PRIMARY KEY constraint failed/i.test(text);
}
