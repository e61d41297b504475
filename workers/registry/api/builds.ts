// Builds of a repository (starting one is manual-builds.ts):
//   GET  /repositories/:name/builds                 ?limit=&cursor= → {builds, next_cursor}, newest first
//   GET  /repositories/:name/builds/:id             the build, its phases and its log size
//   POST /repositories/:name/builds/:id/cancel      at any phase (write permission); 409 if ended
//   GET  /repositories/:name/builds/:id/logs        ?after=<seq>&limit= → {lines, next_after, finished}
//   GET  /repositories/:name/builds/:id/logs        ?follow=1&after=<seq> with Upgrade: websocket:
//        the lines after `after`, then live ones (schema/builds.ts BuildWatchMessage)
// Seeing builds and logs takes read (pull) permission. Served through repository-subroutes.ts.
import {
  BUILD_ID,
  buildLogPage,
  buildObjects,
  cancelBuild,
  describeBuild,
  listBuilds,
  MAX_LOG_PAGE,
  watchBuildLogs,
} from "../services/builds.ts";
import { invalid } from "../services/identity/errors.ts";
import { type ApiContext, identityContext, pageBody, pageOf, repositoryParam } from "./context.ts";
import type { RepositorySubroute } from "./repository-subroutes.ts";

const ID = BUILD_ID.source.slice(1, -1);

export const buildSubroutes: RepositorySubroute[] = [
  { method: "GET", pattern: /^(.+)\/builds$/, handle: (c, match) => list(c, match[1]!) },
  {
    method: "GET",
    pattern: new RegExp(`^(.+)/builds/(${ID})$`),
    handle: (c, match) => show(c, match[1]!, match[2]!),
  },
  {
    method: "POST",
    pattern: new RegExp(`^(.+)/builds/(${ID})/cancel$`),
    handle: (c, match) => cancel(c, match[1]!, match[2]!),
  },
  {
    method: "GET",
    pattern: new RegExp(`^(.+)/builds/(${ID})/logs$`),
    handle: (c, match) => logs(c, match[1]!, match[2]!),
  },
];

async function list(c: ApiContext, repository: string): Promise<Response> {
  const page = await listBuilds(identityContext(c), repositoryParam(repository), pageOf(c, 2));
  return c.json(pageBody("builds", page));
}

async function show(c: ApiContext, repository: string, id: string): Promise<Response> {
  const name = repositoryParam(repository);
  return c.json(await describeBuild(identityContext(c), buildObjects(c.env), name, id));
}

async function cancel(c: ApiContext, repository: string, id: string): Promise<Response> {
  const name = repositoryParam(repository);
  return c.json(await cancelBuild(identityContext(c), buildObjects(c.env), name, id));
}

async function logs(c: ApiContext, repository: string, id: string): Promise<Response> {
  const name = repositoryParam(repository);
  const after = sequenceOf(c.req.query("after"));
  const follow = c.req.query("follow");
  if (follow !== undefined) {
    if (follow !== "1" && follow !== "true") throw invalid("follow must be 1");
    if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") {
      throw invalid("follow=1 takes a WebSocket upgrade (Upgrade: websocket)");
    }
    return watchBuildLogs(identityContext(c), buildObjects(c.env), name, id, after);
  }
  const rawLimit = c.req.query("limit") ?? "500";
  if (!/^\d{1,5}$/.test(rawLimit) || Number(rawLimit) < 1) {
    throw invalid(`limit must be an integer from 1 to ${MAX_LOG_PAGE}`);
  }
  const limit = Math.min(Number(rawLimit), MAX_LOG_PAGE);
  const page = await buildLogPage(identityContext(c), buildObjects(c.env), name, id, after, limit);
  return c.json({ lines: page.lines, next_after: page.nextAfter, finished: page.finished });
}

function sequenceOf(raw: string | undefined): number {
  if (raw === undefined) return 0;
  if (!/^\d{1,15}$/.test(raw)) throw invalid("after must be a log sequence number (0 or more)");
  return Number(raw);
}
