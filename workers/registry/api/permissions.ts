// Permissions of a repository, for its administrators. `:kind` is user, team or robot; `:id` is
// the username, the team (`org/team`, or `team` in the repository's organization; `%2F` works
// too) or the robot (`ns+robot`, or `robot` in the repository's namespace).
//   GET    /repositories/:name/permissions             ?limit=&cursor=
//   PUT    /repositories/:name/permissions/:kind/:id   {role: read|write|admin}
//   DELETE /repositories/:name/permissions/:kind/:id
// These paths overlap `/repositories/:name{.+}` (a repository name may have any number of
// components), and hono's RegExpRouter does not prefer the route registered first among
// overlapping `{.+}` patterns; a lookbehind in the pattern would push the whole app, /v2 included,
// onto the slower TrieRouter. So they are served through repository-subroutes.ts.
import {
  grantPermission,
  listPermissions,
  revokePermission,
} from "../services/identity/permissions.ts";
import {
  type ApiContext,
  identityContext,
  pageBody,
  pageOf,
  principalKindParam,
  readBody,
  repositoryParam,
  roleOf,
} from "./context.ts";
import type { RepositorySubroute } from "./repository-subroutes.ts";

const LIST = /^(.+)\/permissions$/;
// The first `/permissions/<kind>/` wins, so a team id `org/team` may contain a slash.
const ONE = /^(.+?)\/permissions\/([^/]+)\/(.+)$/;

/** The permission endpoints, answered through repository-subroutes.ts. */
export const permissionSubroutes: RepositorySubroute[] = [
  { method: "GET", pattern: LIST, handle: (c, match) => list(c, match[1]!) },
  {
    method: "PUT",
    pattern: ONE,
    handle: (c, match) => grant(c, match[1]!, match[2]!, match[3]!),
  },
  {
    method: "DELETE",
    pattern: ONE,
    handle: (c, match) => revoke(c, match[1]!, match[2]!, match[3]!),
  },
];

async function list(c: ApiContext, repository: string): Promise<Response> {
  const name = repositoryParam(repository);
  const page = await listPermissions(identityContext(c), name, pageOf(c, 2));
  return c.json(pageBody("permissions", page));
}

async function grant(
  c: ApiContext,
  repository: string,
  kind: string,
  id: string,
): Promise<Response> {
  const name = repositoryParam(repository);
  const principalKind = principalKindParam(kind);
  const role = roleOf(await readBody(c, ["role"]));
  const { permission } = await grantPermission(identityContext(c), name, principalKind, id, role);
  return c.json(permission);
}

async function revoke(
  c: ApiContext,
  repository: string,
  kind: string,
  id: string,
): Promise<Response> {
  const name = repositoryParam(repository);
  await revokePermission(identityContext(c), name, principalKindParam(kind), id);
  return c.body(null, 204);
}
