// Robot accounts of a namespace, for its administrators (the user for their own namespace, the
// admins of an organization). `:name` is the short name or the full `namespace+name`.
//   POST   /namespaces/:ns/robots                   {name, description?} → token, shown once
//   GET    /namespaces/:ns/robots                   ?limit=&cursor= (no secrets)
//   GET    /namespaces/:ns/robots/:name
//   DELETE /namespaces/:ns/robots/:name
//   POST   /namespaces/:ns/robots/:name/regenerate  → new token, shown once
import { Hono } from "hono";
import { checkLabel, robotShortname } from "../services/identity/names.ts";
import {
  createRobot,
  deleteRobot,
  describeRobot,
  listRobots,
  regenerateRobotToken,
} from "../services/identity/robots.ts";
import {
  type ApiEnv,
  identityContext,
  optionalString,
  pageBody,
  pageOf,
  readBody,
  requiredString,
} from "./context.ts";

export const robotsApi = new Hono<ApiEnv>();

const NO_STORE = { "Cache-Control": "no-store" };

robotsApi.post("/namespaces/:ns/robots", async (c) => {
  const ns = c.req.param("ns");
  const body = await readBody(c, ["name", "description"]);
  const description = optionalString(body, "description");
  const robot = await createRobot(identityContext(c), ns, {
    shortname: robotShortname(ns, requiredString(body, "name")),
    ...(description !== undefined
      ? { description: checkLabel("description", description, 500) }
      : {}),
  });
  return c.json(robot, 201, NO_STORE);
});

robotsApi.get("/namespaces/:ns/robots", async (c) =>
  c.json(pageBody("robots", await listRobots(identityContext(c), c.req.param("ns"), pageOf(c, 1)))),
);

robotsApi.get("/namespaces/:ns/robots/:name", async (c) => {
  const ns = c.req.param("ns");
  return c.json(
    await describeRobot(identityContext(c), ns, robotShortname(ns, c.req.param("name"))),
  );
});

robotsApi.delete("/namespaces/:ns/robots/:name", async (c) => {
  const ns = c.req.param("ns");
  await deleteRobot(identityContext(c), ns, robotShortname(ns, c.req.param("name")));
  return c.body(null, 204);
});

robotsApi.post("/namespaces/:ns/robots/:name/regenerate", async (c) => {
  const ns = c.req.param("ns");
  const robot = await regenerateRobotToken(
    identityContext(c),
    ns,
    robotShortname(ns, c.req.param("name")),
  );
  return c.json(robot, 200, NO_STORE);
});
