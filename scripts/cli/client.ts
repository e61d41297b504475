// The CLI's only way to the registry: JSON over HTTP to /api/v1, with the app token as a bearer
// secret. Error bodies become CliErrors carrying the server's message and an exit code for the
// status, so every command fails the same way.
import { CliError, EXIT, exitCodeForStatus } from "./errors.ts";

export type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** Overrides the bearer token (login sends Basic credentials instead). */
  authorization?: string;
}

export class ApiClient {
  readonly baseUrl: string;
  readonly #authorization: string | undefined;
  readonly #fetch: Fetch;

  constructor(baseUrl: string, token: string | undefined, fetchImpl: Fetch = fetch) {
    this.baseUrl = baseUrl;
    this.#authorization = token ? `Bearer ${token}` : undefined;
    this.#fetch = fetchImpl;
  }

  /** The Authorization header this client sends (for connections it does not make itself). */
  get authorization(): string | undefined {
    return this.#authorization;
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>("GET", path, query ? { query } : {});
  }
  post<T>(path: string, body?: unknown, options: RequestOptions = {}): Promise<T> {
    return this.request<T>("POST", path, { ...options, body });
  }
  put<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>("PUT", path, { body });
  }
  patch<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>("PATCH", path, { body });
  }
  delete<T>(path: string): Promise<T> {
    return this.request<T>("DELETE", path);
  }

  /** `/api/v1` + path, with the query's defined values. */
  url(path: string, query: Query = {}): string {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) search.set(key, String(value));
    }
    const qs = search.toString();
    return `${this.baseUrl}/api/v1${path}${qs ? `?${qs}` : ""}`;
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const headers = new Headers({ Accept: "application/json" });
    const authorization = options.authorization ?? this.#authorization;
    if (authorization) headers.set("Authorization", authorization);
    let body: string | undefined;
    if (options.body !== undefined) {
      headers.set("Content-Type", "application/json");
      body = JSON.stringify(options.body);
    }
    const url = this.url(path, options.query);
    let response: Response;
    try {
      response = await this.#fetch(url, {
        method,
        headers,
        ...(body === undefined ? {} : { body }),
      });
    } catch (error) {
      const cause =
        error instanceof Error
          ? ((error.cause as Error | undefined)?.message ?? error.message)
          : String(error);
      throw new CliError(`cannot reach ${this.baseUrl}: ${cause}`);
    }
    const text = await response.text();
    if (!response.ok) throw apiError(method, path, response.status, text);
    if (response.status === 204 || text === "") return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(
        `${method} ${path}: the server answered ${response.status} with non-JSON content`,
      );
    }
  }
}

/** A CliError from an error response, with the server's message when it sent one. */
export function apiError(method: string, path: string, status: number, text: string): CliError {
  const message = errorMessage(text);
  const code = exitCodeForStatus(status);
  if (status === 401) {
    return new CliError(
      `${message ?? "authentication failed"} (401): log in again with \`edge-registry login\``,
      EXIT.auth,
    );
  }
  return new CliError(
    message ? `${message} (${status})` : `${method} ${path} failed with HTTP ${status}`,
    code,
  );
}

/** The human message of an error body, whichever of the usual shapes it has. */
export function errorMessage(text: string): string | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    const trimmed = text.trim();
    return trimmed && trimmed.length <= 200 && !trimmed.startsWith("<") ? trimmed : undefined;
  }
  if (typeof body !== "object" || body === null) return undefined;
  const record = body as Record<string, unknown>;
  const nested = record.error;
  if (typeof nested === "object" && nested !== null) {
    const inner = nested as Record<string, unknown>;
    if (typeof inner.message === "string") return inner.message;
    if (typeof inner.code === "string") return inner.code;
  }
  if (typeof record.message === "string") return record.message;
  if (typeof record.detail === "string") return record.detail;
  if (typeof nested === "string") return nested;
  const errors = record.errors;
  if (Array.isArray(errors) && errors.length > 0) {
    const first = errors[0] as Record<string, unknown>;
    if (typeof first.message === "string") return first.message;
  }
  return undefined;
}
