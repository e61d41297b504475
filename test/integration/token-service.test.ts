// The token service and the registry's side of the Docker token authentication spec: GET /v2/auth
// with HTTP Basic (password, app token, robot token) or none, the response and the ES256 JWT it
// carries (kid published in /.well-known/jwks.json), the access claim as the requested scopes
// intersected with what the account may do; then those tokens on /v2, where a token allows
// exactly its access and every forged, expired, foreign or tampered one is `invalid_token`.
import { env } from "cloudflare:test";
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  type JSONWebKeySet,
  jwtVerify,
} from "jose";
import { describe, expect, it } from "vitest";
import { api, MediaTypes, pushImage, randomBytes, sha256 } from "./helpers.ts";
import {
  accessOf,
  basicHeader,
  bearer,
  bearerChallenge,
  type Credential,
  create,
  credentialOf,
  expectInsufficientScope,
  expectInvalidToken,
  fetchToken,
  foreignKey,
  forgeToken,
  hs256Token,
  ISSUER,
  REALM,
  requestToken,
  SERVICE,
  send,
  type TokenResponse,
  type UserFixture,
  uniqueName,
  unsignedToken,
  withPayload,
} from "./identity-fixtures.ts";

const pull = (repository: string) => `repository:${repository}:pull`;
const pullPush = (repository: string) => `repository:${repository}:pull,push`;

/**
 * One organization and its cast, written in one batch: `repo` (private) with a reader, a writer,
 * an admin (user grants) and a read robot; `readOnly` (read-only, the admin is its admin); `pub`
 * (public); and a user with no grant at all.
 */
async function cast() {
  return create(async (b) => {
    const org = b.org(uniqueName("ts"));
    const repo = b.repository(`${org}/app`);
    const readOnly = b.repository(`${org}/frozen`, { state: "read-only" });
    const pub = b.repository(`${org}/pub`, { visibility: "public" });
    const reader = await b.user();
    const writer = await b.user();
    const admin = await b.user();
    const outsider = await b.user();
    const robot = await b.robot(org);
    b.grant(repo, reader, "read");
    b.grant(repo, writer, "write");
    b.grant(repo, admin, "admin");
    b.grant(readOnly, admin, "admin");
    b.grant(repo, robot, "read");
    return { org, repo, readOnly, pub, reader, writer, admin, outsider, robot };
  });
}

async function jwks(): Promise<JSONWebKeySet> {
  const res = await send("/.well-known/jwks.json", null);
  expect(res.status).toBe(200);
  return (await res.json()) as JSONWebKeySet;
}

const sorted = (entries: { type: string; name: string; actions: string[] }[]) =>
  entries.map((entry) => ({ ...entry, actions: [...entry.actions].sort() }));

/** The audit row of a `login.failed` for `name`, once the event queue has delivered it. */
async function loginFailedRow(name: string): Promise<Record<string, unknown> | undefined> {
  // Events go out after the response through the queue (batches close after ~1 s).
  for (let waited = 0; waited < 4000; waited += 100) {
    const row = await env.DB.prepare(
      "SELECT * FROM audit_log WHERE kind = 'login.failed' AND actor = ?",
    )
      .bind(name)
      .first<Record<string, unknown>>();
    if (row) return row;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return undefined;
}

describe.concurrent("GET /v2/auth issues registry tokens", () => {
  it("answers {token, access_token, expires_in, issued_at} to a user's password", async () => {
    const { repo, writer } = await cast();
    const before = Math.floor(Date.now() / 1000);
    const res = await requestToken(credentialOf(writer, "password"), [pullPush(repo)]);
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
    const body = (await res.json()) as TokenResponse;
    expect(Object.keys(body).sort()).toEqual(["access_token", "expires_in", "issued_at", "token"]);
    expect(body.access_token).toBe(body.token);
    // "Tokens expire in minutes."
    expect(Number.isInteger(body.expires_in)).toBe(true);
    expect(body.expires_in).toBeGreaterThanOrEqual(60);
    expect(body.expires_in).toBeLessThanOrEqual(15 * 60);
    const issuedAt = Date.parse(body.issued_at);
    expect(body.issued_at).toMatch(
      /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/,
    );
    expect(Math.abs(issuedAt / 1000 - before)).toBeLessThan(60);

    const claims = decodeJwt(body.token);
    expect(claims.iat).toBe(Math.floor(issuedAt / 1000));
    expect(claims.exp).toBe(claims.iat! + body.expires_in);
  });

  it("the JWT: ES256 with the JWKS kid; iss, aud = the service, sub, exp, access; verifies against the JWKS", async () => {
    const { repo, writer } = await cast();
    const token = await fetchToken(credentialOf(writer, "password"), [pullPush(repo)]);
    const keys = await jwks();
    expect(keys.keys.length).toBeGreaterThan(0);
    for (const key of keys.keys) {
      expect(key).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256" });
      expect(key).not.toHaveProperty("d"); // never the private scalar
      expect(typeof key.kid).toBe("string");
    }

    const header = decodeProtectedHeader(token);
    expect(header.alg).toBe("ES256");
    expect(keys.keys.map((key) => key.kid)).toContain(header.kid);

    const { payload } = await jwtVerify(token, createLocalJWKSet(keys), {
      algorithms: ["ES256"],
      issuer: ISSUER,
      audience: SERVICE,
    });
    expect(payload.iss).toBe(ISSUER);
    expect([payload.aud].flat()).toEqual([SERVICE]);
    expect(payload.sub).toBe(writer.name);
    const now = Date.now() / 1000;
    expect(payload.exp!).toBeGreaterThan(now);
    expect(payload.exp!).toBeLessThanOrEqual(now + 15 * 60);
    expect(payload.access).toEqual([{ type: "repository", name: repo, actions: ["pull", "push"] }]);
  });

  it("an app token (era_…) speaks for its user", async () => {
    const { repo, writer } = await cast();
    const token = await fetchToken(credentialOf(writer, "app-token"), [pullPush(repo)]);
    expect(decodeJwt(token).sub).toBe(writer.name);
    expect(accessOf(token)).toEqual([
      { type: "repository", name: repo, actions: ["pull", "push"] },
    ]);
  });

  it("a robot (namespace+name with its err_ token) gets what the robot is granted", async () => {
    const { repo, robot } = await cast();
    expect(robot.name).toMatch(/^[a-z0-9]+\+[a-z0-9]+$/);
    expect(robot.token).toMatch(/^err_/);
    const token = await fetchToken(credentialOf(robot), [pullPush(repo)]);
    expect(decodeJwt(token).sub).toBe(robot.name);
    expect(accessOf(token)).toEqual([{ type: "repository", name: repo, actions: ["pull"] }]);
  });

  it("anonymous (no Authorization): pull on public repositories and nothing else", async () => {
    const { repo, pub, org } = await cast();
    const res = await requestToken(null, [
      `repository:${pub}:pull,push,delete`,
      pull(repo),
      pull(`${org}/never-created`),
    ]);
    expect(res.status).toBe(200);
    const body = (await res.json()) as TokenResponse;
    expect(accessOf(body.token)).toEqual([{ type: "repository", name: pub, actions: ["pull"] }]);
    const { payload } = await jwtVerify(body.token, createLocalJWKSet(await jwks()), {
      issuer: ISSUER,
      audience: SERVICE,
    });
    expect(payload.sub ?? "").not.toMatch(/\+/); // speaks for no account
  });

  it("several scope= parameters, and several scopes in one parameter, each intersected", async () => {
    const { repo, pub, readOnly, admin } = await cast();
    const several = await fetchToken(credentialOf(admin, "app-token"), [
      `repository:${repo}:pull,push,delete`,
      `repository:${readOnly}:pull,push`,
      pull(pub),
    ]);
    expect(sorted(accessOf(several))).toEqual(
      sorted([
        { type: "repository", name: repo, actions: ["pull", "push", "delete"] },
        { type: "repository", name: readOnly, actions: ["pull"] },
        { type: "repository", name: pub, actions: ["pull"] },
      ]),
    );
    const spaced = await fetchToken(credentialOf(admin, "app-token"), [
      `${pull(repo)} ${pull(pub)}`,
    ]);
    expect(accessOf(spaced).map((entry) => entry.name)).toEqual([repo, pub]);
  });

  it("registry:catalog:* is granted alongside repository scopes", async () => {
    const { repo, reader } = await cast();
    const token = await fetchToken(credentialOf(reader, "app-token"), [
      "registry:catalog:*",
      pull(repo),
    ]);
    expect(sorted(accessOf(token))).toEqual(
      sorted([
        { type: "registry", name: "catalog", actions: ["*"] },
        { type: "repository", name: repo, actions: ["pull"] },
      ]),
    );
  });

  type Cast = Awaited<ReturnType<typeof cast>>;
  const INTERSECTIONS: {
    case: string;
    who: (c: Cast) => Credential;
    scope: (c: Cast) => string;
    actions: string[] | null;
  }[] = [
    {
      case: "push asked on a read grant → pull only",
      who: (c) => credentialOf(c.reader, "app-token"),
      scope: (c) => pullPush(c.repo),
      actions: ["pull"],
    },
    {
      case: "only push asked on a read grant → no entry",
      who: (c) => credentialOf(c.reader, "app-token"),
      scope: (c) => `repository:${c.repo}:push`,
      actions: null,
    },
    {
      case: "delete asked on a write grant → pull, push",
      who: (c) => credentialOf(c.writer, "app-token"),
      scope: (c) => `repository:${c.repo}:pull,push,delete`,
      actions: ["pull", "push"],
    },
    {
      case: "* on a write grant → pull, push",
      who: (c) => credentialOf(c.writer, "app-token"),
      scope: (c) => `repository:${c.repo}:*`,
      actions: ["pull", "push"],
    },
    {
      case: "* on an admin grant → pull, push, delete",
      who: (c) => credentialOf(c.admin, "app-token"),
      scope: (c) => `repository:${c.repo}:*`,
      actions: ["delete", "pull", "push"],
    },
    {
      case: "everything asked on a read-only repository by its admin → pull",
      who: (c) => credentialOf(c.admin, "app-token"),
      scope: (c) => `repository:${c.readOnly}:pull,push,delete`,
      actions: ["pull"],
    },
    {
      case: "a private repository the account cannot see → no entry",
      who: (c) => credentialOf(c.outsider, "app-token"),
      scope: (c) => pullPush(c.repo),
      actions: null,
    },
    {
      case: "a public repository without a grant → pull",
      who: (c) => credentialOf(c.outsider, "app-token"),
      scope: (c) => pullPush(c.pub),
      actions: ["pull"],
    },
    {
      case: "a new repository in an org the account is not in → no entry",
      who: (c) => credentialOf(c.writer, "app-token"),
      scope: (c) => pullPush(`${c.org}/${uniqueName("new")}`),
      actions: null,
    },
    {
      case: "a new repository in the account's own namespace → pull, push",
      who: (c) => credentialOf(c.outsider, "app-token"),
      scope: (c) => `repository:${c.outsider.name}/${uniqueName("new")}:pull,push`,
      actions: ["pull", "push"],
    },
    {
      case: "unknown actions are dropped",
      who: (c) => credentialOf(c.writer, "app-token"),
      scope: (c) => `repository:${c.repo}:pull,frobnicate`,
      actions: ["pull"],
    },
    {
      case: "a robot asks push on its read grant → pull",
      who: (c) => credentialOf(c.robot),
      scope: (c) => pullPush(c.repo),
      actions: ["pull"],
    },
  ];

  it.each(INTERSECTIONS)("access = request ∩ permissions: $case", async (row) => {
    const c = await cast();
    const scope = row.scope(c);
    const token = await fetchToken(row.who(c), [scope]);
    const name = scope.split(":").slice(1, -1).join(":");
    if (row.actions === null) expect(accessOf(token)).toEqual([]);
    else
      expect(sorted(accessOf(token))).toEqual([{ type: "repository", name, actions: row.actions }]);
  });

  it("malformed scopes are skipped, the rest still granted", async () => {
    const { repo, reader } = await cast();
    const token = await fetchToken(credentialOf(reader, "app-token"), [
      "garbage",
      "repository:Not A Name:pull",
      "repository::pull",
      "unknowntype:thing:pull",
      pull(repo),
    ]);
    expect(accessOf(token)).toEqual([{ type: "repository", name: repo, actions: ["pull"] }]);
  });

  it("issues no token for another service", async () => {
    const { repo, reader } = await cast();
    const res = await requestToken(credentialOf(reader, "app-token"), [pull(repo)], "elsewhere");
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(await res.text()).not.toMatch(/"token"/);
  });

  it("the bootstrap admin (REGISTRY_ADMIN_USER) is a superuser", async () => {
    const { repo } = await cast();
    const admin = { user: env.REGISTRY_ADMIN_USER, secret: env.REGISTRY_ADMIN_PASSWORD };
    const token = await fetchToken(admin, [`repository:${repo}:pull,push,delete`]);
    expect(sorted(accessOf(token))).toEqual([
      { type: "repository", name: repo, actions: ["delete", "pull", "push"] },
    ]);
  });
});

describe.concurrent("GET /v2/auth refuses wrong credentials", () => {
  it("a wrong password: 401, no token, and a login.failed event in the audit log", async () => {
    const { outsider } = await cast();
    const res = await requestToken({ user: outsider.name, secret: "not-the-password" }, []);
    const text = await res.text();
    expect(res.status).toBe(401);
    expect(text).not.toMatch(/"token"/);
    expect(res.headers.get("WWW-Authenticate")).toBeTruthy();
    const row = await loginFailedRow(outsider.name);
    expect(row, "login.failed audit row").toBeDefined();
  });

  type Cast = Awaited<ReturnType<typeof cast>>;
  const WRONG: { case: string; authorization: (c: Cast) => Promise<string> }[] = [
    {
      case: "an unknown user",
      authorization: async () => basicHeader({ user: uniqueName("ghost"), secret: "whatever" }),
    },
    {
      case: "an empty password",
      authorization: async (c) => basicHeader({ user: c.reader.name, secret: "" }),
    },
    {
      case: "a robot with a wrong token",
      authorization: async (c) => basicHeader({ user: c.robot.name, secret: "err_wrong" }),
    },
    {
      case: "a robot that does not exist",
      authorization: async (c) =>
        basicHeader({ user: `${c.org}+${uniqueName("nobot")}`, secret: c.robot.token }),
    },
    {
      case: "a robot's token under a user's name",
      authorization: async (c) => basicHeader({ user: c.reader.name, secret: c.robot.token }),
    },
    {
      case: "another user's app token",
      authorization: async (c) => basicHeader({ user: c.reader.name, secret: c.writer.appToken }),
    },
    {
      case: "a revoked app token",
      authorization: async (c) => {
        const { token } = await create((b) => b.appToken(c.reader, { revokedAt: new Date() }));
        return basicHeader({ user: c.reader.name, secret: token });
      },
    },
    {
      case: "an expired app token",
      authorization: async (c) => {
        const expiresAt = new Date(Date.now() - 1000);
        const { token } = await create((b) => b.appToken(c.reader, { expiresAt }));
        return basicHeader({ user: c.reader.name, secret: token });
      },
    },
    {
      case: "a disabled user's right password",
      authorization: async () => {
        const user = await create((b) => b.user({ disabled: true }));
        return basicHeader(credentialOf(user));
      },
    },
    {
      case: "a disabled user's app token",
      authorization: async () => {
        const user = await create((b) => b.user({ disabled: true }));
        return basicHeader(credentialOf(user, "app-token"));
      },
    },
    { case: "Basic that is not base64", authorization: async () => "Basic %%%not-base64%%%" },
    { case: "Basic without a colon", authorization: async () => `Basic ${btoa("justaname")}` },
  ];

  it.each(WRONG)("$case: 401, no token", async (row) => {
    const c = await cast();
    const res = await send(
      `/v2/auth?service=${SERVICE}&scope=${pull(c.repo)}`,
      await row.authorization(c),
    );
    const text = await res.text();
    expect(res.status, text).toBe(401);
    expect(text).not.toMatch(/"token"/);
  });

  it("wrong Basic credentials sent straight to /v2: 401 with the Bearer challenge, and login.failed", async () => {
    const { repo, outsider } = await cast();
    const res = await send(
      `/v2/${repo}/tags/list`,
      basicHeader({ user: outsider.name, secret: "not-the-password" }),
    );
    expect(res.status).toBe(401);
    const challenge = bearerChallenge(res);
    expect(challenge.realm).toBe(REALM);
    expect(challenge.service).toBe(SERVICE);
    const row = await loginFailedRow(outsider.name);
    expect(row, "login.failed audit row for Basic sent to /v2").toBeDefined();
  });
});

// ---- tokens on /v2 -----------------------------------------------------------------------------

/** A cast whose repository holds an empty index tagged v1: the cheapest content to protect. */
async function castWithIndex() {
  const c = await cast();
  const body = JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [] });
  const res = await api(`/v2/${c.repo}/manifests/v1`, {
    method: "PUT",
    body,
    headers: { "Content-Type": MediaTypes.ociIndex },
  });
  expect(res.status).toBe(201);
  return { ...c, digest: await sha256(body) };
}

/** A cast whose repository holds an image tagged v1 (pushed by the bootstrap admin). */
async function castWithImage() {
  const c = await cast();
  const image = await pushImage(c.repo, { tag: "v1" });
  return { ...c, image };
}

describe.concurrent("tokens on /v2", () => {
  it("/v2/ challenges a request without credentials; any valid token is let in", async () => {
    const challenged = await send("/v2/", null);
    expect(challenged.status).toBe(401);
    const challenge = bearerChallenge(challenged);
    expect(challenge.realm).toBe(REALM);
    expect(challenge.service).toBe(SERVICE);
    expect(challenge.error).toBeUndefined();

    const { reader } = await cast();
    const empty = await fetchToken(credentialOf(reader, "app-token"), []);
    expect((await send("/v2/", bearer(empty))).status).toBe(200);
    const anonymous = await fetchToken(null, []);
    expect((await send("/v2/", bearer(anonymous))).status).toBe(200);
  });

  it("a token allows exactly its access, whatever else the account may do", async () => {
    const c = await castWithImage();
    // The writer may push to repo, but this token was asked for pull only.
    const token = bearer(await fetchToken(credentialOf(c.writer, "app-token"), [pull(c.repo)]));
    expect((await send(`/v2/${c.repo}/manifests/v1`, token)).status).toBe(200);
    expect((await send(`/v2/${c.repo}/manifests/v1`, token, { method: "HEAD" })).status).toBe(200);
    expect((await send(`/v2/${c.repo}/blobs/${c.image.layers[0]}`, token)).status).toBe(307);
    expect((await send(`/v2/${c.repo}/tags/list`, token)).status).toBe(200);
    expect((await send(`/v2/${c.repo}/referrers/${c.image.digest}`, token)).status).toBe(200);

    const bytes = randomBytes(32);
    const digest = await sha256(bytes);
    const upload = await send(`/v2/${c.repo}/blobs/uploads/?digest=${digest}`, token, {
      method: "POST",
      body: bytes,
    });
    await expectInsufficientScope(upload, c.repo, "push", pullPush(c.repo));
    const put = await send(`/v2/${c.repo}/manifests/v2`, token, {
      method: "PUT",
      body: c.image.manifest,
      headers: { "Content-Type": MediaTypes.ociManifest },
    });
    await expectInsufficientScope(put, c.repo, "push", pullPush(c.repo));
    const session = await send(`/v2/${c.repo}/blobs/uploads/`, token, { method: "POST" });
    await expectInsufficientScope(session, c.repo, "push", pullPush(c.repo));
    const deleteManifest = await send(`/v2/${c.repo}/manifests/${c.image.digest}`, token, {
      method: "DELETE",
    });
    await expectInsufficientScope(deleteManifest, c.repo, "delete");
    const deleteBlob = await send(`/v2/${c.repo}/blobs/${c.image.layers[0]}`, token, {
      method: "DELETE",
    });
    await expectInsufficientScope(deleteBlob, c.repo, "delete");

    // Nothing changed.
    expect((await api(`/v2/${c.repo}/blobs/${digest}`, { method: "HEAD" })).status).toBe(404);
    expect((await api(`/v2/${c.repo}/manifests/v2`, { method: "HEAD" })).status).toBe(404);
    expect((await api(`/v2/${c.repo}/manifests/v1`, { method: "HEAD" })).status).toBe(200);
    expect((await api(`/v2/${c.repo}/blobs/${c.image.layers[0]}`, { method: "HEAD" })).status).toBe(
      200,
    );
  });

  it("a token for one repository opens no other, even one the account may read", async () => {
    const c = await castWithImage();
    const other = `${c.org}/other`;
    await pushImage(other, { tag: "v1" });
    await create((b) => b.grant(other, c.reader, "read"));
    const token = bearer(await fetchToken(credentialOf(c.reader, "app-token"), [pull(c.repo)]));
    expect((await send(`/v2/${c.repo}/manifests/v1`, token)).status).toBe(200);
    const res = await send(`/v2/${other}/manifests/v1`, token);
    await expectInsufficientScope(res, other, "pull", pull(other));
  });

  it("a pull,push token pushes; deleting still takes delete", async () => {
    const c = await castWithImage();
    const token = bearer(await fetchToken(credentialOf(c.writer, "app-token"), [pullPush(c.repo)]));
    const bytes = randomBytes(32);
    const digest = await sha256(bytes);
    const upload = await send(`/v2/${c.repo}/blobs/uploads/?digest=${digest}`, token, {
      method: "POST",
      body: bytes,
    });
    expect(upload.status).toBe(201);
    const put = await send(`/v2/${c.repo}/manifests/v2`, token, {
      method: "PUT",
      body: c.image.manifest,
      headers: { "Content-Type": MediaTypes.ociManifest },
    });
    expect(put.status).toBe(201);
    const del = await send(`/v2/${c.repo}/manifests/${c.image.digest}`, token, {
      method: "DELETE",
    });
    await expectInsufficientScope(del, c.repo, "delete");
    expect(
      (await api(`/v2/${c.repo}/manifests/${c.image.digest}`, { method: "HEAD" })).status,
    ).toBe(200);
  });

  it("an anonymous token on a private repository: 401 insufficient_scope naming the pull scope", async () => {
    const c = await castWithIndex();
    const token = bearer(await fetchToken(null, [pull(c.repo)]));
    await expectInsufficientScope(
      await send(`/v2/${c.repo}/manifests/v1`, token),
      c.repo,
      "pull",
      pull(c.repo),
    );
  });

  it("the catalog lists what the token's account may see, given registry:catalog:*", async () => {
    const c = await cast();
    const token = bearer(
      await fetchToken(credentialOf(c.reader, "app-token"), ["registry:catalog:*"]),
    );
    const res = await send(`/v2/_catalog?last=${c.org}&n=50`, token);
    expect(res.status).toBe(200);
    const { repositories } = (await res.json()) as { repositories: string[] };
    expect(repositories.filter((name) => name.startsWith(`${c.org}/`))).toEqual([c.repo, c.pub]);
  });

  it("the catalog needs registry:catalog:* in the token (as distribution does)", async () => {
    const c = await cast();
    const token = bearer(await fetchToken(credentialOf(c.reader, "app-token"), [pull(c.repo)]));
    const res = await send("/v2/_catalog", token);
    expect(res.status, await res.clone().text()).toBe(401);
    const challenge = bearerChallenge(res);
    expect(challenge.error).toBe("insufficient_scope");
    expect(challenge.scope).toBe("registry:catalog:*");
  });
});

describe.concurrent("tokens the registry must refuse: 401 invalid_token", () => {
  /** Claims that would let `user` do everything on `repo`, as a correct token would carry. */
  const claimsFor = (user: UserFixture, repo: string) => ({
    sub: user.name,
    access: [{ type: "repository", name: repo, actions: ["pull", "push", "delete"] }],
    principal: { kind: "user", id: user.id, name: user.name },
  });

  it("control: the same claims, correctly signed, are accepted", async () => {
    const c = await castWithIndex();
    const token = await forgeToken(claimsFor(c.admin, c.repo));
    expect((await send(`/v2/${c.repo}/manifests/v1`, bearer(token))).status).toBe(200);
  });

  type Cast = Awaited<ReturnType<typeof castWithIndex>>;
  const now = () => Math.floor(Date.now() / 1000);
  const flip = (text: string, at: number) =>
    text.slice(0, at) + (text[at] === "A" ? "B" : "A") + text.slice(at + 1);
  const INVALID: { case: string; token: (c: Cast) => Promise<string> }[] = [
    {
      case: "expired",
      token: (c) =>
        forgeToken({
          ...claimsFor(c.admin, c.repo),
          iat: now() - 900,
          nbf: now() - 905,
          exp: now() - 600,
        }),
    },
    {
      case: "not yet valid",
      token: (c) =>
        forgeToken({
          ...claimsFor(c.admin, c.repo),
          iat: now() + 600,
          nbf: now() + 600,
          exp: now() + 900,
        }),
    },
    {
      case: "for another service (aud)",
      token: (c) => forgeToken({ ...claimsFor(c.admin, c.repo), aud: "another-registry" }),
    },
    {
      case: "from another issuer",
      token: (c) => forgeToken({ ...claimsFor(c.admin, c.repo), iss: "someone-else" }),
    },
    {
      case: "without an expiry",
      token: (c) => forgeToken({ ...claimsFor(c.admin, c.repo), exp: undefined }),
    },
    {
      case: "tampered: one payload character flipped",
      token: async (c) => {
        const real = await fetchToken(credentialOf(c.admin, "app-token"), [pull(c.repo)]);
        const [header, payload, signature] = real.split(".");
        return `${header}.${flip(payload!, Math.floor(payload!.length / 2))}.${signature}`;
      },
    },
    {
      case: "tampered: the payload of a token with no access rewritten to full access",
      token: async (c) => {
        const real = await fetchToken(credentialOf(c.outsider, "app-token"), [pull(c.repo)]);
        return withPayload(real, { ...decodeJwt(real), ...claimsFor(c.outsider, c.repo) });
      },
    },
    {
      case: "tampered: the signature altered",
      token: async (c) => {
        const real = await fetchToken(credentialOf(c.admin, "app-token"), [pull(c.repo)]);
        const [header, payload, signature] = real.split(".");
        return `${header}.${payload}.${flip(signature!, 5)}`;
      },
    },
    {
      case: "signed by another key (with the registry's kid)",
      token: async (c) => forgeToken(claimsFor(c.admin, c.repo), { key: await foreignKey() }),
    },
    {
      case: "signed by another key (with its own kid)",
      token: async (c) =>
        forgeToken(claimsFor(c.admin, c.repo), { key: await foreignKey(), kid: "attacker" }),
    },
    {
      case: "alg none",
      token: async (c) =>
        unsignedToken({
          ...claimsFor(c.admin, c.repo),
          iss: ISSUER,
          aud: SERVICE,
          iat: now(),
          exp: now() + 300,
        }),
    },
    {
      case: "HS256 keyed with the published public key (algorithm confusion)",
      token: async (c) => {
        const keys = await jwks();
        const secret = new TextEncoder().encode(JSON.stringify(keys.keys[0]));
        return hs256Token(
          {
            ...claimsFor(c.admin, c.repo),
            iss: ISSUER,
            aud: SERVICE,
            iat: now(),
            exp: now() + 300,
          },
          secret,
          keys.keys[0]!.kid,
        );
      },
    },
    {
      case: "HS256 keyed with the public key's x coordinate",
      token: async (c) => {
        const keys = await jwks();
        const secret = new TextEncoder().encode(String(keys.keys[0]!.x));
        return hs256Token(
          {
            ...claimsFor(c.admin, c.repo),
            iss: ISSUER,
            aud: SERVICE,
            iat: now(),
            exp: now() + 300,
          },
          secret,
          keys.keys[0]!.kid,
        );
      },
    },
    { case: "not a JWT at all", token: async () => "not-a-jwt" },
  ];

  it.each(INVALID)("$case", async (row) => {
    const c = await castWithIndex();
    const token = bearer(await row.token(c));
    await expectInvalidToken(await send(`/v2/${c.repo}/manifests/v1`, token));
    await expectInvalidToken(await send("/v2/", token));
    // A write with it changes nothing either.
    const del = await send(`/v2/${c.repo}/manifests/${c.digest}`, token, { method: "DELETE" });
    await expectInvalidToken(del);
    expect((await api(`/v2/${c.repo}/manifests/v1`, { method: "HEAD" })).status).toBe(200);
  });
});
