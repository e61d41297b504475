// Each command against a scripted API: the requests it sends, what it prints (table or --json),
// and the exit code of each kind of failure.
import { statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parsePrincipal } from "./commands.ts";
import { readConfig, writeConfig } from "./config.ts";
import { EXIT } from "./errors.ts";
import { apiError, err, type FakeIo, fakeIo, jsonResponse, out } from "./fake-io.ts";
import { main } from "./main.ts";

const URL_ = "http://registry.test:5000";

/** A fake that is logged in (stored config) as alice. */
async function loggedIn(options: Parameters<typeof fakeIo>[0] = {}): Promise<FakeIo> {
  const fake = fakeIo(options);
  await writeConfig(path.join(fake.configHome, "edge-registry", "config.json"), {
    url: URL_,
    token: "era_alice",
    username: "alice",
    tokenId: "tok-1",
  });
  return fake;
}

const run = (fake: FakeIo, ...argv: string[]) => main(argv, fake.io);

const ORG = { name: "acme", createdAt: "2026-01-15T12:00:00.000Z", role: "admin", admin: true };
const REPO = {
  name: "acme/app",
  namespace: "acme",
  visibility: "private",
  state: "normal",
  createdAt: "2026-01-15T12:00:00.000Z",
  access: { actions: ["pull", "push", "delete"], admin: true },
};

describe("login", () => {
  it("trades the password for an app token and stores URL and token 0600", async () => {
    const fake = fakeIo({ stdin: "s3cret\n" });
    fake.answer("POST", "/api/v1/user/tokens", (request) => {
      expect(request.headers.get("Authorization")).toBe(`Basic ${btoa("admin:s3cret")}`);
      expect(request.body).toEqual({ name: "cli@testhost" });
      return jsonResponse(
        { id: "tok-9", name: "cli@testhost", token: "era_new", expiresAt: null },
        201,
      );
    });
    fake.answer("GET", "/api/v1/user", (request) => {
      expect(request.headers.get("Authorization")).toBe("Bearer era_new");
      return jsonResponse({
        username: "admin",
        superuser: true,
        email: null,
        createdAt: "2026-01-01T00:00:00Z",
      });
    });
    expect(await run(fake, "login", `${URL_}/`, "-u", "admin", "--password-stdin")).toBe(EXIT.ok);
    const file = path.join(fake.configHome, "edge-registry", "config.json");
    expect(await readConfig(file)).toEqual({
      url: URL_,
      token: "era_new",
      username: "admin",
      tokenId: "tok-9",
    });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(out(fake)).toContain(`logged in to ${URL_} as admin (superuser)`);
    expect(out(fake)).not.toContain("era_new");
  });

  it("asks for username and password on a terminal", async () => {
    const fake = fakeIo({ prompts: ["bob", "pw"] });
    fake.answer("POST", "/api/v1/user/tokens", (request) => {
      expect(request.headers.get("Authorization")).toBe(`Basic ${btoa("bob:pw")}`);
      return jsonResponse({ id: "t", name: "n", token: "era_b", expiresAt: null }, 201);
    });
    fake.answer("GET", "/api/v1/user", jsonResponse({ username: "bob", superuser: false }));
    expect(await run(fake, "login", URL_, "--token-name", "laptop")).toBe(EXIT.ok);
    expect(fake.requests[0]!.body).toEqual({ name: "laptop" });
  });

  it("stores an existing token from stdin after checking it", async () => {
    const fake = fakeIo({ stdin: "era_existing\n" });
    fake.answer("GET", "/api/v1/user", jsonResponse({ username: "ci", superuser: false }));
    expect(await run(fake, "login", URL_, "--token-stdin", "--json")).toBe(EXIT.ok);
    expect(JSON.parse(out(fake))).toMatchObject({ url: URL_, username: "ci", tokenId: null });
    expect(fake.requests.map((r) => `${r.method} ${r.url}`)).toEqual(["GET /api/v1/user"]);
  });

  it("fails with exit 3 on a wrong password and stores nothing", async () => {
    const fake = fakeIo({ stdin: "wrong" });
    fake.answer(
      "POST",
      "/api/v1/user/tokens",
      apiError(401, "UNAUTHORIZED", "invalid username or password"),
    );
    expect(await run(fake, "login", URL_, "-u", "admin", "--password-stdin")).toBe(EXIT.auth);
    expect(err(fake)).toMatch(/invalid username or password \(401\)/);
    expect(
      await readConfig(path.join(fake.configHome, "edge-registry", "config.json")),
    ).toBeUndefined();
  });

  it("needs --password-stdin without a terminal", async () => {
    const fake = fakeIo();
    expect(await run(fake, "login", URL_, "-u", "admin")).toBe(EXIT.usage);
    expect(err(fake)).toMatch(/--password-stdin/);
    expect(fake.requests).toEqual([]);
  });
});

describe("logout and whoami", () => {
  it("revokes the stored token and forgets it", async () => {
    const fake = await loggedIn();
    fake.answer("DELETE", "/api/v1/user/tokens/tok-1", new Response(null, { status: 204 }));
    expect(await run(fake, "logout")).toBe(EXIT.ok);
    expect(out(fake)).toBe(`logged out of ${URL_} (token revoked)`);
    expect(
      await readConfig(path.join(fake.configHome, "edge-registry", "config.json")),
    ).toBeUndefined();
  });

  it("shows the account", async () => {
    const fake = await loggedIn();
    fake.answer(
      "GET",
      "/api/v1/user",
      jsonResponse({
        username: "alice",
        email: null,
        superuser: false,
        createdAt: "2026-01-02T03:04:05Z",
        organizations: [{ name: "acme", role: "admin" }],
      }),
    );
    expect(await run(fake, "whoami")).toBe(EXIT.ok);
    expect(out(fake)).toContain("username:      alice");
    expect(out(fake)).toContain("organizations: acme (admin)");
  });
});

describe("credentials", () => {
  it("sends the stored token as a bearer, or REGISTRY_URL/REGISTRY_TOKEN when set", async () => {
    const stored = await loggedIn();
    stored.answer("GET", "/api/v1/organizations/acme", jsonResponse({ ...ORG, admin: false }));
    await run(stored, "org", "show", "acme");
    expect(stored.requests[0]!.headers.get("Authorization")).toBe("Bearer era_alice");

    const env = fakeIo({ env: { REGISTRY_URL: "http://other:1", REGISTRY_TOKEN: "era_env" } });
    let seen = "";
    env.io.fetch = async (input, init) => {
      seen = `${input} ${new Headers(init?.headers).get("Authorization")}`;
      return jsonResponse({ ...ORG, admin: false });
    };
    expect(await run(env, "org", "show", "acme")).toBe(EXIT.ok);
    expect(seen).toBe("http://other:1/api/v1/organizations/acme Bearer era_env");
  });

  it("exits 3 with a hint when not logged in", async () => {
    const fake = fakeIo();
    expect(await run(fake, "repo", "list")).toBe(EXIT.auth);
    expect(err(fake)).toMatch(/not logged in: run `edge-registry login <url>`/);
  });
});

describe("organizations and teams", () => {
  it("org create posts the name and prints it; --json prints the API's answer", async () => {
    const fake = await loggedIn();
    fake.answer("POST", "/api/v1/organizations", jsonResponse(ORG, 201));
    expect(await run(fake, "org", "create", "acme")).toBe(EXIT.ok);
    expect(fake.requests[0]).toMatchObject({
      method: "POST",
      url: "/api/v1/organizations",
      body: { name: "acme" },
    });
    expect(out(fake)).toContain("created organization acme");

    const quiet = await loggedIn();
    quiet.answer("POST", "/api/v1/organizations", jsonResponse(ORG, 201));
    await run(quiet, "org", "create", "acme", "--json");
    expect(JSON.parse(out(quiet))).toEqual(ORG);
  });

  it("org show lists the teams for admins, following cursors", async () => {
    const fake = await loggedIn();
    fake.answer("GET", "/api/v1/organizations/acme", jsonResponse(ORG));
    fake.answer("GET", "/api/v1/organizations/acme/teams", (request) =>
      request.url.includes("cursor=c2")
        ? jsonResponse({
            teams: [
              {
                name: "owners",
                organization: "acme",
                role: "admin",
                members: 1,
                createdAt: ORG.createdAt,
              },
            ],
            next_cursor: null,
          })
        : jsonResponse({
            teams: [
              {
                name: "devs",
                organization: "acme",
                role: "member",
                members: 3,
                createdAt: ORG.createdAt,
              },
            ],
            next_cursor: "c2",
          }),
    );
    expect(await run(fake, "org", "show", "acme")).toBe(EXIT.ok);
    expect(out(fake)).toBe(
      [
        "organization: acme",
        "created:      2026-01-15 12:00:00Z",
        "your role:    admin",
        "admin:        yes",
        "",
        "TEAM    ROLE    MEMBERS  CREATED",
        "devs    member  3        2026-01-15 12:00:00Z",
        "owners  admin   1        2026-01-15 12:00:00Z",
      ].join("\n"),
    );
    expect(fake.requests.map((r) => r.url)).toEqual([
      "/api/v1/organizations/acme",
      "/api/v1/organizations/acme/teams?limit=100",
      "/api/v1/organizations/acme/teams?limit=100&cursor=c2",
    ]);
  });

  it("org delete asks for --yes without a terminal, and confirms on one", async () => {
    const fake = await loggedIn();
    expect(await run(fake, "org", "delete", "acme")).toBe(EXIT.usage);
    expect(fake.requests).toEqual([]);

    const typed = await loggedIn({ prompts: ["acme"] });
    typed.answer("DELETE", "/api/v1/organizations/acme", new Response(null, { status: 204 }));
    expect(await run(typed, "org", "delete", "acme")).toBe(EXIT.ok);

    const wrong = await loggedIn({ prompts: ["nope"] });
    expect(await run(wrong, "org", "delete", "acme")).toBe(EXIT.error);
    expect(wrong.requests).toEqual([]);
  });

  it("team commands map onto the team endpoints", async () => {
    const fake = await loggedIn();
    const team = {
      name: "devs",
      organization: "acme",
      role: "creator",
      members: 0,
      createdAt: ORG.createdAt,
    };
    fake.answer("POST", "/api/v1/organizations/acme/teams", jsonResponse(team, 201));
    fake.answer(
      "PUT",
      "/api/v1/organizations/acme/teams/devs/members/bob",
      jsonResponse({ username: "bob", team: "acme/devs" }, 201),
    );
    fake.answer(
      "DELETE",
      "/api/v1/organizations/acme/teams/devs/members/bob",
      new Response(null, { status: 204 }),
    );
    fake.answer(
      "DELETE",
      "/api/v1/organizations/acme/teams/devs",
      new Response(null, { status: 204 }),
    );
    expect(await run(fake, "team", "create", "acme", "devs", "--role", "creator")).toBe(EXIT.ok);
    expect(await run(fake, "team", "add", "acme", "devs", "bob")).toBe(EXIT.ok);
    expect(await run(fake, "team", "remove", "acme", "devs", "bob")).toBe(EXIT.ok);
    expect(await run(fake, "team", "delete", "acme", "devs")).toBe(EXIT.ok);
    expect(fake.requests.map((r) => [r.method, r.url, r.body])).toEqual([
      ["POST", "/api/v1/organizations/acme/teams", { name: "devs", role: "creator" }],
      ["PUT", "/api/v1/organizations/acme/teams/devs/members/bob", undefined],
      ["DELETE", "/api/v1/organizations/acme/teams/devs/members/bob", undefined],
      ["DELETE", "/api/v1/organizations/acme/teams/devs", undefined],
    ]);
    expect(fake.stdout).toEqual([
      "created team acme/devs (creator)",
      "bob is a member of acme/devs",
      "removed bob from acme/devs",
      "deleted team acme/devs",
    ]);
  });

  it("refuses a bad role before calling the API", async () => {
    const fake = await loggedIn();
    expect(await run(fake, "team", "create", "acme", "devs", "--role", "owner")).toBe(EXIT.usage);
    expect(err(fake)).toMatch(/--role must be one of member, creator, admin/);
    expect(fake.requests).toEqual([]);
  });
});

describe("robots", () => {
  const robot = {
    name: "acme+ci",
    shortname: "ci",
    namespace: "acme",
    description: "builds",
    createdAt: ORG.createdAt,
  };

  it("robot create splits the name and shows the token once", async () => {
    const fake = await loggedIn();
    fake.answer(
      "POST",
      "/api/v1/namespaces/acme/robots",
      jsonResponse({ ...robot, token: "err_tok" }, 201),
    );
    expect(await run(fake, "robot", "create", "acme+ci", "--description", "builds")).toBe(EXIT.ok);
    expect(fake.requests[0]!.body).toEqual({ name: "ci", description: "builds" });
    expect(out(fake)).toContain("token: err_tok");
    expect(out(fake)).toMatch(/shown once/);
  });

  it("robot regenerate, delete and list use the robot's namespace path", async () => {
    const fake = await loggedIn();
    fake.answer(
      "POST",
      "/api/v1/namespaces/acme/robots/ci/regenerate",
      jsonResponse({ ...robot, token: "err_new" }),
    );
    fake.answer("DELETE", "/api/v1/namespaces/acme/robots/ci", new Response(null, { status: 204 }));
    fake.answer(
      "GET",
      "/api/v1/namespaces/acme/robots",
      jsonResponse({ robots: [robot], next_cursor: null }),
    );
    expect(await run(fake, "robot", "regenerate", "acme+ci", "--json")).toBe(EXIT.ok);
    expect(JSON.parse(fake.stdout[0]!)).toMatchObject({ token: "err_new" });
    expect(await run(fake, "robot", "delete", "acme+ci")).toBe(EXIT.ok);
    expect(await run(fake, "robot", "list", "acme")).toBe(EXIT.ok);
    expect(fake.stdout.at(-1)).toBe(
      "ROBOT    DESCRIPTION  CREATED\nacme+ci  builds       2026-01-15 12:00:00Z",
    );
  });

  it("refuses a robot name without a namespace", async () => {
    const fake = await loggedIn();
    expect(await run(fake, "robot", "create", "ci")).toBe(EXIT.usage);
    expect(err(fake)).toMatch(/<namespace>\+<name>/);
  });
});

describe("repositories", () => {
  it("repo create/show/visibility/state/delete keep the slashes of the name", async () => {
    const fake = await loggedIn();
    fake.answer("POST", "/api/v1/repositories", jsonResponse(REPO, 201));
    fake.answer("GET", "/api/v1/repositories/acme/app", jsonResponse(REPO));
    fake.answer("PATCH", "/api/v1/repositories/acme/app", (request) =>
      jsonResponse({ ...REPO, ...(request.body as object) }),
    );
    fake.answer("DELETE", "/api/v1/repositories/acme/app", new Response(null, { status: 204 }));
    expect(await run(fake, "repo", "create", "acme/app", "--public")).toBe(EXIT.ok);
    expect(await run(fake, "repo", "show", "acme/app")).toBe(EXIT.ok);
    expect(await run(fake, "repo", "visibility", "acme/app", "public")).toBe(EXIT.ok);
    expect(await run(fake, "repo", "state", "acme/app", "read-only")).toBe(EXIT.ok);
    expect(await run(fake, "repo", "delete", "acme/app", "--yes")).toBe(EXIT.ok);
    expect(fake.requests.map((r) => [r.method, r.url, r.body])).toEqual([
      ["POST", "/api/v1/repositories", { name: "acme/app", visibility: "public" }],
      ["GET", "/api/v1/repositories/acme/app", undefined],
      ["PATCH", "/api/v1/repositories/acme/app", { visibility: "public" }],
      ["PATCH", "/api/v1/repositories/acme/app", { state: "read-only" }],
      ["DELETE", "/api/v1/repositories/acme/app", undefined],
    ]);
    expect(fake.stdout[1]).toContain("your access: pull, push, delete");
    expect(fake.stdout.slice(2)).toEqual([
      "acme/app: public, normal",
      "acme/app: private, read-only",
      "deleted repository acme/app",
    ]);
  });

  it("repo list passes the namespace and prints a table; an empty list says so", async () => {
    const fake = await loggedIn();
    fake.answer("GET", "/api/v1/repositories", (request) =>
      jsonResponse({
        repositories: request.url.includes("namespace=acme") ? [REPO] : [],
        next_cursor: null,
      }),
    );
    expect(await run(fake, "repo", "list", "--namespace", "acme")).toBe(EXIT.ok);
    expect(fake.stdout[0]).toBe(
      "REPOSITORY  VISIBILITY  STATE   CREATED\nacme/app    private     normal  2026-01-15 12:00:00Z",
    );
    expect(await run(fake, "repo", "list")).toBe(EXIT.ok);
    expect(fake.stdout[1]).toBe("no repositories");
    expect(await run(fake, "repo", "list", "--json")).toBe(EXIT.ok);
    expect(JSON.parse(fake.stdout[2]!)).toEqual({ repositories: [] });
  });

  it("maps API errors to messages and exit codes", async () => {
    const cases: [number, string, number][] = [
      [404, "NOT_FOUND", EXIT.notFound],
      [403, "FORBIDDEN", EXIT.forbidden],
      [409, "CONFLICT", EXIT.conflict],
      [400, "INVALID_REQUEST", EXIT.usage],
      [401, "UNAUTHORIZED", EXIT.auth],
      [500, "INTERNAL", EXIT.error],
    ];
    for (const [status, code, exit] of cases) {
      const fake = await loggedIn();
      fake.answer("GET", "/api/v1/repositories/acme/app", apiError(status, code, `said ${code}`));
      expect(await run(fake, "repo", "show", "acme/app")).toBe(exit);
      expect(err(fake)).toMatch(new RegExp(`^error: said ${code}`));
    }
  });

  it("reports an unreachable registry", async () => {
    const fake = await loggedIn();
    fake.io.fetch = async () => {
      throw new TypeError("fetch failed", {
        cause: new Error("connect ECONNREFUSED 127.0.0.1:5000"),
      });
    };
    expect(await run(fake, "repo", "list")).toBe(EXIT.error);
    expect(err(fake)).toBe(`error: cannot reach ${URL_}: connect ECONNREFUSED 127.0.0.1:5000`);
  });
});

describe("permissions", () => {
  it("reads principals the way people write them", () => {
    expect(parsePrincipal("alice")).toEqual({ kind: "user", id: "alice" });
    expect(parsePrincipal("acme+ci")).toEqual({ kind: "robot", id: "acme+ci" });
    expect(parsePrincipal("acme/devs")).toEqual({ kind: "team", id: "acme/devs" });
    expect(parsePrincipal("team:devs")).toEqual({ kind: "team", id: "devs" });
    expect(parsePrincipal("robot:ci")).toEqual({ kind: "robot", id: "ci" });
    expect(() => parsePrincipal("group:x")).toThrow(/user:, team: or robot:/);
  });

  it("perm grant/revoke/list address the principal by kind and encoded name", async () => {
    const fake = await loggedIn();
    fake.answer(
      "PUT",
      "/api/v1/repositories/acme/app/permissions/robot/acme%2Bci",
      jsonResponse({ kind: "robot", name: "acme+ci", role: "write" }),
    );
    fake.answer(
      "PUT",
      "/api/v1/repositories/acme/app/permissions/team/acme%2Fdevs",
      jsonResponse({ kind: "team", name: "acme/devs", role: "read" }),
    );
    fake.answer(
      "DELETE",
      "/api/v1/repositories/acme/app/permissions/user/bob",
      new Response(null, { status: 204 }),
    );
    fake.answer(
      "GET",
      "/api/v1/repositories/acme/app/permissions",
      jsonResponse({
        permissions: [
          { kind: "robot", name: "acme+ci", role: "write" },
          { kind: "user", name: null, role: "read" },
        ],
        next_cursor: null,
      }),
    );
    expect(await run(fake, "perm", "grant", "acme/app", "acme+ci", "write")).toBe(EXIT.ok);
    expect(await run(fake, "perm", "grant", "acme/app", "acme/devs", "read")).toBe(EXIT.ok);
    expect(await run(fake, "perm", "revoke", "acme/app", "bob")).toBe(EXIT.ok);
    expect(await run(fake, "perm", "list", "acme/app")).toBe(EXIT.ok);
    expect(fake.requests.map((r) => [r.method, r.url, r.body])).toEqual([
      ["PUT", "/api/v1/repositories/acme/app/permissions/robot/acme%2Bci", { role: "write" }],
      ["PUT", "/api/v1/repositories/acme/app/permissions/team/acme%2Fdevs", { role: "read" }],
      ["DELETE", "/api/v1/repositories/acme/app/permissions/user/bob", undefined],
      ["GET", "/api/v1/repositories/acme/app/permissions?limit=100", undefined],
    ]);
    expect(fake.stdout).toEqual([
      "robot acme+ci has write on acme/app",
      "team acme/devs has read on acme/app",
      "revoked user bob on acme/app",
      "KIND   NAME       ROLE\nrobot  acme+ci    write\nuser   (deleted)  read",
    ]);
  });

  it("default-perm uses the organization's default-permissions", async () => {
    const fake = await loggedIn();
    fake.answer(
      "PUT",
      "/api/v1/organizations/acme/default-permissions/team/devs",
      jsonResponse({ kind: "team", name: "acme/devs", role: "write" }),
    );
    expect(await run(fake, "default-perm", "grant", "acme", "team:devs", "write")).toBe(EXIT.ok);
    expect(fake.stdout[0]).toBe("team acme/devs has write on acme (new repositories)");
    expect(await run(fake, "default-perm", "grant", "acme", "team:devs", "owner")).toBe(EXIT.usage);
  });
});

describe("tokens and users", () => {
  it("token create sends the expiry and shows the secret once", async () => {
    const fake = await loggedIn();
    fake.answer(
      "POST",
      "/api/v1/user/tokens",
      jsonResponse(
        {
          id: "t2",
          name: "ci",
          createdAt: ORG.createdAt,
          expiresAt: "2026-02-14T12:00:00.000Z",
          lastUsedAt: null,
          revokedAt: null,
          token: "era_x",
        },
        201,
      ),
    );
    expect(await run(fake, "token", "create", "ci", "--expires-in-days", "30")).toBe(EXIT.ok);
    expect(fake.requests[0]!.body).toEqual({ name: "ci", expiresInDays: 30 });
    expect(out(fake)).toContain("token:   era_x");
    expect(await run(fake, "token", "create", "ci", "--expires-in-days", "soon")).toBe(EXIT.usage);
  });

  it("token list and revoke", async () => {
    const fake = await loggedIn();
    fake.answer(
      "GET",
      "/api/v1/user/tokens",
      jsonResponse({
        tokens: [
          {
            id: "t1",
            name: "cli",
            createdAt: ORG.createdAt,
            expiresAt: null,
            lastUsedAt: null,
            revokedAt: null,
          },
        ],
        next_cursor: null,
      }),
    );
    fake.answer("DELETE", "/api/v1/user/tokens/t1", new Response(null, { status: 204 }));
    expect(await run(fake, "token", "list")).toBe(EXIT.ok);
    expect(fake.stdout[0]).toMatch(
      /^ID\s+NAME\s+CREATED\s+EXPIRES\s+LAST USED\s+REVOKED\nt1\s+cli\s+2026-01-15 12:00:00Z\s+-\s+-\s+-$/,
    );
    expect(await run(fake, "token", "revoke", "t1", "--json")).toBe(EXIT.ok);
    expect(JSON.parse(fake.stdout[1]!)).toEqual({ ok: true });
  });

  it("user create reads the password from stdin", async () => {
    const fake = await loggedIn({ stdin: "hunter2hunter2\n" });
    fake.answer(
      "POST",
      "/api/v1/users",
      jsonResponse(
        { username: "bob", email: "b@x", superuser: false, createdAt: ORG.createdAt },
        201,
      ),
    );
    expect(await run(fake, "user", "create", "bob", "--email", "b@x", "--password-stdin")).toBe(
      EXIT.ok,
    );
    expect(fake.requests[0]!.body).toEqual({
      username: "bob",
      password: "hunter2hunter2",
      email: "b@x",
    });
    expect(out(fake)).toBe("created user bob");
  });

  it("user create asks twice on a terminal and refuses a mismatch", async () => {
    const fake = await loggedIn({ prompts: ["one-password", "another"] });
    expect(await run(fake, "user", "create", "bob")).toBe(EXIT.usage);
    expect(err(fake)).toMatch(/the passwords differ/);
    expect(fake.requests).toEqual([]);
  });
});
