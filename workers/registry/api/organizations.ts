// Organizations: POST /organizations (any user; they become its first admin, in team "owners"),
// GET /organizations/:org (members and superusers; others get 404), DELETE /organizations/:org
// (its admins, once it holds no repositories).
import { Hono } from "hono";
import { checkName } from "../services/identity/names.ts";
import {
  createOrganization,
  deleteOrganization,
  describeOrganization,
} from "../services/identity/organizations.ts";
import { type ApiEnv, identityContext, readBody, requiredString } from "./context.ts";

export const organizationsApi = new Hono<ApiEnv>();

organizationsApi.post("/organizations", async (c) => {
  const body = await readBody(c, ["name"]);
  const name = checkName("organization", requiredString(body, "name"));
  return c.json(await createOrganization(identityContext(c), name), 201);
});

organizationsApi.get("/organizations/:org", async (c) =>
  c.json(await describeOrganization(identityContext(c), c.req.param("org"))),
);

organizationsApi.delete("/organizations/:org", async (c) => {
  await deleteOrganization(identityContext(c), c.req.param("org"));
  return c.body(null, 204);
});
