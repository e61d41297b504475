// end-1 (GET /v2/), the token-auth challenge, the bootstrap admin's HTTP Basic access, and the
// error shape every endpoint shares.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { api, expectError, expectHeadError, pushImage, uniqueRepo } from "./helpers.ts";

const basic = (user: string, password: string) => `Basic ${btoa(`${user}:${password}`)}`;

async function expectChallenge(res: Response): Promise<void> {
  await expectError(res, 401, "UNAUTHORIZED");
  const challenge = res.headers.get("WWW-Authenticate") ?? "";
  expect(challenge).toMatch(/^Bearer realm="http:\/\/registry\.test\/v2\/auth",service="[^"]+"/);
}

describe("GET /v2/ (end-1)", () => {
  it("answers 200 with a JSON body and the API version header for the admin", async () => {
    const res = await api("/v2/");
    expect(res.status).toBe(200);
    expect(res.headers.get("Docker-Distribution-API-Version")).toBe("registry/2.0");
    expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({});
  });

  it("answers HEAD with 200 and no body", async () => {
    const res = await api("/v2/", { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("");
  });

  it("challenges an anonymous client with 401 UNAUTHORIZED and a Bearer challenge", async () => {
    const res = await api("/v2/", { auth: false });
    expect(res.headers.get("Docker-Distribution-API-Version")).toBe("registry/2.0");
    await expectChallenge(res);
  });

  it("takes the Basic scheme name in any case (RFC 9110 §11.1)", async () => {
    const credentials = btoa(`${env.REGISTRY_ADMIN_USER}:${env.REGISTRY_ADMIN_PASSWORD}`);
    const res = await api("/v2/", { headers: { Authorization: `basic ${credentials}` } });
    expect(res.status).toBe(200);
  });

  it("refuses a wrong password", async () => {
    const res = await api("/v2/", {
      headers: { Authorization: basic(env.REGISTRY_ADMIN_USER, "not-the-password") },
    });
    await expectChallenge(res);
  });

  it("refuses a wrong user with the right password", async () => {
    const res = await api("/v2/", {
      headers: { Authorization: basic("mallory", env.REGISTRY_ADMIN_PASSWORD) },
    });
    await expectChallenge(res);
  });

  it.each([
    ["a Bearer token", "Bearer abc.def.ghi"],
    ["Basic without a colon", `Basic ${btoa("adminonly")}`],
    ["Basic with broken base64", "Basic ***"],
    ["an empty Basic", "Basic "],
    ["a password prefix", basic("admin", "test-admin")],
  ])("refuses %s", async (_label, authorization) => {
    await expectChallenge(await api("/v2/", { headers: { Authorization: authorization } }));
  });

  it("answers an anonymous HEAD with 401, the challenge and no body", async () => {
    const res = await api("/v2/", { method: "HEAD", auth: false });
    expect(res.headers.get("WWW-Authenticate")).toMatch(/^Bearer realm=/);
    await expectHeadError(res, 401);
  });
});

describe("access to every /v2 endpoint", () => {
  it.each([
    ["GET", "/manifests/latest"],
    ["HEAD", "/manifests/latest"],
    ["PUT", "/manifests/latest"],
    ["DELETE", "/manifests/latest"],
    ["GET", `/blobs/sha256:${"a".repeat(64)}`],
    ["DELETE", `/blobs/sha256:${"a".repeat(64)}`],
    ["POST", "/blobs/uploads/"],
    ["GET", "/tags/list"],
    ["GET", `/referrers/sha256:${"a".repeat(64)}`],
  ])("%s %s needs credentials", async (method, suffix) => {
    const repo = uniqueRepo("auth");
    await pushImage(repo, { tag: "latest" });
    const res = await api(`/v2/${repo}${suffix}`, { method, auth: false });
    // The challenge names the scope the client must ask the token service for.
    expect(res.headers.get("WWW-Authenticate")).toMatch(
      new RegExp(`^Bearer realm="[^"]+",service="[^"]+",scope="repository:${repo}:pull`),
    );
    if (method === "HEAD") await expectHeadError(res, 401);
    else await expectError(res, 401, "UNAUTHORIZED");
  });

  it("shows an anonymous client no private repository in the catalog", async () => {
    const repo = uniqueRepo("auth");
    await pushImage(repo, { tag: "v1" });
    const res = await api("/v2/_catalog?n=10000", { auth: false });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { repositories: string[] }).repositories).not.toContain(repo);
  });

  it("does not let an anonymous client read a pushed manifest", async () => {
    const repo = uniqueRepo("auth");
    const image = await pushImage(repo, { tag: "v1" });
    const res = await api(`/v2/${repo}/manifests/${image.digest}`, { auth: false });
    const text = await res.text();
    expect(res.status).toBe(401);
    expect(text).not.toContain(image.config);
  });
});

describe("errors", () => {
  it("answers an unknown /v2 path with a JSON error, not an HTML page", async () => {
    const res = await api("/v2/no/such/endpoint");
    expect(res.status).toBe(404);
    expect(res.headers.get("Docker-Distribution-API-Version")).toBe("registry/2.0");
    await expectError(res, 404, ["UNSUPPORTED", "NAME_UNKNOWN", "NOT_FOUND"]);
  });

  // Bad input of every kind is a 4xx in the spec's JSON shape, never a 500 or an HTML page.
  it.each([
    ["GET", "/v2/%ZZ/tags/list"],
    ["GET", "/v2/ok/%E0%A4%A/manifests/latest"],
    ["GET", "/v2/UPPER/manifests/latest"],
    ["GET", "/v2/repo/manifests/%00"],
    ["GET", "/v2/repo/manifests/sha256:"],
    ["GET", "/v2/repo/manifests/:"],
    ["GET", "/v2/repo/blobs/sha256:zz"],
    ["GET", "/v2/repo/blobs/notadigest"],
    ["GET", "/v2/repo/tags/list?n=-1"],
    ["GET", "/v2/repo/tags/list?n=1e3"],
    ["GET", "/v2/_catalog?n=abc"],
    ["GET", "/v2/repo/referrers/latest"],
    ["POST", "/v2/repo/blobs/uploads/?digest=sha256:short"],
    ["POST", "/v2/repo/blobs/uploads/?mount=nope&from=other"],
    ["POST", "/v2/repo/blobs/uploads/?mount=sha256:" + "a".repeat(64) + "&from=Bad..Name"],
    ["PATCH", "/v2/repo/blobs/uploads/not-a-uuid"],
    ["PUT", "/v2/repo/blobs/uploads/not-a-uuid?digest=sha256:" + "a".repeat(64)],
    ["PUT", "/v2/repo/manifests/-badtag"],
    ["POST", "/v2/repo/manifests/latest"],
    ["DELETE", "/v2/repo/tags/list"],
  ])("%s %s is a JSON 4xx", async (method, path) => {
    const res = await api(path, { method, ...(method === "PUT" ? { body: "{}" } : {}) });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    await expectError(res, res.status, [
      "BLOB_UNKNOWN",
      "BLOB_UPLOAD_INVALID",
      "BLOB_UPLOAD_UNKNOWN",
      "DIGEST_INVALID",
      "MANIFEST_BLOB_UNKNOWN",
      "MANIFEST_INVALID",
      "MANIFEST_UNKNOWN",
      "NAME_INVALID",
      "NAME_UNKNOWN",
      "SIZE_INVALID",
      "UNSUPPORTED",
      "TAG_INVALID",
      "RANGE_INVALID",
      "PAGINATION_NUMBER_INVALID",
    ]);
  });
});
