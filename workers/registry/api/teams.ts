// Teams of an organization and their members, for the organization's admins:
//   POST   /organizations/:org/teams                          {name, role: member|creator|admin}
//   GET    /organizations/:org/teams                          ?limit=&cursor=
//   GET    /organizations/:org/teams/:team
//   PATCH  /organizations/:org/teams/:team                    {role}
//   DELETE /organizations/:org/teams/:team
//   GET    /organizations/:org/teams/:team/members            ?limit=&cursor=
//   PUT    /organizations/:org/teams/:team/members/:username  (201 added, 200 already a member)
//   DELETE /organizations/:org/teams/:team/members/:username
import { Hono } from "hono";
import { TEAM_ROLES } from "../../../schema/db/d1.ts";
import { checkName } from "../services/identity/names.ts";
import {
  addMember,
  createTeam,
  deleteTeam,
  describeTeam,
  listMembers,
  listTeams,
  removeMember,
  updateTeamRole,
} from "../services/identity/organizations.ts";
import {
  type ApiEnv,
  identityContext,
  oneOf,
  pageBody,
  pageOf,
  readBody,
  requiredString,
} from "./context.ts";

export const teamsApi = new Hono<ApiEnv>();

teamsApi.post("/organizations/:org/teams", async (c) => {
  const body = await readBody(c, ["name", "role"]);
  const team = await createTeam(identityContext(c), c.req.param("org"), {
    name: checkName("team", requiredString(body, "name")),
    role: oneOf("role", body.role, TEAM_ROLES),
  });
  return c.json(team, 201);
});

teamsApi.get("/organizations/:org/teams", async (c) =>
  c.json(pageBody("teams", await listTeams(identityContext(c), c.req.param("org"), pageOf(c, 1)))),
);

teamsApi.get("/organizations/:org/teams/:team", async (c) =>
  c.json(await describeTeam(identityContext(c), c.req.param("org"), c.req.param("team"))),
);

teamsApi.patch("/organizations/:org/teams/:team", async (c) => {
  const body = await readBody(c, ["role"]);
  const role = oneOf("role", body.role, TEAM_ROLES);
  return c.json(
    await updateTeamRole(identityContext(c), c.req.param("org"), c.req.param("team"), role),
  );
});

teamsApi.delete("/organizations/:org/teams/:team", async (c) => {
  await deleteTeam(identityContext(c), c.req.param("org"), c.req.param("team"));
  return c.body(null, 204);
});

teamsApi.get("/organizations/:org/teams/:team/members", async (c) => {
  const page = await listMembers(
    identityContext(c),
    c.req.param("org"),
    c.req.param("team"),
    pageOf(c, 1),
  );
  return c.json(pageBody("members", page));
});

teamsApi.put("/organizations/:org/teams/:team/members/:username", async (c) => {
  const { org, team, username } = c.req.param();
  const added = await addMember(identityContext(c), org, team, username);
  return c.json({ username, team: `${org}/${team}` }, added ? 201 : 200);
});

teamsApi.delete("/organizations/:org/teams/:team/members/:username", async (c) => {
  const { org, team, username } = c.req.param();
  await removeMember(identityContext(c), org, team, username);
  return c.body(null, 204);
});
