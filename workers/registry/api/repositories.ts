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
import { invalid, notFound } from "../services/identity/errors.ts";
import {
  createRepository,
  deleteRepository,
  describeRepository,
  listRepositories,
  updateRepository,
} from "../services/identity/repositories.ts";
import {
  type ApiEnv,
  identityContext,
  optionalOneOf,
  pageBody,
  pageOf,
  readBody,
  repositoryParam,
  requiredString,
} from "./context.ts";
import { findSubroute } from "./repository-subroutes.ts";

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
  const subroute = findSubroute("GET", c.req.param("name"));
  if (subroute) return subroute(c);
  return c.json(await describeRepository(identityContext(c), repositoryParam(c.req.param("name"))));
});

repositoriesApi.put("/repositories/:name{.+}", async (c) => {
  const subroute = findSubroute("PUT", c.req.param("name"));
  if (subroute) return subroute(c);
  throw notFound(`no endpoint PUT ${new URL(c.req.url).pathname}`);
});

repositoriesApi.post("/repositories/:name{.+}", async (c) => {
  const subroute = findSubroute("POST", c.req.param("name"));
  if (subroute) return subroute(c);
  throw notFound(`no endpoint POST ${new URL(c.req.url).pathname}`);
});

repositoriesApi.patch("/repositories/:name{.+}", async (c) => {
  const subroute = findSubroute("PATCH", c.req.param("name"));
  if (subroute) return subroute(c);
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
  const subroute = findSubroute("DELETE", c.req.param("name"));
  if (subroute) return subroute(c);
  const name = repositoryParam(c.req.param("name"));
  await deleteRepository(identityContext(c), c.var.services.objects, name);
  return c.body(null, 204);
});
