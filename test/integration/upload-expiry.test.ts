// Abandoned upload sessions expire through the RepositoryObject's alarm, and their R2 parts go.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { expect, it } from "vitest";
import type { RepositoryObject } from "../../durable-objects/repository-object.ts";
import { api, randomBytes, uniqueRepo } from "./helpers.ts";

it("expires an idle session and aborts its multipart upload", async () => {
  const repo = uniqueRepo("expiry");
  const start = await api(`/v2/${repo}/blobs/uploads/`, { method: "POST" });
  expect(start.status).toBe(202);
  const location = start.headers.get("Location")!;
  const id = location.split("/").at(-1)!;
  // A Content-Range chunk of more than one 8 MiB part, so a multipart upload stays open in R2.
  const size = 9 * 1024 * 1024;
  const patch = await api(location, {
    method: "PATCH",
    body: randomBytes(size),
    headers: { "Content-Range": `0-${size - 1}` },
  });
  expect(patch.status).toBe(202);

  const stub = env.REPOSITORY.getByName(repo);
  const { key, multipartId } = await runInDurableObject(stub, (_obj: RepositoryObject, state) => {
    state.storage.sql.exec("UPDATE uploads SET expires_at = 0 WHERE id = ?", id);
    const row = state.storage.sql
      .exec<{ r2_key: string; multipart_id: string }>(
        "SELECT r2_key, multipart_id FROM uploads WHERE id = ?",
        id,
      )
      .one();
    return { key: row.r2_key, multipartId: row.multipart_id };
  });
  expect(multipartId).toBeTruthy();
  expect(await runDurableObjectAlarm(stub)).toBe(true);

  expect((await api(location)).status).toBe(404);
  const upload = env.BLOBS.resumeMultipartUpload(key, multipartId);
  await expect(upload.complete([])).rejects.toThrow();
});

it("expires an idle session whose streamed PATCH stored the object, and deletes it", async () => {
  const repo = uniqueRepo("expiry");
  const start = await api(`/v2/${repo}/blobs/uploads/`, { method: "POST" });
  const location = start.headers.get("Location")!;
  const id = location.split("/").at(-1)!;
  expect((await api(location, { method: "PATCH", body: randomBytes(100_000) })).status).toBe(202);
  const stub = env.REPOSITORY.getByName(repo);
  const key = await runInDurableObject(stub, (_obj: RepositoryObject, state) => {
    state.storage.sql.exec("UPDATE uploads SET expires_at = 0 WHERE id = ?", id);
    return state.storage.sql
      .exec<{ r2_key: string }>("SELECT r2_key FROM uploads WHERE id = ?", id)
      .one().r2_key;
  });
  expect(await env.BLOBS.head(key)).not.toBeNull();
  expect(await runDurableObjectAlarm(stub)).toBe(true);
  expect((await api(location)).status).toBe(404);
  expect(await env.BLOBS.head(key)).toBeNull();
});
