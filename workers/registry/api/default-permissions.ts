// Default permissions of an organization (granted on each repository created in it from then on),
// for its admins. `:kind` and `:id` as in permissions.ts, relative to the organization.
//   GET    /organizations/:org/default-permissions             ?limit=&cursor=
//   PUT    /organizations/:org/default-permissions/:kind/:id   {role: read|write|admin}
//   DELETE /organizations/:org/default-permissions/:kind/:id
import { Hono } from "hono";
import {
  listDefaultPermissions,
  removeDefaultPermission,
  setDefaultPermission,
} from "../services/identity/permissions.ts";
import {
  type ApiEnv,
  identityContext,
  pageBody,
  pageOf,
  principalKindParam,
  readBody,
  roleOf,
} from "./context.ts";

export const defaultPermissionsApi = new Hono<ApiEnv>();

defaultPermissionsApi.get("/organizations/:org/default-permissions", async (c) => {
  const page = await listDefaultPermissions(identityContext(c), c.req.param("org"), pageOf(c, 2));
  return c.json(pageBody("permissions", page));
});

defaultPermissionsApi.put("/organizations/:org/default-permissions/:kind/:id{.+}", async (c) => {
  const kind = principalKindParam(c.req.param("kind"));
  const role = roleOf(await readBody(c, ["role"]));
  const { permission } = await setDefaultPermission(
    identityContext(c),
    c.req.param("org"),
    kind,
    c.req.param("id"),
    role,
  );
  return c.json(permission);
});

defaultPermissionsApi.delete("/organizations/:org/default-permissions/:kind/:id{.+}", async (c) => {
  const kind = principalKindParam(c.req.param("kind"));
  await removeDefaultPermission(identityContext(c), c.req.param("org"), kind, c.req.param("id"));
  return c.body(null, 204);
});
