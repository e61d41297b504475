// `logs`: one page of the audit log (newest first, `--cursor` for the next), or `--follow`, which
// polls and prints new entries oldest first as they arrive, like `tail -f`. Given a repository
// and a build id, a build's log instead (builds.ts).
//
// Entries reach the log through the event queue, so one can land after a newer one: --follow
// therefore re-reads a trailing window (LATE_WINDOW_MS) on every poll and skips ids it printed.
import { buildLogs } from "./builds.ts";
import type { Query } from "./client.ts";
import type { Command, CommandContext } from "./context.ts";
import { UsageError } from "./errors.ts";
import { type Column, cell, formatTime, json, table } from "./output.ts";

export interface LogEntry {
  id: string;
  at: string;
  kind: string;
  namespace: string | null;
  repository: string | null;
  actor: { kind: string | null; name: string | null };
  clientIp: string | null;
  metadata: Record<string, unknown> | null;
}

interface LogPage {
  logs: LogEntry[];
  next_cursor: string | null;
}

export const LATE_WINDOW_MS = 10 * 60_000;
const UNITS: Record<string, number> = {
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** `15m`, `2h`, `7d` → an ISO time that long before `now`; anything else is passed on as given. */
export function parseTimeOption(value: string, now: number): string {
  const relative = /^(\d+)([smhdw])$/.exec(value.trim());
  if (relative) return new Date(now - Number(relative[1]) * UNITS[relative[2]!]!).toISOString();
  return value.trim();
}

export function actorText(entry: LogEntry): string {
  const { kind, name } = entry.actor;
  if (kind === "anonymous") return name ? `anonymous (as ${name})` : "anonymous";
  if (kind === "token") return `${name ?? "?"} (token)`;
  if (kind === "robot") return name ?? "robot";
  return name ?? kind ?? "-";
}

/** What the entry was about: the repository, else the namespace. */
export function targetText(entry: LogEntry): string {
  return entry.repository || entry.namespace || "-";
}

/** Metadata as `key=value` pairs, values shortened so a line stays a line. */
export function metadataText(metadata: Record<string, unknown> | null): string {
  if (!metadata) return "";
  return Object.entries(metadata)
    .filter(([, value]) => value !== null && value !== undefined)
    .map(([key, value]) => {
      let text = cell(value);
      if (/^sha256:[0-9a-f]{64}$/.test(text)) text = text.slice(0, 19);
      if (text.length > 60) text = `${text.slice(0, 59)}…`;
      return `${key}=${text}`;
    })
    .join(" ");
}

export const LOG_COLUMNS: Column<LogEntry>[] = [
  { header: "time", value: (e) => formatTime(e.at) },
  { header: "kind", value: (e) => e.kind },
  { header: "actor", value: actorText },
  { header: "target", value: targetText },
  { header: "client", value: (e) => e.clientIp },
  { header: "details", value: (e) => metadataText(e.metadata) },
];

/** One entry on one line (for --follow, where a table cannot be aligned in advance). */
export function logLine(entry: LogEntry): string {
  return LOG_COLUMNS.map((column) => cell(column.value(entry)))
    .join("  ")
    .trimEnd();
}

export function logQuery(ctx: CommandContext): Query {
  const now = ctx.io.now();
  const kinds = ctx.parsed.options.kind;
  const since = ctx.option("since");
  const until = ctx.option("until");
  const limit = ctx.option("limit");
  if (limit !== undefined && !/^[1-9]\d*$/.test(limit))
    throw new UsageError("--limit must be a positive integer");
  return {
    namespace: ctx.option("namespace"),
    repository: ctx.option("repository"),
    kind: Array.isArray(kinds) && kinds.length > 0 ? kinds.join(",") : undefined,
    actor: ctx.option("actor"),
    since: since === undefined ? undefined : parseTimeOption(since, now),
    until: until === undefined ? undefined : parseTimeOption(until, now),
    limit,
    cursor: ctx.option("cursor"),
  };
}

export const logsCommand: Command = {
  path: ["logs"],
  args: ["repository?", "build-id?"],
  summary:
    "read the audit log (newest first), or a build's log (`logs <repo> <build-id>`); --follow",
  options: {
    namespace: { type: "string", value: "ns", description: "only this namespace" },
    repository: { type: "string", value: "name", description: "only this repository" },
    kind: {
      type: "string",
      multiple: true,
      value: "kind",
      description: "only these kinds (tag.push, team.*); repeatable",
    },
    actor: { type: "string", value: "name", description: "only this actor (username or ns+robot)" },
    since: {
      type: "string",
      value: "time",
      description: "from this time: ISO 8601, ms, or 15m / 2h / 7d ago",
    },
    until: { type: "string", value: "time", description: "before this time (same forms)" },
    limit: {
      type: "string",
      value: "n",
      description: "entries per page (default 50, at most 100)",
    },
    cursor: { type: "string", value: "cursor", description: "the page after a previous one" },
    follow: {
      type: "boolean",
      short: "f",
      description: "keep printing new entries (Ctrl-C stops)",
    },
    interval: {
      type: "string",
      value: "seconds",
      description: "how often --follow polls (default 2)",
    },
  },
  async run(ctx) {
    const repository = ctx.optionalArg("repository");
    if (repository !== undefined) return buildLog(ctx, repository);
    const query = logQuery(ctx);
    if (ctx.flag("follow")) return follow(ctx, query);
    const page = await (await ctx.client()).get<LogPage>("/logs", query);
    if (ctx.json) {
      ctx.io.stdout(json(page));
      return;
    }
    ctx.io.stdout(page.logs.length === 0 ? "no log entries" : table(page.logs, LOG_COLUMNS));
    if (page.next_cursor) ctx.io.stderr(`more entries: add --cursor ${page.next_cursor}`);
  },
};

/** `logs <repo> <build-id> [--follow]`: a build's log (builds.ts); audit filters do not apply. */
function buildLog(ctx: CommandContext, repository: string): Promise<void> {
  const buildId = ctx.optionalArg("build-id");
  if (buildId === undefined) {
    throw new UsageError(
      "a build's log is `logs <repository> <build-id>` (see `builds <repository>`)",
    );
  }
  const auditOnly = [
    "namespace",
    "repository",
    "kind",
    "actor",
    "since",
    "until",
    "limit",
    "cursor",
    "interval",
  ];
  const given = auditOnly.filter((name) => ctx.parsed.options[name] !== undefined);
  if (given.length > 0) {
    throw new UsageError(`--${given[0]} filters the audit log, not a build's log`);
  }
  return buildLogs(ctx, repository, buildId, ctx.flag("follow"));
}

async function follow(ctx: CommandContext, query: Query): Promise<void> {
  if (query.until !== undefined || query.cursor !== undefined) {
    throw new UsageError(
      "--follow reads up to now: it cannot be combined with --until or --cursor",
    );
  }
  const rawInterval = ctx.option("interval") ?? "2";
  if (!/^\d+(\.\d+)?$/.test(rawInterval) || Number(rawInterval) <= 0) {
    throw new UsageError("--interval must be a positive number of seconds");
  }
  const intervalMs = Number(rawInterval) * 1000;
  const client = await ctx.client();
  const emit = (entry: LogEntry) =>
    ctx.io.stdout(ctx.json ? JSON.stringify(entry) : logLine(entry));
  /** Printed ids and their times, pruned to the late window. */
  const printed = new Map<string, number>();
  let watermark = 0;

  // First the latest page, oldest first.
  const first = await client.get<LogPage>("/logs", { ...query, cursor: undefined });
  for (const entry of [...first.logs].reverse()) {
    emit(entry);
    printed.set(entry.id, Date.parse(entry.at));
  }
  watermark = Math.max(ctx.io.now() - LATE_WINDOW_MS, ...printed.values());
  const floor = query.since === undefined ? 0 : timeOf(String(query.since));
  if (!ctx.json && first.logs.length === 0)
    ctx.io.stderr("waiting for log entries… (Ctrl-C stops)");

  while (!ctx.io.signal?.aborted) {
    await ctx.io.sleep(intervalMs, ctx.io.signal);
    if (ctx.io.signal?.aborted) break;
    const since = new Date(Math.max(floor, watermark - LATE_WINDOW_MS)).toISOString();
    const fresh: LogEntry[] = [];
    let cursor: string | undefined;
    do {
      const page = await client.get<LogPage>("/logs", { ...query, since, limit: 100, cursor });
      for (const entry of page.logs) if (!printed.has(entry.id)) fresh.push(entry);
      cursor = page.next_cursor ?? undefined;
    } while (cursor && !ctx.io.signal?.aborted);
    fresh.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    for (const entry of fresh) {
      emit(entry);
      const at = Date.parse(entry.at);
      printed.set(entry.id, at);
      watermark = Math.max(watermark, at);
    }
    for (const [id, at] of printed) if (at < watermark - 2 * LATE_WINDOW_MS) printed.delete(id);
  }
}

function timeOf(value: string): number {
  const at = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  return Number.isNaN(at) ? 0 : at;
}
