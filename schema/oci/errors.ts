// The OCI Distribution error table (spec §"Error Codes") and the registry's own additions:
// one code → one HTTP status → one message, rendered by one function in the Worker.

export const ERROR_TABLE = {
  BLOB_UNKNOWN: { status: 404, message: "blob unknown to registry" },
  BLOB_UPLOAD_INVALID: { status: 400, message: "blob upload invalid" },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: "blob upload unknown to registry" },
  DIGEST_INVALID: { status: 400, message: "provided digest did not match uploaded content" },
  MANIFEST_BLOB_UNKNOWN: {
    status: 404,
    message: "manifest references a manifest or blob unknown to registry",
  },
  MANIFEST_INVALID: { status: 400, message: "manifest invalid" },
  MANIFEST_UNKNOWN: { status: 404, message: "manifest unknown to registry" },
  NAME_INVALID: { status: 400, message: "invalid repository name" },
  NAME_UNKNOWN: { status: 404, message: "repository name not known to registry" },
  SIZE_INVALID: { status: 400, message: "provided length did not match content length" },
  UNAUTHORIZED: { status: 401, message: "authentication required" },
  DENIED: { status: 403, message: "requested access to the resource is denied" },
  UNSUPPORTED: { status: 405, message: "the operation is unsupported" },
  TOOMANYREQUESTS: { status: 429, message: "too many requests" },
  // Not in the spec's table but used by distribution and understood by clients.
  TAG_INVALID: { status: 400, message: "manifest tag did not match URI" },
  RANGE_INVALID: { status: 416, message: "invalid content range" },
  PAGINATION_NUMBER_INVALID: { status: 400, message: "invalid number of results requested" },
  UNKNOWN: { status: 500, message: "unknown error" },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_TABLE;

export interface OciErrorBody {
  errors: { code: ErrorCode; message: string; detail?: unknown }[];
}

/** A registry error as a value: routes throw or return it; the app renders it once. */
export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: unknown;
  /** Extra response headers the spec asks for with this error (e.g. `Range` with a 416). */
  readonly headers: Record<string, string>;

  constructor(
    code: ErrorCode,
    message?: string,
    options: { detail?: unknown; status?: number; headers?: Record<string, string> } = {},
  ) {
    super(message ?? ERROR_TABLE[code].message);
    this.name = "RegistryError";
    this.code = code;
    this.status = options.status ?? ERROR_TABLE[code].status;
    this.detail = options.detail;
    this.headers = options.headers ?? {};
  }

  toBody(): OciErrorBody {
    const error: OciErrorBody["errors"][number] = { code: this.code, message: this.message };
    if (this.detail !== undefined) error.detail = this.detail;
    return { errors: [error] };
  }
}

/** What a Durable Object returns for an expected failure (classes do not survive RPC). */
export interface RpcFailure {
  ok: false;
  code: ErrorCode;
  message?: string;
  detail?: unknown;
  headers?: Record<string, string>;
  status?: number;
}

export type RpcResult<T> = ({ ok: true } & T) | RpcFailure;

export function rpcFailure(
  code: ErrorCode,
  message?: string,
  extra: Omit<RpcFailure, "ok" | "code" | "message"> = {},
): RpcFailure {
  return { ok: false, code, ...(message === undefined ? {} : { message }), ...extra };
}

export function toRegistryError(failure: RpcFailure): RegistryError {
  return new RegistryError(failure.code, failure.message, {
    detail: failure.detail,
    status: failure.status,
    headers: failure.headers,
  });
}

/** Returns a successful RPC result, or throws the failure as a RegistryError. */
export function ensureOk<T extends { ok: boolean }>(result: T): Exclude<T, { ok: false }> {
  if (result.ok === false) throw toRegistryError(result as unknown as RpcFailure);
  return result as Exclude<T, { ok: false }>;
}
