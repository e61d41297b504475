// The audit log and pull counters over the management API:
//   GET /logs                        ?namespace=&repository=&kind=&since=&until=&actor=&limit=&cursor=
//                                    newest first → { logs, next_cursor }
//   GET /repositories/:name/pulls    ?days= (1–366, default 30) → pulls per UTC day
// `kind` is a comma-separated list of kinds (`tag.push`) or families (`team.*`); `since`
// (inclusive) and `until` (exclusive) are ISO 8601 times or milliseconds since the epoch.
// Who sees which rows is decided in services/audit-log.ts.
import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import {
  type AuditLogFilter,
  repositoryPulls as pullsPerDay,
  queryAuditLog,
} from "../services/audit-log.ts";
import { invalid } from "../services/identity/errors.ts";
import { requireCaller } from "./authentication.ts";
import {
  type ApiContext,
  type ApiEnv,
  identityContext,
  pageBody,
  pageOf,
  repositoryParam,
} from "./context.ts";
import type { RepositorySubroute } from "./repository-subroutes.ts";

export const auditLogsApi = new Hono<ApiEnv>();

/**
 * The management API authenticates every request before routing (`requireCaller` on `*`); this
 * runs it only when that has not happened, so the sub-app is safe however it is mounted.
 */
const ensureCaller = createMiddleware<ApiEnv>(async (c, next) => {
  if (c.get("caller")) return next();
  return requireCaller(c, next);
});

auditLogsApi.use("/logs", ensureCaller);
auditLogsApi.use("/repositories/*", ensureCaller);

const LOG_QUERY = ["namespace", "repository", "kind", "since", "until", "actor", "limit", "cursor"];
const KIND = /^[a-z][a-z-]*(\.[a-z][a-z-]*)*(\.\*)?$/;
const MAX_KINDS = 20;

auditLogsApi.get("/logs", async (c) => {
  refuseUnknownParameters(c, LOG_QUERY);
  const page = await queryAuditLog(identityContext(c), logFilter(c), pageOf(c, 2));
  return c.json(pageBody("logs", page));
});

/** GET /repositories/:name/pulls, answered through repository-subroutes.ts. */
export const pullSubroutes: RepositorySubroute[] = [
  { method: "GET", pattern: /^(.+)\/pulls$/, handle: (c, match) => repositoryPulls(c, match[1]!) },
];

async function repositoryPulls(c: ApiContext, repository: string): Promise<Response> {
  refuseUnknownParameters(c, ["days"]);
  const name = repositoryParam(repository);
  const raw = c.req.query("days") ?? "30";
  const days = Number(raw);
  if (!/^\d{1,3}$/.test(raw) || days < 1 || days > 366) {
    throw invalid("days must be an integer from 1 to 366");
  }
  return c.json(await pullsPerDay(identityContext(c), name, days));
}

export function logFilter(c: ApiContext): AuditLogFilter {
  const filter: AuditLogFilter = {};
  const namespace = c.req.query("namespace");
  if (namespace) filter.namespace = namespace;
  const repository = c.req.query("repository");
  if (repository) filter.repository = repositoryParam(repository);
  const actor = c.req.query("actor");
  if (actor) filter.actor = actor;
  const kind = c.req.query("kind");
  if (kind) {
    const kinds = kind
      .split(",")
      .map((k) => k.trim())
      .filter((k) => k !== "");
    const bad = kinds.find((k) => !KIND.test(k));
    if (bad !== undefined)
      throw invalid(`kind ${JSON.stringify(bad)} is not an event kind or family (team.*)`);
    if (kinds.length > MAX_KINDS) throw invalid(`at most ${MAX_KINDS} kinds at once`);
    filter.kinds = kinds;
  }
  const since = c.req.query("since");
  if (since) filter.since = parseTime("since", since);
  const until = c.req.query("until");
  if (until) filter.until = parseTime("until", until);
  if (filter.since !== undefined && filter.until !== undefined && filter.since >= filter.until) {
    throw invalid("since must be before until");
  }
  return filter;
}

/** Milliseconds since the epoch, from digits or an ISO 8601 date or time. */
export function parseTime(field: string, raw: string): number {
  if (/^\d{1,15}$/.test(raw)) return Number(raw);
  // Date.parse accepts much more than ISO 8601 in some engines; require its shape first.
  const iso = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;
  const at = iso.test(raw) ? Date.parse(raw.replace(" ", "T")) : Number.NaN;
  if (Number.isNaN(at)) {
    throw invalid(
      `${field} must be an ISO 8601 time (2026-01-31T12:00:00Z) or milliseconds since the epoch`,
    );
  }
  return at;
}

function refuseUnknownParameters(c: ApiContext, allowed: readonly string[]): void {
  const unknown = Object.keys(c.req.queries()).filter((key) => !allowed.includes(key));
  if (unknown.length > 0) {
    throw invalid(
      `unknown query parameter ${unknown.join(", ")} (expected: ${allowed.join(", ")})`,
    );
  }
}
