// The one-time build token (invariant 5: no build token can do more than its scopes say): it
// pushes to its build's target and nowhere else, dies when its attempt ends (build over, or lease
// lost), never reaches the management API, and may be exchanged only for pull on what the build's
// requester may pull. Also the fleet's source endpoint, which takes the same token.
import { env, runDurableObjectAlarm } from "cloudflare:test";
import { decodeJwt } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BuildJob, BuildRequest } from "../../schema/builds.ts";
import {
  buildRequest,
  buildWorld,
  coordinator,
  deliver,
  eventually,
  FakeHost,
  resetCoordinator,
  silenceHost,
} from "./builds-helpers.ts";
import { MediaTypes, pushImage, randomBytes, sha256 } from "./helpers.ts";
import {
  accessOf,
  bearer,
  create,
  expectInsufficientScope,
  expectInvalidToken,
  forgeToken,
  SERVICE,
  send,
  uniqueName,
} from "./identity-fixtures.ts";

const hosts: FakeHost[] = [];
beforeEach(resetCoordinator);
afterEach(async () => {
  for (const h of hosts.splice(0)) h.close();
  await resetCoordinator();
});

/** A running build of a fresh repository whose requester may read `base` (and write `other`). */
async function runningBuild(): Promise<{
  request: BuildRequest;
  job: BuildJob;
  fleet: FakeHost;
  base: string;
  other: string;
  secret: string;
}> {
  const world = await buildWorld();
  const org = world.repository.split("/")[0]!;
  const { base, other, secret } = await create((b) => {
    const base = b.repository(`${org}/${uniqueName("base")}`);
    const other = b.repository(`${org}/${uniqueName("other")}`);
    const secret = b.repository(`${org}/${uniqueName("secret")}`);
    b.grant(base, world.writer, "read");
    b.grant(other, world.writer, "write");
    return { base, other, secret };
  });
  await pushImage(base, { tag: "1.0" });
  const request = buildRequest(world.repository, world.writer);
  await deliver(request);
  const fleet = await FakeHost.connect();
  hosts.push(fleet);
  const job = await fleet.job(request.buildId);
  return { request, job, fleet, base, other, secret };
}

async function pushBlobWith(repository: string, token: string): Promise<Response> {
  const bytes = randomBytes(64);
  return send(`/v2/${repository}/blobs/uploads/?digest=${await sha256(bytes)}`, bearer(token), {
    method: "POST",
    body: bytes,
    headers: { "Content-Type": "application/octet-stream" },
  });
}

async function exchange(token: string, ...scopes: string[]): Promise<Response> {
  const query = new URLSearchParams({ service: SERVICE });
  for (const scope of scopes) query.append("scope", scope);
  return send(`/v2/auth?${query}`, bearer(token));
}

describe("the build token", () => {
  it("may push and pull its target repository only", async () => {
    const { request, job, other } = await runningBuild();
    expect(accessOf(job.token)).toEqual([
      { type: "repository", name: request.repository, actions: ["pull", "push"] },
    ]);
    expect(decodeJwt(job.token).exp! * 1000).toBe(job.tokenExpiresAt);
    expect((await pushBlobWith(request.repository, job.token)).status).toBe(201);
    await expectInsufficientScope(await pushBlobWith(other, job.token), other, "push");
  });

  it("is revoked when the build ends", async () => {
    const { request, job, fleet } = await runningBuild();
    fleet.succeed(job);
    await eventually(async () =>
      expect((await env.BUILD.getByName(request.buildId).state())!.phase).toBe("complete"),
    );
    await expectInvalidToken(await pushBlobWith(request.repository, job.token));
  });

  it("is revoked when its attempt loses the lease; the next attempt's token works", async () => {
    const { request, job, fleet } = await runningBuild();
    const standby = await FakeHost.connect();
    hosts.push(standby);
    await silenceHost(fleet.hostId);
    await runDurableObjectAlarm(coordinator());
    const retry = await standby.job(request.buildId);
    await expectInvalidToken(await pushBlobWith(request.repository, job.token));
    expect((await pushBlobWith(request.repository, retry.token)).status).toBe(201);
  });

  it("is refused once expired, and when it names an attempt that is not current", async () => {
    const { request, job } = await runningBuild();
    const claims = decodeJwt(job.token);
    const now = Math.floor(Date.now() / 1000);
    const expired = await forgeToken({
      ...claims,
      iat: now - 7200,
      nbf: now - 7200,
      exp: now - 60,
    });
    await expectInvalidToken(await pushBlobWith(request.repository, expired));
    const build = claims.build as Record<string, unknown>;
    const otherAttempt = await forgeToken({ ...claims, build: { ...build, attempt: 2 } });
    await expectInvalidToken(await pushBlobWith(request.repository, otherAttempt));
  });

  it("cannot reach the management API", async () => {
    const { request, job } = await runningBuild();
    for (const path of [`/api/v1/repositories/${request.repository}`, "/api/v1/user/tokens"]) {
      const res = await send(path, bearer(job.token));
      expect(res.status, path).toBe(401);
    }
  });

  it("names the build as the actor of what it pushes", async () => {
    const { request, job } = await runningBuild();
    const config = new TextEncoder().encode("{}");
    const digest = await sha256(config);
    const blob = await send(
      `/v2/${request.repository}/blobs/uploads/?digest=${digest}`,
      bearer(job.token),
      {
        method: "POST",
        body: config,
      },
    );
    expect(blob.status).toBe(201);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config: { mediaType: MediaTypes.ociConfig, digest, size: config.byteLength },
      layers: [],
    });
    const put = await send(`/v2/${request.repository}/manifests/latest`, bearer(job.token), {
      method: "PUT",
      body: manifest,
      headers: { "Content-Type": MediaTypes.ociManifest },
    });
    expect(put.status).toBe(201);
    const row = await eventually(async () => {
      const found = await env.DB.prepare(
        "SELECT actor_kind, actor FROM audit_log WHERE repository = ? AND kind = 'tag.push'",
      )
        .bind(request.repository)
        .first<{ actor_kind: string; actor: string }>();
      expect(found).not.toBeNull();
      return found!;
    }, 5000);
    expect(row).toEqual({ actor_kind: "build", actor: request.buildId });
  });
});

describe("exchanging the build token for base-image pulls", () => {
  it("grants pull on what the requester may pull, push only on the target", async () => {
    const { request, job, base, other, secret } = await runningBuild();
    const res = await exchange(
      job.token,
      `repository:${base}:pull,push`,
      `repository:${other}:pull,push`,
      `repository:${secret}:pull`,
      `repository:${request.repository}:pull,push`,
    );
    expect(res.status).toBe(200);
    const { token } = (await res.json()) as { token: string };
    expect(accessOf(token)).toEqual([
      { type: "repository", name: base, actions: ["pull"] },
      // The requester may push to `other`, but the build may not.
      { type: "repository", name: other, actions: ["pull"] },
      { type: "repository", name: request.repository, actions: ["pull", "push"] },
    ]);
    expect(decodeJwt(token).exp! - decodeJwt(token).iat!).toBeLessThanOrEqual(300);
    const pull = await send(`/v2/${base}/manifests/1.0`, bearer(token), {
      headers: { Accept: MediaTypes.ociManifest },
    });
    expect(pull.status).toBe(200);
    await expectInsufficientScope(await pushBlobWith(other, token), other, "push");
  });

  it("dies with the build, and cannot be had once the build ended", async () => {
    const { request, job, fleet, base } = await runningBuild();
    const { token } = (await (await exchange(job.token, `repository:${base}:pull`)).json()) as {
      token: string;
    };
    fleet.fail(job, "RUN step failed");
    await eventually(async () =>
      expect((await env.BUILD.getByName(request.buildId).state())!.phase).toBe("error"),
    );
    await expectInvalidToken(
      await send(`/v2/${base}/manifests/1.0`, bearer(token), {
        headers: { Accept: MediaTypes.ociManifest },
      }),
    );
    expect((await exchange(job.token, `repository:${base}:pull`)).status).toBe(401);
  });

  it("refuses bearer tokens that are not build tokens", async () => {
    const { base } = await runningBuild();
    const ordinary = await forgeToken({
      access: [{ type: "repository", name: base, actions: ["pull"] }],
    });
    expect((await exchange(ordinary, `repository:${base}:pull`)).status).toBe(401);
    expect((await exchange("not-a-jwt", `repository:${base}:pull`)).status).toBe(401);
  });
});

describe("the fleet's source endpoint", () => {
  it("serves an uploaded source to that build's token only", async () => {
    const world = await buildWorld();
    const key = `build-sources/${crypto.randomUUID()}`;
    const dockerfile = "FROM scratch\nCOPY . /\n";
    await env.BLOBS.put(key, dockerfile);
    const request = buildRequest(world.repository, world.writer, {
      source: { kind: "archive", format: "dockerfile", key, size: dockerfile.length },
    });
    const other = buildRequest(world.repository, world.writer);
    await deliver(request);
    await deliver(other);
    const fleet = await FakeHost.connect({ concurrency: 2 });
    hosts.push(fleet);
    const job = await fleet.job(request.buildId);
    const otherJob = await fleet.job(other.buildId);
    expect(job.source).toEqual(request.source);

    const url = `/fleet/v1/builds/${request.buildId}/source`;
    const res = await send(url, bearer(job.token));
    expect(res.status).toBe(200);
    expect(res.headers.get("X-Build-Source-Format")).toBe("dockerfile");
    expect(await res.text()).toBe(dockerfile);
    expect((await send(url, bearer(otherJob.token))).status).toBe(401);
    expect((await send(url, null)).status).toBe(401);
    expect(
      (await send(`/fleet/v1/builds/${other.buildId}/source`, bearer(otherJob.token))).status,
    ).toBe(404);
    fleet.succeed(job);
    await eventually(async () =>
      expect((await env.BUILD.getByName(request.buildId).state())!.phase).toBe("complete"),
    );
    expect((await send(url, bearer(job.token))).status).toBe(401);
  });
});
