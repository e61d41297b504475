// The RepositoryObject caches resolved manifests; every write must show through at once.
import { expect, it } from "vitest";
import { api, pushImage, uniqueRepo } from "./helpers.ts";

const get = async (repo: string, reference: string) => {
  const res = await api(`/v2/${repo}/manifests/${reference}`);
  await res.arrayBuffer();
  return { status: res.status, digest: res.headers.get("Docker-Content-Digest") };
};

it("a pull after a retag, a tag delete or a manifest delete sees the change", async () => {
  const repo = uniqueRepo("cache");
  const first = await pushImage(repo, { tag: "latest" });
  expect(await get(repo, "latest")).toEqual({ status: 200, digest: first.digest });
  expect((await get(repo, first.digest)).status).toBe(200);

  const second = await pushImage(repo, { tag: "latest" });
  expect(await get(repo, "latest")).toEqual({ status: 200, digest: second.digest });

  expect((await api(`/v2/${repo}/manifests/latest`, { method: "DELETE" })).status).toBe(202);
  expect((await get(repo, "latest")).status).toBe(404);

  expect((await api(`/v2/${repo}/manifests/${first.digest}`, { method: "DELETE" })).status).toBe(
    202,
  );
  expect((await get(repo, first.digest)).status).toBe(404);
  expect((await get(repo, second.digest)).status).toBe(200);
});
