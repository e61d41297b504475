// The CLI's commands: each names its words, arguments and options, and maps them onto one or a
// few /api/v1 calls (see workers/registry/api/*.ts for the endpoints), then prints the answer.
import { oneOf } from "./args.ts";
import { buildCommands } from "./builds.ts";
import { type Command, type CommandContext, listAll, pathOf } from "./context.ts";
import { CliError, EXIT, UsageError } from "./errors.ts";
import { loginCommand, logoutCommand, readNewPassword, whoamiCommand } from "./login.ts";
import { logsCommand } from "./logs.ts";
import { type Column, details, formatTime, listOrEmpty } from "./output.ts";
import { quotaCommand } from "./quota.ts";

const TEAM_ROLES = ["member", "creator", "admin"] as const;
const PERMISSION_ROLES = ["read", "write", "admin"] as const;
const VISIBILITIES = ["private", "public"] as const;
const STATES = ["normal", "read-only"] as const;

// ---- what the API returns (workers/registry/services/identity/*.ts) ---------------------------

interface Organization {
  name: string;
  createdAt: string;
  role: string | null;
  admin: boolean;
}
interface Team {
  name: string;
  organization: string;
  role: string;
  members: number;
  createdAt: string;
}
interface Robot {
  name: string;
  shortname: string;
  namespace: string;
  description: string | null;
  createdAt: string;
  token?: string;
}
interface Repository {
  name: string;
  namespace: string;
  visibility: string;
  state: string;
  createdAt: string;
  access?: { actions: string[]; admin: boolean };
}
interface Permission {
  kind: string;
  name: string | null;
  role: string;
}
interface AppToken {
  id: string;
  name: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
  token?: string;
}
interface User {
  username: string;
  email: string | null;
  superuser: boolean;
  createdAt: string;
}
interface Pulls {
  repository: string;
  days: { day: string; count: number }[];
  total: number;
}

// ---- shared pieces ---------------------------------------------------------------------------

const CREATED: Column<{ createdAt: string }> = {
  header: "created",
  value: (row) => formatTime(row.createdAt),
};

/** `acme+ci` → its namespace and short name; a usage error otherwise. */
export function splitRobot(name: string): { namespace: string; shortname: string } {
  const plus = name.indexOf("+");
  if (plus <= 0 || plus === name.length - 1) {
    throw new UsageError(`a robot is named <namespace>+<name>, like acme+ci (got "${name}")`);
  }
  return { namespace: name.slice(0, plus), shortname: name.slice(plus + 1) };
}

export interface PrincipalRef {
  kind: "user" | "team" | "robot";
  id: string;
}

/**
 * Who a permission is for, as people write it: `alice` (a user), `acme+ci` (a robot: it has a
 * `+`), `acme/devs` (a team: it has a `/`), or explicitly `user:…`, `team:…`, `robot:…` (a
 * team or robot of the repository's own namespace may be given by its short name that way).
 */
export function parsePrincipal(text: string): PrincipalRef {
  const explicit = /^(user|team|robot):(.+)$/.exec(text);
  if (explicit) return { kind: explicit[1] as PrincipalRef["kind"], id: explicit[2]! };
  if (text.includes(":")) {
    throw new UsageError(`unknown principal kind in "${text}": use user:, team: or robot:`);
  }
  if (text.includes("+")) return { kind: "robot", id: text };
  if (text.includes("/")) return { kind: "team", id: text };
  if (text === "") throw new UsageError("the principal is empty");
  return { kind: "user", id: text };
}

function principalPath(principal: PrincipalRef): string {
  return `${principal.kind}/${encodeURIComponent(principal.id)}`;
}

/** Destructive commands ask first on a terminal; scripts must say --yes. */
async function confirm(ctx: CommandContext, what: string, name: string): Promise<void> {
  if (ctx.flag("yes")) return;
  if (!ctx.io.prompt) {
    throw new UsageError(`deleting ${what} ${name} cannot be undone: pass --yes to confirm`);
  }
  const answer = await ctx.io.prompt(`Delete ${what} ${name}? Type its name to confirm: `, {
    secret: false,
  });
  if (answer.trim() !== name) throw new CliError("not confirmed; nothing was deleted", EXIT.error);
}

const YES = {
  yes: { type: "boolean", short: "y", description: "do not ask for confirmation" },
} as const;

function done(ctx: CommandContext, message: string, value: Record<string, unknown> = {}): void {
  ctx.print({ ok: true, ...value }, () => message);
}

function secretNotice(kind: string): string {
  return `Store this ${kind} now: it is shown once and cannot be retrieved later.`;
}

// ---- organizations ---------------------------------------------------------------------------

const orgDetails = (org: Organization) =>
  details([
    ["organization", org.name],
    ["created", formatTime(org.createdAt)],
    ["your role", org.role],
    ["admin", org.admin ? "yes" : "no"],
  ]);

const orgCommands: Command[] = [
  {
    path: ["org", "create"],
    args: ["name"],
    summary: "create an organization (you become its admin)",
    async run(ctx) {
      const client = await ctx.client();
      const org = await client.post<Organization>("/organizations", { name: ctx.arg("name") });
      ctx.print(org, (o) => `created organization ${o.name}\n${orgDetails(o)}`);
    },
  },
  {
    path: ["org", "show"],
    args: ["name"],
    summary: "show an organization and its teams",
    async run(ctx) {
      const client = await ctx.client();
      const name = ctx.arg("name");
      const org = await client.get<Organization>(`/organizations/${encodeURIComponent(name)}`);
      // Teams are for its admins; members see the organization only.
      const teams = org.admin
        ? await listAll<Team>(client, `/organizations/${encodeURIComponent(name)}/teams`, "teams")
        : undefined;
      ctx.print(teams ? { ...org, teams } : org, () =>
        teams
          ? `${orgDetails(org)}\n\n${listOrEmpty(teams, TEAM_COLUMNS, "no teams")}`
          : orgDetails(org),
      );
    },
  },
  {
    path: ["org", "delete"],
    args: ["name"],
    summary: "delete an organization that holds no repositories",
    options: YES,
    async run(ctx) {
      const name = ctx.arg("name");
      await confirm(ctx, "organization", name);
      await (await ctx.client()).delete(`/organizations/${encodeURIComponent(name)}`);
      done(ctx, `deleted organization ${name}`, { deleted: name });
    },
  },
];

// ---- teams -----------------------------------------------------------------------------------

const TEAM_COLUMNS: Column<Team>[] = [
  { header: "team", value: (t) => t.name },
  { header: "role", value: (t) => t.role },
  { header: "members", value: (t) => t.members },
  CREATED,
];

const teamPath = (ctx: CommandContext) =>
  `/organizations/${encodeURIComponent(ctx.arg("org"))}/teams/${encodeURIComponent(ctx.arg("team"))}`;

const teamCommands: Command[] = [
  {
    path: ["team", "create"],
    args: ["org", "team"],
    summary: "create a team (role member, creator or admin)",
    options: {
      role: { type: "string", value: "role", description: "member (default), creator or admin" },
    },
    async run(ctx) {
      const role = oneOf(ctx.option("role") ?? "member", TEAM_ROLES, "--role");
      const team = await (await ctx.client()).post<Team>(
        `/organizations/${encodeURIComponent(ctx.arg("org"))}/teams`,
        {
          name: ctx.arg("team"),
          role,
        },
      );
      ctx.print(team, (t) => `created team ${t.organization}/${t.name} (${t.role})`);
    },
  },
  {
    path: ["team", "list"],
    args: ["org"],
    summary: "list an organization's teams",
    async run(ctx) {
      const teams = await listAll<Team>(
        await ctx.client(),
        `/organizations/${encodeURIComponent(ctx.arg("org"))}/teams`,
        "teams",
      );
      ctx.print({ teams }, () => listOrEmpty(teams, TEAM_COLUMNS, "no teams"));
    },
  },
  {
    path: ["team", "members"],
    args: ["org", "team"],
    summary: "list a team's members",
    async run(ctx) {
      const members = await listAll<{ username: string }>(
        await ctx.client(),
        `${teamPath(ctx)}/members`,
        "members",
      );
      ctx.print({ members }, () =>
        listOrEmpty(members, [{ header: "username", value: (m) => m.username }], "no members"),
      );
    },
  },
  {
    path: ["team", "role"],
    args: ["org", "team", "role"],
    summary: "change a team's role",
    async run(ctx) {
      const role = oneOf(ctx.arg("role"), TEAM_ROLES, "the role");
      const team = await (await ctx.client()).patch<Team>(teamPath(ctx), { role });
      ctx.print(team, (t) => `team ${t.organization}/${t.name} is now ${t.role}`);
    },
  },
  {
    path: ["team", "delete"],
    args: ["org", "team"],
    summary: "delete a team",
    async run(ctx) {
      await (await ctx.client()).delete(teamPath(ctx));
      done(ctx, `deleted team ${ctx.arg("org")}/${ctx.arg("team")}`);
    },
  },
  {
    path: ["team", "add"],
    args: ["org", "team", "username"],
    summary: "add a user to a team",
    async run(ctx) {
      const username = ctx.arg("username");
      const result = await (await ctx.client()).put<{ username: string; team: string }>(
        `${teamPath(ctx)}/members/${encodeURIComponent(username)}`,
      );
      ctx.print(result, (r) => `${r.username} is a member of ${r.team}`);
    },
  },
  {
    path: ["team", "remove"],
    args: ["org", "team", "username"],
    summary: "remove a user from a team",
    async run(ctx) {
      const username = ctx.arg("username");
      await (await ctx.client()).delete(`${teamPath(ctx)}/members/${encodeURIComponent(username)}`);
      done(ctx, `removed ${username} from ${ctx.arg("org")}/${ctx.arg("team")}`);
    },
  },
];

// ---- robots ----------------------------------------------------------------------------------

const ROBOT_COLUMNS: Column<Robot>[] = [
  { header: "robot", value: (r) => r.name },
  { header: "description", value: (r) => r.description },
  CREATED,
];

function robotPath(name: string): string {
  const { namespace, shortname } = splitRobot(name);
  return `/namespaces/${encodeURIComponent(namespace)}/robots/${encodeURIComponent(shortname)}`;
}

function showRobotToken(robot: Robot): string {
  return (
    details([
      ["robot", robot.name],
      ["token", robot.token],
    ]) +
    `\n${secretNotice("token")}\nLog in with: skopeo login -u '${robot.name}' -p <token> <registry>`
  );
}

const robotCommands: Command[] = [
  {
    path: ["robot", "create"],
    args: ["name"],
    summary: "create a robot account <namespace>+<name> and print its token",
    options: {
      description: { type: "string", value: "text", description: "what the robot is for" },
    },
    async run(ctx) {
      const { namespace, shortname } = splitRobot(ctx.arg("name"));
      const description = ctx.option("description");
      const robot = await (await ctx.client()).post<Robot>(
        `/namespaces/${encodeURIComponent(namespace)}/robots`,
        {
          name: shortname,
          ...(description !== undefined ? { description } : {}),
        },
      );
      ctx.print(robot, (r) => `created robot ${r.name}\n${showRobotToken(r)}`);
    },
  },
  {
    path: ["robot", "list"],
    args: ["namespace"],
    summary: "list a namespace's robot accounts",
    async run(ctx) {
      const robots = await listAll<Robot>(
        await ctx.client(),
        `/namespaces/${encodeURIComponent(ctx.arg("namespace"))}/robots`,
        "robots",
      );
      ctx.print({ robots }, () => listOrEmpty(robots, ROBOT_COLUMNS, "no robots"));
    },
  },
  {
    path: ["robot", "show"],
    args: ["name"],
    summary: "show a robot account",
    async run(ctx) {
      const robot = await (await ctx.client()).get<Robot>(robotPath(ctx.arg("name")));
      ctx.print(robot, (r) =>
        details([
          ["robot", r.name],
          ["description", r.description],
          ["created", formatTime(r.createdAt)],
        ]),
      );
    },
  },
  {
    path: ["robot", "delete"],
    args: ["name"],
    summary: "delete a robot account (its token stops working)",
    async run(ctx) {
      const name = ctx.arg("name");
      await (await ctx.client()).delete(robotPath(name));
      done(ctx, `deleted robot ${name}`);
    },
  },
  {
    path: ["robot", "regenerate"],
    args: ["name"],
    summary: "replace a robot's token (the old one stops working)",
    async run(ctx) {
      const robot = await (await ctx.client()).post<Robot>(
        `${robotPath(ctx.arg("name"))}/regenerate`,
      );
      ctx.print(robot, (r) => `new token for ${r.name}\n${showRobotToken(r)}`);
    },
  },
];

// ---- repositories ----------------------------------------------------------------------------

const REPOSITORY_COLUMNS: Column<Repository>[] = [
  { header: "repository", value: (r) => r.name },
  { header: "visibility", value: (r) => r.visibility },
  { header: "state", value: (r) => r.state },
  CREATED,
];

const repositoryDetails = (r: Repository) =>
  details([
    ["repository", r.name],
    ["visibility", r.visibility],
    ["state", r.state],
    ["created", formatTime(r.createdAt)],
    ...(r.access
      ? ([
          ["your access", r.access.actions.join(", ") || "none"],
          ["admin", r.access.admin ? "yes" : "no"],
        ] as const)
      : []),
  ]);

async function patchRepository(ctx: CommandContext, change: Record<string, string>): Promise<void> {
  const repo = await (await ctx.client()).patch<Repository>(
    `/repositories/${pathOf(ctx.arg("name"))}`,
    change,
  );
  ctx.print(repo, (r) => `${r.name}: ${r.visibility}, ${r.state}`);
}

const repoCommands: Command[] = [
  {
    path: ["repo", "create"],
    args: ["name"],
    summary: "create a repository (private unless --visibility public)",
    options: {
      visibility: { type: "string", value: "private|public", description: "default private" },
      public: { type: "boolean", description: "same as --visibility public" },
    },
    async run(ctx) {
      const visibility = oneOf(
        ctx.flag("public") ? "public" : (ctx.option("visibility") ?? "private"),
        VISIBILITIES,
        "--visibility",
      );
      const repo = await (await ctx.client()).post<Repository>("/repositories", {
        name: ctx.arg("name"),
        visibility,
      });
      ctx.print(repo, (r) => `created repository ${r.name}\n${repositoryDetails(r)}`);
    },
  },
  {
    path: ["repo", "list"],
    args: [],
    summary: "list the repositories you can see",
    options: {
      namespace: { type: "string", value: "namespace", description: "only this namespace" },
    },
    async run(ctx) {
      const namespace = ctx.option("namespace");
      const repositories = await listAll<Repository>(
        await ctx.client(),
        "/repositories",
        "repositories",
        { namespace },
      );
      ctx.print({ repositories }, () =>
        listOrEmpty(repositories, REPOSITORY_COLUMNS, "no repositories"),
      );
    },
  },
  {
    path: ["repo", "show"],
    args: ["name"],
    summary: "show a repository and your access to it",
    async run(ctx) {
      const repo = await (await ctx.client()).get<Repository>(
        `/repositories/${pathOf(ctx.arg("name"))}`,
      );
      ctx.print(repo, repositoryDetails);
    },
  },
  {
    path: ["repo", "visibility"],
    args: ["name", "visibility"],
    summary: "make a repository public or private",
    async run(ctx) {
      await patchRepository(ctx, {
        visibility: oneOf(ctx.arg("visibility"), VISIBILITIES, "the visibility"),
      });
    },
  },
  {
    path: ["repo", "state"],
    args: ["name", "state"],
    summary: "set a repository normal or read-only",
    async run(ctx) {
      await patchRepository(ctx, { state: oneOf(ctx.arg("state"), STATES, "the state") });
    },
  },
  {
    path: ["repo", "delete"],
    args: ["name"],
    summary: "delete a repository with its tags and manifests",
    options: YES,
    async run(ctx) {
      const name = ctx.arg("name");
      await confirm(ctx, "repository", name);
      await (await ctx.client()).delete(`/repositories/${pathOf(name)}`);
      done(ctx, `deleted repository ${name}`, { deleted: name });
    },
  },
  {
    path: ["repo", "pulls"],
    args: ["name"],
    summary: "manifest pulls per day",
    options: {
      days: { type: "string", value: "n", description: "how many days back (default 30)" },
    },
    async run(ctx) {
      const days = ctx.option("days");
      const pulls = await (await ctx.client()).get<Pulls>(
        `/repositories/${pathOf(ctx.arg("name"))}/pulls`,
        { days },
      );
      ctx.print(
        pulls,
        (p) =>
          `${listOrEmpty(
            p.days,
            [
              { header: "day", value: (d) => d.day },
              { header: "pulls", value: (d) => d.count },
            ],
            "no days",
          )}\ntotal ${p.total}`,
      );
    },
  },
];

// ---- permissions -----------------------------------------------------------------------------

const PERMISSION_COLUMNS: Column<Permission>[] = [
  { header: "kind", value: (p) => p.kind },
  { header: "name", value: (p) => p.name ?? "(deleted)" },
  { header: "role", value: (p) => p.role },
];

function permissionCommands(
  group: "perm" | "default-perm",
  target: "repository" | "org",
  base: (name: string) => string,
  noun: string,
): Command[] {
  return [
    {
      path: [group, "grant"],
      args: [target, "principal", "role"],
      summary: `grant read|write|admin on ${noun} to alice, org/team or ns+robot`,
      async run(ctx) {
        const principal = parsePrincipal(ctx.arg("principal"));
        const role = oneOf(ctx.arg("role"), PERMISSION_ROLES, "the role");
        const permission = await (await ctx.client()).put<Permission>(
          `${base(ctx.arg(target))}/${principalPath(principal)}`,
          { role },
        );
        ctx.print(
          permission,
          (p) =>
            `${p.kind} ${p.name} has ${p.role} on ${ctx.arg(target)}${group === "default-perm" ? " (new repositories)" : ""}`,
        );
      },
    },
    {
      path: [group, "revoke"],
      args: [target, "principal"],
      summary: `revoke a permission on ${noun}`,
      async run(ctx) {
        const principal = parsePrincipal(ctx.arg("principal"));
        await (await ctx.client()).delete(`${base(ctx.arg(target))}/${principalPath(principal)}`);
        done(ctx, `revoked ${principal.kind} ${principal.id} on ${ctx.arg(target)}`);
      },
    },
    {
      path: [group, "list"],
      args: [target],
      summary: `list the permissions on ${noun}`,
      async run(ctx) {
        const permissions = await listAll<Permission>(
          await ctx.client(),
          base(ctx.arg(target)),
          "permissions",
        );
        ctx.print({ permissions }, () =>
          listOrEmpty(permissions, PERMISSION_COLUMNS, "no permissions"),
        );
      },
    },
  ];
}

// ---- app tokens and users --------------------------------------------------------------------

const TOKEN_COLUMNS: Column<AppToken>[] = [
  { header: "id", value: (t) => t.id },
  { header: "name", value: (t) => t.name },
  CREATED,
  { header: "expires", value: (t) => formatTime(t.expiresAt) },
  { header: "last used", value: (t) => formatTime(t.lastUsedAt) },
  { header: "revoked", value: (t) => formatTime(t.revokedAt) },
];

const tokenCommands: Command[] = [
  {
    path: ["token", "create"],
    args: ["name"],
    summary: "create a personal app token and print it",
    options: {
      "expires-in-days": {
        type: "string",
        value: "days",
        description: "expire after this many days",
      },
    },
    async run(ctx) {
      const raw = ctx.option("expires-in-days");
      const expiresInDays =
        raw === undefined ? undefined : positiveInteger(raw, "--expires-in-days");
      const token = await (await ctx.client()).post<AppToken>("/user/tokens", {
        name: ctx.arg("name"),
        ...(expiresInDays !== undefined ? { expiresInDays } : {}),
      });
      ctx.print(
        token,
        (t) =>
          `${details([
            ["id", t.id],
            ["name", t.name],
            ["expires", formatTime(t.expiresAt)],
            ["token", t.token],
          ])}\n${secretNotice("token")}`,
      );
    },
  },
  {
    path: ["token", "list"],
    args: [],
    summary: "list your app tokens (never their secrets)",
    async run(ctx) {
      const tokens = await listAll<AppToken>(await ctx.client(), "/user/tokens", "tokens");
      ctx.print({ tokens }, () => listOrEmpty(tokens, TOKEN_COLUMNS, "no tokens"));
    },
  },
  {
    path: ["token", "revoke"],
    args: ["id"],
    summary: "revoke one of your app tokens",
    async run(ctx) {
      const id = ctx.arg("id");
      await (await ctx.client()).delete(`/user/tokens/${encodeURIComponent(id)}`);
      done(ctx, `revoked token ${id}`);
    },
  },
];

const userCommands: Command[] = [
  {
    path: ["user", "create"],
    args: ["username"],
    summary: "create a user account (superusers only)",
    options: {
      email: { type: "string", value: "address", description: "their email address" },
      superuser: { type: "boolean", description: "make them a superuser" },
      "password-stdin": { type: "boolean", description: "read their password from standard input" },
    },
    async run(ctx) {
      const username = ctx.arg("username");
      const password = await readNewPassword(ctx, `Password for ${username}: `);
      const email = ctx.option("email");
      const user = await (await ctx.client()).post<User>("/users", {
        username,
        password,
        ...(email !== undefined ? { email } : {}),
        ...(ctx.flag("superuser") ? { superuser: true } : {}),
      });
      ctx.print(user, (u) => `created user ${u.username}${u.superuser ? " (superuser)" : ""}`);
    },
  },
];

function positiveInteger(raw: string, what: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1)
    throw new UsageError(`${what} must be a positive integer`);
  return Number(raw);
}

export const COMMANDS: readonly Command[] = [
  loginCommand,
  logoutCommand,
  whoamiCommand,
  ...orgCommands,
  ...teamCommands,
  ...robotCommands,
  ...repoCommands,
  ...permissionCommands(
    "perm",
    "repository",
    (name) => `/repositories/${pathOf(name)}/permissions`,
    "a repository",
  ),
  ...permissionCommands(
    "default-perm",
    "org",
    (org) => `/organizations/${encodeURIComponent(org)}/default-permissions`,
    "an org's new repositories",
  ),
  ...tokenCommands,
  ...userCommands,
  logsCommand,
  ...buildCommands,
  quotaCommand,
];
