// Builds from the command line: `builds <repo>` (newest first), `build show|cancel <repo> <id>`,
// and a build's log: `logs <repo> <id>` pages through it, `--follow` watches it live over the
// builds API's WebSocket (reconnecting from the last line seen) until the build ends, and exits
// non-zero unless it completed. Endpoints: workers/registry/api/builds.ts.
import type {
  BuildView as Build,
  BuildDetailView as BuildDetail,
  BuildLogEntry,
  BuildWatchMessage,
} from "../../schema/builds.ts";
import type { ApiClient } from "./client.ts";
import { type Command, type CommandContext, pathOf } from "./context.ts";
import { CliError, EXIT, UsageError } from "./errors.ts";
import { type Column, details, formatTime, listOrEmpty } from "./output.ts";

// ---- what the API returns (workers/registry/services/builds.ts) --------------------------------

interface LogPage {
  lines: BuildLogEntry[];
  next_after: number | null;
  finished: boolean;
}

const LOG_PAGE = 1000;
/** Reconnects of `logs --follow` after the connection drops, before giving up. */
const MAX_RECONNECTS = 5;

export function sourceText(build: Build): string {
  const source = build.source;
  return source.kind === "git"
    ? `${source.ref.replace(/^refs\/(heads|tags)\//, "")}@${source.commit.slice(0, 12)}`
    : `upload (${source.format}, ${source.size} bytes)`;
}

export function durationText(build: Build): string {
  if (!build.startedAt) return "-";
  const end = build.finishedAt ? Date.parse(build.finishedAt) : undefined;
  if (end === undefined) return "running";
  const seconds = Math.max(0, Math.round((end - Date.parse(build.startedAt)) / 1000));
  return seconds < 60 ? `${seconds}s` : `${Math.floor(seconds / 60)}m${seconds % 60}s`;
}

const BUILD_COLUMNS: Column<Build>[] = [
  { header: "id", value: (b) => b.id },
  { header: "phase", value: (b) => b.phase },
  { header: "tags", value: (b) => b.tags },
  { header: "source", value: sourceText },
  { header: "queued", value: (b) => formatTime(b.queuedAt) },
  { header: "took", value: durationText },
  { header: "digest", value: (b) => b.digest?.slice(0, 19) },
];

function buildDetails(build: BuildDetail): string {
  const head = details([
    ["build", build.id],
    ["repository", build.repository],
    ["phase", build.phase],
    ["tags", build.tags],
    ["source", sourceText(build)],
    ["dockerfile", `${build.contextDir}/${build.dockerfilePath}`],
    ["requested by", build.requestedBy.name ?? build.requestedBy.kind],
    ["queued", formatTime(build.queuedAt)],
    ["started", formatTime(build.startedAt)],
    ["finished", formatTime(build.finishedAt)],
    ["attempts", build.attempts],
    ["host", build.host],
    ["digest", build.digest],
    ["error", build.error],
    ["log lines", build.logLines],
  ]);
  const phases = build.phases
    .map((p) => `  ${formatTime(p.at)}  ${p.phase}${p.detail ? `  ${clean(p.detail)}` : ""}`)
    .join("\n");
  return phases ? `${head}\nphases:\n${phases}` : head;
}

const buildPath = (ctx: CommandContext) =>
  `/repositories/${pathOf(ctx.arg("repository"))}/builds/${encodeURIComponent(ctx.arg("build-id"))}`;

export const buildCommands: Command[] = [
  {
    path: ["builds"],
    args: ["repository"],
    summary: "list a repository's builds, newest first",
    options: {
      limit: {
        type: "string",
        value: "n",
        description: "builds per page (default 20, at most 100)",
      },
      cursor: { type: "string", value: "cursor", description: "the page after a previous one" },
    },
    async run(ctx) {
      const limit = ctx.option("limit") ?? "20";
      if (!/^[1-9]\d*$/.test(limit)) throw new UsageError("--limit must be a positive integer");
      const page = await (await ctx.client()).get<{ builds: Build[]; next_cursor: string | null }>(
        `/repositories/${pathOf(ctx.arg("repository"))}/builds`,
        { limit, cursor: ctx.option("cursor") },
      );
      ctx.print(page, (p) => listOrEmpty(p.builds, BUILD_COLUMNS, "no builds"));
      if (page.next_cursor) ctx.note(`more builds: add --cursor ${page.next_cursor}`);
    },
  },
  {
    path: ["build", "show"],
    args: ["repository", "build-id"],
    summary: "show a build, its phases and outcome",
    async run(ctx) {
      const build = await (await ctx.client()).get<BuildDetail>(buildPath(ctx));
      ctx.print(build, buildDetails);
    },
  },
  {
    path: ["build", "cancel"],
    args: ["repository", "build-id"],
    summary: "cancel a build at whatever phase it is (needs write permission)",
    async run(ctx) {
      const build = await (await ctx.client()).post<BuildDetail>(`${buildPath(ctx)}/cancel`);
      ctx.print(build, (b) => `cancelled build ${b.id}\n${buildDetails(b)}`);
    },
  },
];

// ---- logs ------------------------------------------------------------------------------------

/** A log line for a terminal: control characters (escape sequences) dropped, tabs kept. */
export function clean(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: dropping control characters is the point
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0a-\x1f\x7f]/g, "");
}

export function lineText(line: BuildLogEntry): string {
  return line.stream === "system" ? `--- ${clean(line.text)}` : clean(line.text);
}

/** `logs <repo> <build-id> [--follow]`, called by the `logs` command when given a repository. */
export async function buildLogs(
  ctx: CommandContext,
  repository: string,
  buildId: string,
  follow: boolean,
): Promise<void> {
  const client = await ctx.client();
  const path = `/repositories/${pathOf(repository)}/builds/${encodeURIComponent(buildId)}`;
  const print = (line: BuildLogEntry) =>
    ctx.io.stdout(ctx.json ? JSON.stringify(line) : lineText(line));
  if (!follow) {
    // Everything stored so far (a running build's log simply ends where it is now).
    let after = 0;
    for (;;) {
      const page = await client.get<LogPage>(`${path}/logs`, { after, limit: LOG_PAGE });
      for (const line of page.lines) print(line);
      if (page.lines.length < LOG_PAGE || page.next_after === null) return;
      after = page.lines.at(-1)!.seq;
    }
  }
  const end = await watch(ctx, client, `${path}/logs`, print);
  if (!end) return; // interrupted
  const summary = `build ${buildId} ended: ${end.phase}${end.digest ? ` ${end.digest}` : ""}${end.error ? `: ${clean(end.error)}` : ""}`;
  if (end.phase === "complete") {
    ctx.note(summary);
    return;
  }
  throw new CliError(summary, EXIT.error);
}

type End = Extract<BuildWatchMessage, { type: "end" }>;

/** Follows the log until the build ends (the end message), Ctrl-C (undefined) or too many drops. */
async function watch(
  ctx: CommandContext,
  client: ApiClient,
  path: string,
  print: (line: BuildLogEntry) => void,
): Promise<End | undefined> {
  let after = 0;
  const seenPhases = new Set<string>();
  for (let attempt = 0; ; attempt++) {
    const outcome = await new Promise<
      { kind: "end"; end: End } | { kind: "dropped"; reason: string } | { kind: "aborted" }
    >((resolve) => {
      const url = client.url(path, { follow: 1, after }).replace(/^http/, "ws");
      const headers: Record<string, string> = {};
      if (client.authorization) headers.Authorization = client.authorization;
      const ws = ctx.io.openWebSocket(url, headers);
      let settled: typeof resolve | null = resolve;
      const settle = (value: Parameters<typeof resolve>[0]) => {
        settled?.(value);
        settled = null;
      };
      const onAbort = () => {
        ws.close(1000, "interrupted");
        settle({ kind: "aborted" });
      };
      ctx.io.signal?.addEventListener("abort", onAbort, { once: true });
      ws.addEventListener("message", (event) => {
        let message: BuildWatchMessage;
        try {
          message = JSON.parse(String(event.data)) as BuildWatchMessage;
        } catch {
          return;
        }
        if (message.type === "lines") {
          for (const line of message.lines) {
            if (line.seq <= after) continue;
            after = line.seq;
            print(line);
          }
        } else if (message.type === "phase") {
          const key = `${message.phase}@${message.at}`;
          if (!seenPhases.has(key)) {
            seenPhases.add(key);
            ctx.note(`[${message.phase}${message.detail ? `: ${clean(message.detail)}` : ""}]`);
          }
        } else if (message.type === "end") {
          ctx.io.signal?.removeEventListener("abort", onAbort);
          settle({ kind: "end", end: message });
          // Close from this side too: waiting for the server's close would hold the process.
          ws.close(1000, "build ended");
        }
      });
      ws.addEventListener("close", (event) => {
        ctx.io.signal?.removeEventListener("abort", onAbort);
        settle({
          kind: "dropped",
          reason: `closed (${event.code}${event.reason ? ` ${event.reason}` : ""})`,
        });
      });
      ws.addEventListener("error", () => {
        settle({ kind: "dropped", reason: "connection failed" });
      });
    });
    if (outcome.kind === "end") return outcome.end;
    if (outcome.kind === "aborted") return undefined;
    if (attempt >= MAX_RECONNECTS) {
      throw new CliError(`lost the log stream: ${outcome.reason}`, EXIT.error);
    }
    // Before reconnecting, make sure the build (still) exists and may be read: a refusal is
    // reported as the API's error rather than as a dropped stream.
    await client.get(path.replace(/\/logs$/, ""));
    ctx.note(`log stream ${outcome.reason}; reconnecting…`);
    await ctx.io.sleep(1000 * (attempt + 1), ctx.io.signal);
    if (ctx.io.signal?.aborted) return undefined;
  }
}
