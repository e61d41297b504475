// Repositories. `:name{.+}` is the whole repository name, slashes included; paths that address a
// repository's permissions (`…/permissions[/:kind/:id]`) are handed to permissions.ts first.
//   POST   /repositories             {name, visibility?: private|public}
//   GET    /repositories             ?namespace=&limit=&cursor= (only what the caller may see)
//   GET    /repositories/:name       visibility, state and the caller's access
//   PATCH  /repositories/:name       {visibility?, state?: normal|read-only} (repository admins)
//   DELETE /repositories/:name       the row, its permissions, its manifests and tags (admins)
//   GET    /repositories/:name/pulls ?days= (answered for audit-logs.ts: see `pullCounts`)
import { Hono } from "hono";
import { REPOSITORY_STATES, VISIBILITIES } from "../../../schema/db/d1.ts";
import { repositoryPulls } from "../services/audit-log.ts";
import { invalid, notFound } from "../services/identity/errors.ts";
import {
  createRepository,
  deleteRepository,
  describeRepository,
  listRepositories,
  updateRepository,
} from "../services/identity/repositories.ts";
import {
  type ApiContext,
  type ApiEnv,
  identityContext,
  optionalOneOf,
  pageBody,
  pageOf,
  readBody,
  repositoryParam,
  requiredString,
} from "./context.ts";
import { permissionRoute } from "./permissions.ts";

export const repositoriesApi = new Hono<ApiEnv>();

repositoriesApi.post("/repositories", async (c) => {
  const body = await readBody(c, ["name", "visibility"]);
  const name = repositoryParam(requiredString(body, "name"));
  const visibility = optionalOneOf(body, "visibility", VISIBILITIES) ?? "private";
  return c.json(await createRepository(identityContext(c), name, visibility), 201);
});

repositoriesApi.get("/repositories", async (c) => {
  const namespace = c.req.query("namespace");
  const page = await listRepositories(
    identityContext(c),
    namespace !== undefined ? { namespace } : {},
    pageOf(c, 1),
  );
  return c.json(pageBody("repositories", page));
});

repositoriesApi.get("/repositories/:name{.+}", async (c) => {
  const permissions = permissionRoute("GET", c.req.param("name"));
  if (permissions) return permissions(c);
  const pulls = PULLS.exec(c.req.param("name"));
  if (pulls) return pullCounts(c, pulls[1]!);
  return c.json(await describeRepository(identityContext(c), repositoryParam(c.req.param("name"))));
});

repositoriesApi.put("/repositories/:name{.+}", async (c) => {
  const permissions = permissionRoute("PUT", c.req.param("name"));
  if (permissions) return permissions(c);
  throw notFound(`no endpoint PUT ${new URL(c.req.url).pathname}`);
});

repositoriesApi.patch("/repositories/:name{.+}", async (c) => {
  const name = repositoryParam(c.req.param("name"));
  const body = await readBody(c, ["visibility", "state"]);
  const visibility = optionalOneOf(body, "visibility", VISIBILITIES);
  const state = optionalOneOf(body, "state", REPOSITORY_STATES);
  if (visibility === undefined && state === undefined) {
    throw invalid("nothing to change: send visibility and/or state");
  }
  return c.json(
    await updateRepository(identityContext(c), name, {
      ...(visibility !== undefined ? { visibility } : {}),
      ...(state !== undefined ? { state } : {}),
    }),
  );
});

repositoriesApi.delete("/repositories/:name{.+}", async (c) => {
  const permissions = permissionRoute("DELETE", c.req.param("name"));
  if (permissions) return permissions(c);
  const name = repositoryParam(c.req.param("name"));
  await deleteRepository(identityContext(c), c.var.services.objects, name);
  return c.body(null, 204);
});

const PULLS = /^(.+)\/pulls$/;

/**
 * GET /repositories/:name/pulls, which audit-logs.ts declares too: its route can never match next
 * to `/repositories/:name{.+}` (RegExpRouter picks one of the overlapping patterns — this one), so
 * the request is answered here, through the same service.
 * TODO(lead): have audit-logs.ts export its handler (`(c, repository) => Response`) and call that
 * here instead of repeating its `days` validation.
 */
async function pullCounts(c: ApiContext, repository: string): Promise<Response> {
  const unknown = Object.keys(c.req.queries()).filter((key) => key !== "days");
  if (unknown.length > 0) {
    throw invalid(`unknown query parameter ${unknown.join(", ")} (expected: days)`);
  }
  const raw = c.req.query("days") ?? "30";
  const days = Number(raw);
  if (!/^\d{1,3}$/.test(raw) || days < 1 || days > 366) {
    throw invalid("days must be an integer from 1 to 366");
  }
  return c.json(await repositoryPulls(identityContext(c), repositoryParam(repository), days));
}
