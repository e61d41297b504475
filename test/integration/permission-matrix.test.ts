// The permission matrix (issue 3, "Tests"): every kind of principal × every registry action →
// allow or deny, once through a token from /v2/auth and once with Basic sent straight to /v2, and
// for every deny, proof that nothing changed. Then the rules that cut across the matrix: public
// repositories, read-only repositories, and revocation taking effect for the next token.
//
// Each test builds its own world under a unique prefix (identities straight in D1 through
// identity-fixtures.ts, content pushed by the bootstrap admin); the only thing tests share is
// content that no test writes (see Shared). Being independent, they run concurrently: the suite
// is hundreds of small request sequences, and workerd overlaps their storage waits.
import { env } from "cloudflare:test";
import { decodeJwt } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import type { Digest } from "../../schema/oci/reference.ts";
import {
  api,
  errorCode,
  expectError,
  MediaTypes,
  ORIGIN,
  type PushedImage,
  pushBlob,
  pushImage,
  randomBytes,
  sha256,
} from "./helpers.ts";
import {
  type AccessEntry,
  accessOf,
  basicHeader,
  bearer,
  bearerChallenge,
  create,
  createOrg,
  createRepository,
  createRobot,
  createTeam,
  createUser,
  credentialOf,
  expectInsufficientScope,
  expectInvalidToken,
  fetchToken,
  forgeToken,
  grant,
  grantByDefault,
  type IdentityBatch,
  permissionsOf,
  REALM,
  type RobotFixture,
  removeFromTeam,
  repositoryRow,
  revoke,
  SERVICE,
  send,
  setRepository,
  type UserFixture,
  uniqueName,
  withPayload,
} from "./identity-fixtures.ts";

// ---- principals --------------------------------------------------------------------------------

const PRINCIPALS = [
  "anonymous",
  "user without access",
  "reader",
  "writer",
  "repository admin",
  "org admin",
  "creator-team member",
  "member-team member with team read",
  "robot with read",
  "robot with write",
  "namespace owner",
  "superuser",
  "expired token",
  "token for another service",
  "tampered token",
] as const;
type PrincipalKey = (typeof PRINCIPALS)[number];

/** Principals that are a token and nothing else: only the token mode applies. */
const TOKEN_ONLY = new Set<PrincipalKey>([
  "expired token",
  "token for another service",
  "tampered token",
]);

type Mode = "token" | "basic";

// ---- the world a test runs in ------------------------------------------------------------------

/**
 * Content only read, never written, by the tests: seeded once because blob writes dominate the
 * cost of this suite. Every test still brings its own principal, teams and grants, and every
 * action that can change state (push, delete, mount, create) works on a repository of its own.
 */
interface Shared {
  /** An org whose repository holds an image tagged v1 and one referrer of it. */
  org: string;
  repo: string;
  image: PushedImage;
  referrer: string;
  /** A private repository in an org no test principal belongs to, and a blob in it. */
  secretRepo: string;
  secretBlob: string;
  /** A public repository and a blob in it. */
  publicRepo: string;
  publicBlob: string;
}

let shared: Shared;

beforeAll(async () => {
  const [org, secretOrg] = await create((b) => [
    b.org(uniqueName("shr")),
    b.org(uniqueName("sec")),
  ]);
  const repo = `${org!}/app`;
  const image = await pushImage(repo, { tag: "v1" });
  const referrer = await pushImage(repo, {
    subject: {
      digest: image.digest,
      size: image.manifest.length,
      mediaType: MediaTypes.ociManifest,
    },
    artifactType: "application/vnd.example.sbom.v1",
    layers: [],
  });
  const secretRepo = `${secretOrg!}/secret`;
  const publicRepo = `${org!}/pub`;
  const secretBlob = await pushBlob(secretRepo, randomBytes(128));
  const publicBlob = await pushBlob(publicRepo, randomBytes(128));
  await setRepository(publicRepo, { visibility: "public" });
  shared = {
    org: org!,
    repo,
    image,
    referrer: referrer.digest,
    secretRepo,
    secretBlob,
    publicRepo,
    publicBlob,
  };
});

interface World {
  /** Every name of this world starts with it (catalog reads from just before it). */
  prefix: string;
  org: string;
  /** Private, in the org: the target of the matrix for everyone but the namespace owner. */
  orgRepo: string;
  /** The catalog's world: a public repository in the org, a private one in another org. */
  publicRepo: string;
  secretRepo: string;
  /** The owner's own private repository (only in the namespace owner's world). */
  ownRepo?: string;
  /** The repository the actions work on. */
  target: string;
  /** The principal's account (absent for anonymous). */
  account?: UserFixture | RobotFixture;
  principal: PrincipalKey;
  mode: Mode;
}

/**
 * A fresh world for one test, written in one D1 batch: an org (or the shared one, for actions
 * that only read), its repository, and the principal with its teams and grants.
 */
async function buildWorld(
  principal: PrincipalKey,
  mode: Mode,
  options: { sharedOrg?: boolean; catalog?: boolean } = {},
): Promise<World> {
  const prefix = uniqueName("m");
  return create(async (b: IdentityBatch) => {
    const org = options.sharedOrg ? shared.org : b.org(`${prefix}o`);
    const orgRepo = options.sharedOrg ? shared.repo : b.repository(`${org}/app`);
    const world: World = {
      prefix,
      org,
      orgRepo,
      publicRepo: `${org}/pub`,
      secretRepo: `${prefix}x/secret`,
      target: orgRepo,
      principal,
      mode,
    };
    if (options.catalog) {
      b.org(`${prefix}x`);
      b.repository(world.publicRepo, { visibility: "public" });
      b.repository(world.secretRepo);
    }
    const user = (superuser = false) => b.user({ name: uniqueName(`${prefix}u`), superuser });
    switch (principal) {
      case "anonymous":
        break;
      case "user without access":
      case "tampered token":
        world.account = await user();
        break;
      case "reader":
      case "writer":
      case "repository admin": {
        const account = await user();
        const role = principal === "reader" ? "read" : principal === "writer" ? "write" : "admin";
        b.grant(orgRepo, account, role);
        world.account = account;
        break;
      }
      case "org admin":
      case "expired token":
      case "token for another service": {
        // The token principals stand for an org admin: only the token itself is wrong.
        const account = await user();
        b.team(org, "admin", [account]);
        world.account = account;
        break;
      }
      case "creator-team member": {
        const account = await user();
        b.team(org, "creator", [account]);
        world.account = account;
        break;
      }
      case "member-team member with team read": {
        const account = await user();
        b.grant(orgRepo, b.team(org, "member", [account]), "read");
        world.account = account;
        break;
      }
      case "robot with read":
      case "robot with write": {
        const robot = await b.robot(org);
        b.grant(orgRepo, robot, principal === "robot with read" ? "read" : "write");
        world.account = robot;
        break;
      }
      case "namespace owner": {
        const account = await user();
        world.ownRepo = b.repository(`${account.name}/app`);
        world.target = world.ownRepo;
        world.account = account;
        break;
      }
      case "superuser":
        world.account = await user(true);
        break;
    }
    return world;
  });
}

/** Every action on every repository of the scopes, as a forged token would claim it. */
function everything(scopes: readonly string[]): AccessEntry[] {
  return scopes.map((scope) => {
    const [type, ...rest] = scope.split(":");
    const name = rest.slice(0, -1).join(":");
    return type === "registry"
      ? { type, name, actions: ["*"] }
      : { type: type!, name, actions: ["pull", "push", "delete"] };
  });
}

/**
 * The Authorization the principal sends for requests needing `scopes`: a token fetched from
 * /v2/auth for exactly those scopes (as docker does after a challenge), or Basic (null: none).
 * Users present an app token: this suite is about what an account may do, and a password costs
 * a PBKDF2 derivation per new user. The token-service suite covers every credential kind, and the
 * revocation tests below send a password straight to /v2.
 */
async function authorize(world: World, scopes: readonly string[]): Promise<string | null> {
  const { account, principal } = world;
  const claimsOf = (a: UserFixture | RobotFixture) => ({
    sub: a.name,
    principal: { kind: a.kind, id: a.id, name: a.name },
  });
  if (principal === "expired token") {
    const now = Math.floor(Date.now() / 1000);
    return bearer(
      await forgeToken({
        ...claimsOf(account!),
        access: everything(scopes),
        iat: now - 900,
        nbf: now - 905,
        exp: now - 600,
      }),
    );
  }
  if (principal === "token for another service") {
    return bearer(
      await forgeToken({
        ...claimsOf(account!),
        access: everything(scopes),
        aud: "other-registry",
      }),
    );
  }
  if (principal === "tampered token") {
    // A real token for a user with no access, its payload rewritten to claim everything (and to
    // be a superuser, which is what the catalog looks at).
    const real = await fetchToken(credentialOf(account!, "password"), scopes);
    const payload = decodeJwt(real);
    const principal = { ...(payload.principal as object), superuser: true };
    return bearer(withPayload(real, { ...payload, access: everything(scopes), principal }));
  }
  const credential = account ? credentialOf(account, "app-token") : null;
  if (world.mode === "token") return bearer(await fetchToken(credential, scopes));
  return credential ? basicHeader(credential) : null;
}

/** Asserts the refusal this principal gets in this mode for `action` on `repository`. */
async function expectDenied(
  world: World,
  res: Response,
  repository: string,
  action: "pull" | "push" | "delete",
): Promise<void> {
  if (TOKEN_ONLY.has(world.principal)) return expectInvalidToken(res);
  if (world.mode === "token") return expectInsufficientScope(res, repository, action);
  if (world.principal === "anonymous") {
    const text = await res.text();
    expect(res.status, text).toBe(401);
    expect(JSON.parse(text).errors[0].code).toBe("UNAUTHORIZED");
    const challenge = bearerChallenge(res);
    expect(challenge.realm).toBe(REALM);
    expect(challenge.service).toBe(SERVICE);
    expect(challenge.scope?.split(":").at(-1)?.split(",")).toContain(action);
    return;
  }
  await expectError(res, 403, "DENIED");
}

// ---- content, pushed by the bootstrap admin ----------------------------------------------------

/** An empty OCI index (no blobs needed): the cheapest manifest to tag. Pushed by the admin. */
async function pushIndex(
  repository: string,
  tag: string,
): Promise<{ digest: string; body: Uint8Array }> {
  const body = indexVariant();
  const res = await api(`/v2/${repository}/manifests/${tag}`, {
    method: "PUT",
    body,
    headers: { "Content-Type": MediaTypes.ociIndex },
  });
  expect(res.status, await res.text()).toBe(201);
  return { digest: await sha256(body), body };
}

/** Another empty index, distinct by an annotation. */
function indexVariant(): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: [],
      annotations: { nonce: crypto.randomUUID() },
    }),
  );
}

// "Nothing changed" is read from the repository's Durable Object itself (its RPC methods), not
// through /v2: the truth, without the cost of another authenticated request.

/** The digest a tag or digest resolves to in the repository, or null. */
async function manifestDigest(repository: string, reference: string): Promise<string | null> {
  const stub = env.REPOSITORY.getByName(repository);
  const ref = reference.includes(":") ? { digest: reference as Digest } : { tag: reference };
  const record = await stub.getManifest(ref, false);
  return record ? record.digest : null;
}

/** Whether the blob is linked to (readable through) the repository. */
async function blobLinked(repository: string, digest: string): Promise<boolean> {
  return (await env.REPOSITORY.getByName(repository).getBlob(digest as Digest)) !== null;
}

/** Pushes an image (a config blob, then a manifest of it) with the given Authorization. */
async function pushAs(
  authorization: string | null,
  repository: string,
  tag: string,
): Promise<Response[]> {
  const config = new TextEncoder().encode(
    JSON.stringify({ architecture: "amd64", os: "linux", nonce: crypto.randomUUID() }),
  );
  const responses: Response[] = [];
  responses.push(
    await send(`/v2/${repository}/blobs/uploads/?digest=${await sha256(config)}`, authorization, {
      method: "POST",
      body: config,
      headers: { "Content-Type": "application/octet-stream" },
    }),
  );
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    config: { mediaType: MediaTypes.ociConfig, digest: await sha256(config), size: config.length },
    layers: [],
  });
  responses.push(
    await send(`/v2/${repository}/manifests/${tag}`, authorization, {
      method: "PUT",
      body: manifest,
      headers: { "Content-Type": MediaTypes.ociManifest },
    }),
  );
  return responses;
}

// ---- actions -----------------------------------------------------------------------------------

type Outcome = "allow" | "deny" | "fallback";
/** Which of the world's repositories `_catalog` must list (exactly), or "deny" (invalid token). */
type CatalogView = readonly ("org" | "public" | "secret" | "own")[] | "deny";

const ACTIONS = [
  "pull manifest and blob",
  "push (blob upload + manifest put)",
  "delete manifest",
  "delete blob",
  "mount from a repository it cannot read",
  "mount from a public repository",
  "catalog",
  "create a repository in the org by pushing",
  "create a repository in its own namespace by pushing",
  "create a repository in another user's namespace by pushing",
  "tags list",
  "referrers",
] as const;
type ActionKey = (typeof ACTIONS)[number];

type Expectation = Outcome | CatalogView | null;

const A = "allow";
const D = "deny";
const F = "fallback";
const INVALID = {
  "pull manifest and blob": D,
  "push (blob upload + manifest put)": D,
  "delete manifest": D,
  "delete blob": D,
  "mount from a repository it cannot read": D,
  "mount from a public repository": D,
  catalog: "deny",
  "create a repository in the org by pushing": D,
  "create a repository in its own namespace by pushing": D,
  "create a repository in another user's namespace by pushing": D,
  "tags list": D,
  referrers: D,
} as const satisfies Record<ActionKey, Expectation>;

/** The matrix. `null`: the action makes no sense for the principal (no namespace of its own). */
const EXPECTED: Record<PrincipalKey, Record<ActionKey, Expectation>> = {
  anonymous: row(D, D, D, D, D, D, ["public"], D, null, D, D, D),
  "user without access": row(D, D, D, D, D, D, ["public"], D, A, D, D, D),
  reader: row(A, D, D, D, D, D, ["org", "public"], D, A, D, A, A),
  writer: row(A, A, D, D, F, A, ["org", "public"], D, A, D, A, A),
  "repository admin": row(A, A, A, A, F, A, ["org", "public"], D, A, D, A, A),
  "org admin": row(A, A, A, A, F, A, ["org", "public"], A, A, D, A, A),
  "creator-team member": row(D, D, D, D, D, D, ["public"], A, A, D, D, D),
  "member-team member with team read": row(A, D, D, D, D, D, ["org", "public"], D, A, D, A, A),
  "robot with read": row(A, D, D, D, D, D, ["org", "public"], D, null, D, A, A),
  "robot with write": row(A, A, D, D, F, A, ["org", "public"], D, null, D, A, A),
  "namespace owner": row(A, A, A, A, F, A, ["own", "public"], D, A, D, A, A),
  // A superuser may read everything, so its "unreadable" mount is a real mount.
  superuser: row(A, A, A, A, A, A, ["org", "public", "secret"], A, A, A, A, A),
  "expired token": INVALID,
  "token for another service": INVALID,
  "tampered token": INVALID,
};

function row(...cells: Expectation[]): Record<ActionKey, Expectation> {
  return Object.fromEntries(ACTIONS.map((action, i) => [action, cells[i]!])) as Record<
    ActionKey,
    Expectation
  >;
}

type Run = (world: World, expected: Expectation) => Promise<void>;

const pullScope = (repository: string) => `repository:${repository}:pull`;
const pushScope = (repository: string) => `repository:${repository}:pull,push`;
const deleteScope = (repository: string) => `repository:${repository}:delete`;

/** Pushes into a repository that does not exist yet; allow ⇒ created, deny ⇒ no trace. */
async function createByPush(world: World, repository: string, expected: Expectation) {
  const auth = await authorize(world, [pushScope(repository)]);
  const responses = await pushAs(auth, repository, "v1");
  if (expected === "allow") {
    for (const res of responses) expect(res.status, await res.text()).toBe(201);
    expect(await repositoryRow(repository)).toBeDefined();
    expect(await manifestDigest(repository, "v1")).not.toBeNull();
    // Whoever created it can read it back with a fresh authorization.
    const again = await authorize(world, [pullScope(repository)]);
    expect((await send(`/v2/${repository}/manifests/v1`, again)).status).toBe(200);
    return;
  }
  for (const res of responses) await expectDenied(world, res, repository, "push");
  // The first write of a repository records it in D1: no row, no repository.
  expect(await repositoryRow(repository)).toBeUndefined();
}

/** The image and referrer read by pull, tags list and referrers: shared, or the owner's own. */
async function readable(world: World): Promise<{ image: PushedImage; referrer: string }> {
  if (world.target === shared.repo) return { image: shared.image, referrer: shared.referrer };
  const image = await pushImage(world.target, { tag: "v1" });
  const referrer = await pushImage(world.target, {
    subject: {
      digest: image.digest,
      size: image.manifest.length,
      mediaType: MediaTypes.ociManifest,
    },
    artifactType: "application/vnd.example.sbom.v1",
    layers: [],
  });
  return { image, referrer: referrer.digest };
}

/** The actions that only read run against the shared content (the owner brings its own). */
const READS = new Set<ActionKey>(["pull manifest and blob", "tags list", "referrers"]);

const RUN: Record<ActionKey, Run> = {
  async "pull manifest and blob"(world, expected) {
    const { image } = await readable(world);
    const auth = await authorize(world, [pullScope(world.target)]);
    const manifest = await send(`/v2/${world.target}/manifests/v1`, auth);
    const blob = await send(`/v2/${world.target}/blobs/${image.layers[0]}`, auth);
    if (expected === "allow") {
      expect(manifest.status).toBe(200);
      expect(manifest.headers.get("Docker-Content-Digest")).toBe(image.digest);
      expect(await sha256(new Uint8Array(await manifest.arrayBuffer()))).toBe(image.digest);
      expect(blob.status).toBe(307);
    } else {
      await expectDenied(world, manifest, world.target, "pull");
      await expectDenied(world, blob, world.target, "pull");
    }
  },

  async "push (blob upload + manifest put)"(world, expected) {
    const before = await pushIndex(world.target, "v1");
    const auth = await authorize(world, [pushScope(world.target)]);
    const bytes = randomBytes(64);
    const digest = await sha256(bytes);
    const upload = await send(`/v2/${world.target}/blobs/uploads/?digest=${digest}`, auth, {
      method: "POST",
      body: bytes,
      headers: { "Content-Type": "application/octet-stream" },
    });
    // The new manifest moves tag v1 and needs no blob, so a missing authorization check could
    // not hide behind MANIFEST_BLOB_UNKNOWN.
    const manifest = indexVariant();
    const put = await send(`/v2/${world.target}/manifests/v1`, auth, {
      method: "PUT",
      body: manifest,
      headers: { "Content-Type": MediaTypes.ociIndex },
    });
    if (expected === "allow") {
      expect(upload.status, await upload.text()).toBe(201);
      expect(put.status, await put.text()).toBe(201);
      expect(await blobLinked(world.target, digest)).toBe(true);
      expect(await manifestDigest(world.target, "v1")).toBe(await sha256(manifest));
      return;
    }
    await expectDenied(world, upload, world.target, "push");
    await expectDenied(world, put, world.target, "push");
    expect(await blobLinked(world.target, digest)).toBe(false);
    expect(await manifestDigest(world.target, "v1")).toBe(before.digest);
    expect(await manifestDigest(world.target, await sha256(manifest))).toBeNull();
  },

  async "delete manifest"(world, expected) {
    const { digest } = await pushIndex(world.target, "v1");
    const auth = await authorize(world, [deleteScope(world.target)]);
    const res = await send(`/v2/${world.target}/manifests/${digest}`, auth, { method: "DELETE" });
    if (expected === "allow") {
      expect(res.status, await res.text()).toBe(202);
      expect(await manifestDigest(world.target, digest)).toBeNull();
      return;
    }
    await expectDenied(world, res, world.target, "delete");
    expect(await manifestDigest(world.target, digest)).toBe(digest);
    expect(await manifestDigest(world.target, "v1")).toBe(digest);
  },

  async "delete blob"(world, expected) {
    const digest = await pushBlob(world.target, randomBytes(64));
    const auth = await authorize(world, [deleteScope(world.target)]);
    const res = await send(`/v2/${world.target}/blobs/${digest}`, auth, { method: "DELETE" });
    if (expected === "allow") {
      expect(res.status, await res.text()).toBe(202);
      expect(await blobLinked(world.target, digest)).toBe(false);
      return;
    }
    await expectDenied(world, res, world.target, "delete");
    expect(await blobLinked(world.target, digest)).toBe(true);
  },

  async "mount from a repository it cannot read"(world, expected) {
    const { secretRepo, secretBlob } = shared;
    const auth = await authorize(world, [pushScope(world.target), pullScope(secretRepo)]);
    const res = await send(
      `/v2/${world.target}/blobs/uploads/?mount=${secretBlob}&from=${secretRepo}`,
      auth,
      { method: "POST" },
    );
    if (expected === "allow") {
      expect(res.status, await res.text()).toBe(201);
      expect(await blobLinked(world.target, secretBlob)).toBe(true);
    } else if (expected === "fallback") {
      // distribution-spec end-11: not mountable → an ordinary upload session, and no hint that
      // the blob exists in a repository the caller cannot read.
      expect(res.status, await res.text()).toBe(202);
      expect(res.headers.get("Location")).toMatch(
        new RegExp(`^(${ORIGIN})?/v2/${world.target}/blobs/uploads/[0-9a-f-]{36}`),
      );
      expect(res.headers.get("Docker-Content-Digest")).toBeNull();
      expect(await blobLinked(world.target, secretBlob)).toBe(false);
    } else {
      await expectDenied(world, res, world.target, "push");
      expect(await blobLinked(world.target, secretBlob)).toBe(false);
    }
  },

  async "mount from a public repository"(world, expected) {
    const { publicRepo, publicBlob } = shared;
    const auth = await authorize(world, [pushScope(world.target), pullScope(publicRepo)]);
    const res = await send(
      `/v2/${world.target}/blobs/uploads/?mount=${publicBlob}&from=${publicRepo}`,
      auth,
      { method: "POST" },
    );
    if (expected === "allow") {
      expect(res.status, await res.text()).toBe(201);
      expect(res.headers.get("Docker-Content-Digest")).toBe(publicBlob);
      expect(await blobLinked(world.target, publicBlob)).toBe(true);
      return;
    }
    await expectDenied(world, res, world.target, "push");
    expect(await blobLinked(world.target, publicBlob)).toBe(false);
  },

  async catalog(world, expected) {
    const auth = await authorize(world, ["registry:catalog:*"]);
    const res = await send(`/v2/_catalog?last=${world.prefix}&n=100`, auth);
    if (expected === "deny") {
      await expectInvalidToken(res);
      return;
    }
    expect(res.status, await res.clone().text()).toBe(200);
    const { repositories } = (await res.json()) as { repositories: string[] };
    const names: Record<string, string | undefined> = {
      org: world.orgRepo,
      public: world.publicRepo,
      secret: world.secretRepo,
      own: world.ownRepo,
    };
    const want = (expected as readonly string[]).map((key) => names[key]!).sort();
    expect(repositories.filter((name) => name.startsWith(world.prefix))).toEqual(want);
  },

  async "create a repository in the org by pushing"(world, expected) {
    await createByPush(world, `${world.org}/${uniqueName("new")}`, expected);
  },

  async "create a repository in its own namespace by pushing"(world, expected) {
    const own =
      world.account?.kind === "robot" ? world.account.namespace : (world.account?.name ?? "");
    await createByPush(world, `${own}/${uniqueName("new")}`, expected);
  },

  async "create a repository in another user's namespace by pushing"(world, expected) {
    const stranger = await createUser({ name: uniqueName(`${world.prefix}s`) });
    await createByPush(world, `${stranger.name}/${uniqueName("new")}`, expected);
  },

  async "tags list"(world, expected) {
    await readable(world);
    const auth = await authorize(world, [pullScope(world.target)]);
    const res = await send(`/v2/${world.target}/tags/list`, auth);
    if (expected === "allow") {
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ name: world.target, tags: ["v1"] });
      return;
    }
    await expectDenied(world, res, world.target, "pull");
  },

  async referrers(world, expected) {
    const { image, referrer } = await readable(world);
    const auth = await authorize(world, [pullScope(world.target)]);
    const res = await send(`/v2/${world.target}/referrers/${image.digest}`, auth);
    if (expected === "allow") {
      expect(res.status).toBe(200);
      const index = (await res.json()) as { manifests: { digest: string }[] };
      expect(index.manifests.map((m) => m.digest)).toEqual([referrer]);
      return;
    }
    await expectDenied(world, res, world.target, "pull");
  },
};

function describeOutcome(expected: Expectation): string {
  if (Array.isArray(expected)) return `lists ${expected.length ? expected.join(", ") : "nothing"}`;
  return expected === "fallback" ? "upload session, nothing mounted" : String(expected);
}

for (const mode of ["token", "basic"] as const) {
  describe.concurrent(`permission matrix, ${mode === "token" ? "Bearer token from /v2/auth" : "Basic sent to /v2"}`, () => {
    for (const principal of PRINCIPALS) {
      if (mode === "basic" && TOKEN_ONLY.has(principal)) continue;
      describe(principal, () => {
        for (const action of ACTIONS) {
          const expected = EXPECTED[principal][action];
          if (expected === null) continue;
          it(`${action} → ${describeOutcome(expected)}`, async () => {
            const world = await buildWorld(principal, mode, {
              sharedOrg: READS.has(action),
              catalog: action === "catalog",
            });
            await RUN[action](world, expected);
          });
        }
      });
    }
  });
}

// ---- rules across the matrix -------------------------------------------------------------------

describe.concurrent("a public repository", () => {
  async function publicRepository(): Promise<string> {
    const org = await createOrg(uniqueName("pub"));
    return `${org}/app`;
  }

  it("is pullable anonymously, without credentials and with an anonymous token", async () => {
    const repository = await publicRepository();
    const image = await pushImage(repository, { tag: "v1" });
    await setRepository(repository, { visibility: "public" });
    const direct = await send(`/v2/${repository}/manifests/v1`, null);
    expect(direct.status).toBe(200);
    expect(direct.headers.get("Docker-Content-Digest")).toBe(image.digest);
    expect((await send(`/v2/${repository}/blobs/${image.layers[0]}`, null)).status).toBe(307);
    expect((await send(`/v2/${repository}/tags/list`, null)).status).toBe(200);

    const token = await fetchToken(null, [`repository:${repository}:pull,push,delete`]);
    expect(accessOf(token)).toEqual([{ type: "repository", name: repository, actions: ["pull"] }]);
    expect((await send(`/v2/${repository}/manifests/v1`, bearer(token))).status).toBe(200);
    expect((await send(`/v2/${repository}/blobs/${image.layers[0]}`, bearer(token))).status).toBe(
      307,
    );
  });

  it("is not pushable or deletable anonymously; nothing changes", async () => {
    const repository = await publicRepository();
    const before = await pushIndex(repository, "v1");
    await setRepository(repository, { visibility: "public" });
    const bytes = randomBytes(64);
    const digest = await sha256(bytes);
    const direct = await send(`/v2/${repository}/blobs/uploads/?digest=${digest}`, null, {
      method: "POST",
      body: bytes,
    });
    await expectError(direct, 401, "UNAUTHORIZED");
    expect(bearerChallenge(direct).scope).toBe(`repository:${repository}:pull,push`);

    const token = bearer(await fetchToken(null, [`repository:${repository}:pull,push,delete`]));
    const put = await send(`/v2/${repository}/manifests/v1`, token, {
      method: "PUT",
      body: indexVariant(),
      headers: { "Content-Type": MediaTypes.ociIndex },
    });
    await expectInsufficientScope(put, repository, "push", `repository:${repository}:pull,push`);
    const del = await send(`/v2/${repository}/manifests/${before.digest}`, token, {
      method: "DELETE",
    });
    await expectInsufficientScope(del, repository, "delete");
    const directDelete = await send(`/v2/${repository}/manifests/${before.digest}`, null, {
      method: "DELETE",
    });
    await expectError(directDelete, 401, "UNAUTHORIZED");
    expect(await blobLinked(repository, digest)).toBe(false);
    expect(await manifestDigest(repository, "v1")).toBe(before.digest);
  });

  it("is pullable but not pushable by a signed-in user without a grant", async () => {
    const repository = await publicRepository();
    const before = await pushIndex(repository, "v1");
    await setRepository(repository, { visibility: "public" });
    const user = await createUser();
    const basic = basicHeader(credentialOf(user));
    expect((await send(`/v2/${repository}/manifests/v1`, basic)).status).toBe(200);
    const put = await send(`/v2/${repository}/manifests/v1`, basic, {
      method: "PUT",
      body: indexVariant(),
      headers: { "Content-Type": MediaTypes.ociIndex },
    });
    await expectError(put, 403, "DENIED");
    const token = await fetchToken(credentialOf(user), [pushScope(repository)]);
    expect(accessOf(token)).toEqual([{ type: "repository", name: repository, actions: ["pull"] }]);
    expect(await manifestDigest(repository, "v1")).toBe(before.digest);
  });
});

describe.concurrent("a read-only repository refuses push and delete even to its admins, allows pull", () => {
  const ADMINS = ["repository admin", "org admin", "namespace owner", "superuser"] as const;
  for (const mode of ["token", "basic"] as const) {
    for (const principal of ADMINS) {
      it(`${principal}, ${mode}`, async () => {
        const world = await buildWorld(principal, mode);
        const image = await pushIndex(world.target, "v1");
        const spare = await pushBlob(world.target, randomBytes(64));
        await setRepository(world.target, { state: "read-only" });
        const scopes = [`repository:${world.target}:pull,push,delete`];
        const auth = await authorize(world, scopes);
        if (mode === "token") {
          expect(accessOf(auth!.replace(/^Bearer /, ""))).toEqual([
            { type: "repository", name: world.target, actions: ["pull"] },
          ]);
        }

        expect((await send(`/v2/${world.target}/manifests/v1`, auth)).status).toBe(200);
        const bytes = randomBytes(64);
        const digest = await sha256(bytes);
        const upload = await send(`/v2/${world.target}/blobs/uploads/?digest=${digest}`, auth, {
          method: "POST",
          body: bytes,
        });
        await expectDenied(world, upload, world.target, "push");
        const put = await send(`/v2/${world.target}/manifests/v1`, auth, {
          method: "PUT",
          body: indexVariant(),
          headers: { "Content-Type": MediaTypes.ociIndex },
        });
        await expectDenied(world, put, world.target, "push");
        const deleteManifest = await send(`/v2/${world.target}/manifests/${image.digest}`, auth, {
          method: "DELETE",
        });
        await expectDenied(world, deleteManifest, world.target, "delete");
        const deleteBlob = await send(`/v2/${world.target}/blobs/${spare}`, auth, {
          method: "DELETE",
        });
        await expectDenied(world, deleteBlob, world.target, "delete");

        expect(await manifestDigest(world.target, "v1")).toBe(image.digest);
        expect(await blobLinked(world.target, spare)).toBe(true);
        expect(await blobLinked(world.target, digest)).toBe(false);
      });
    }
  }
});

describe.concurrent("a change of permissions takes effect for the next token and the next Basic request", () => {
  it("a revoked read grant: the next token carries nothing, Basic is refused", async () => {
    const org = await createOrg(uniqueName("rv"));
    const repository = `${org}/app`;
    await pushIndex(repository, "v1");
    const reader = await createUser();
    await grant(repository, reader, "read");
    const before = await fetchToken(credentialOf(reader), [pullScope(repository)]);
    expect(accessOf(before)).toEqual([{ type: "repository", name: repository, actions: ["pull"] }]);
    expect((await send(`/v2/${repository}/manifests/v1`, bearer(before))).status).toBe(200);
    const basic = basicHeader(credentialOf(reader));
    expect((await send(`/v2/${repository}/manifests/v1`, basic)).status).toBe(200);

    await revoke(repository, reader);

    const after = await fetchToken(credentialOf(reader), [pullScope(repository)]);
    expect(accessOf(after)).toEqual([]);
    await expectInsufficientScope(
      await send(`/v2/${repository}/manifests/v1`, bearer(after)),
      repository,
      "pull",
      `repository:${repository}:pull`,
    );
    // Basic credentials are cached per isolate, the permissions they map to are not.
    await expectError(await send(`/v2/${repository}/manifests/v1`, basic), 403, "DENIED");
  });

  it("a write grant lowered to read: the next token has pull only", async () => {
    const org = await createOrg(uniqueName("rv"));
    const repository = `${org}/app`;
    await createRepository(repository);
    const robot = await createRobot(org);
    await grant(repository, robot, "write");
    expect(accessOf(await fetchToken(credentialOf(robot), [pushScope(repository)]))).toEqual([
      { type: "repository", name: repository, actions: ["pull", "push"] },
    ]);
    await grant(repository, robot, "read");
    expect(accessOf(await fetchToken(credentialOf(robot), [pushScope(repository)]))).toEqual([
      { type: "repository", name: repository, actions: ["pull"] },
    ]);
  });

  it("leaving a team loses the team's grant; leaving the admin team loses the org", async () => {
    const org = await createOrg(uniqueName("rv"));
    const repository = `${org}/app`;
    await createRepository(repository);
    const user = await createUser();
    const readers = await createTeam(org, "member", [user]);
    await grant(repository, readers, "read");
    const admins = await createTeam(org, "admin", [user]);
    const scope = [`repository:${repository}:pull,push,delete`];
    expect(accessOf(await fetchToken(credentialOf(user), scope))[0]?.actions).toEqual([
      "pull",
      "push",
      "delete",
    ]);
    await removeFromTeam(admins, user);
    expect(accessOf(await fetchToken(credentialOf(user), scope))[0]?.actions).toEqual(["pull"]);
    await removeFromTeam(readers, user);
    expect(accessOf(await fetchToken(credentialOf(user), scope))).toEqual([]);
  });
});

describe.concurrent("creating a repository by pushing", () => {
  it("applies the org's default permissions and makes a creator-team member its admin", async () => {
    const org = await createOrg(uniqueName("dp"));
    const creator = await createUser();
    await createTeam(org, "creator", [creator]);
    const robot = await createRobot(org);
    await grantByDefault(org, robot, "read");
    const repository = `${org}/${uniqueName("new")}`;
    const token = bearer(await fetchToken(credentialOf(creator), [pushScope(repository)]));
    for (const res of await pushAs(token, repository, "v1")) expect(res.status).toBe(201);

    const grants = await permissionsOf(repository);
    expect(grants).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ principalKind: "robot", principalId: robot.id, role: "read" }),
        expect.objectContaining({ principalKind: "user", principalId: creator.id, role: "admin" }),
      ]),
    );
    const robotToken = await fetchToken(credentialOf(robot), [pushScope(repository)]);
    expect(accessOf(robotToken)).toEqual([
      { type: "repository", name: repository, actions: ["pull"] },
    ]);
    expect((await send(`/v2/${repository}/manifests/v1`, bearer(robotToken))).status).toBe(200);
  });

  it("a robot with write on one repository cannot create another in its namespace", async () => {
    const org = await createOrg(uniqueName("dp"));
    await createRepository(`${org}/app`);
    const robot = await createRobot(org);
    await grant(`${org}/app`, robot, "write");
    const repository = `${org}/${uniqueName("new")}`;
    const responses = await pushAs(basicHeader(credentialOf(robot)), repository, "v1");
    for (const res of responses) expect(await errorCode(res)).toBe("DENIED");
    expect(await repositoryRow(repository)).toBeUndefined();
  });
});
