// Blob uploads: end-4a (POST session), end-4b (POST ?digest=), end-5 (PATCH), end-6 (PUT ?digest=),
// end-11 (POST ?mount=&from=), end-13 (GET status), end-14 (DELETE cancel).
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { blobRefShardName } from "../../durable-objects/blob-ref-object.ts";
import type { Digest } from "../../schema/oci/reference.ts";
import {
  api,
  expectError,
  expectHeadError,
  expectSameBytes,
  pathOf,
  pullBlob,
  pushBlob,
  randomBytes,
  sha256,
  sha512,
  startUpload,
  uniqueRepo,
  withDigest,
} from "./helpers.ts";

const MiB = 1024 * 1024;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const octets = { "Content-Type": "application/octet-stream" };

function patch(location: string, bytes: Uint8Array, range?: [number, number]): Promise<Response> {
  const headers: Record<string, string> = { ...octets };
  if (range) headers["Content-Range"] = `${range[0]}-${range[1]}`;
  return api(location, { method: "PATCH", body: bytes, headers });
}

/** A body without a length, delivered in uneven pieces, as docker streams a layer. */
function streamOf(bytes: Uint8Array, piece = 777 * 1024 + 13): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= bytes.byteLength) {
        controller.close();
        return;
      }
      const end = Math.min(at + piece, bytes.byteLength);
      controller.enqueue(bytes.slice(at, end));
      at = end;
    },
  });
}

async function blobRecord(digest: string) {
  return env.BLOB_REF.getByName(blobRefShardName(digest)).get(digest as Digest);
}

/** Where a session's bytes go in R2 (its object key and multipart upload), read from its object. */
async function sessionStorage(
  repo: string,
  id: string,
): Promise<{ key: string; multipartId: string | null }> {
  return runInDurableObject(env.REPOSITORY.getByName(repo), (_object, state) => {
    const row = state.storage.sql
      .exec<{ r2_key: string; multipart_id: string | null }>(
        "SELECT r2_key, multipart_id FROM uploads WHERE id = ?",
        id,
      )
      .one();
    return { key: row.r2_key, multipartId: row.multipart_id };
  });
}

async function expectBlobAbsent(repo: string, digest: string): Promise<void> {
  await expectHeadError(await api(`/v2/${repo}/blobs/${digest}`, { method: "HEAD" }), 404);
}

describe("POST /v2/<name>/blobs/uploads/ (end-4a)", () => {
  it("opens a session: 202, Location, Range 0-0, Docker-Upload-UUID", async () => {
    const repo = uniqueRepo("up");
    const res = await api(`/v2/${repo}/blobs/uploads/`, {
      method: "POST",
      headers: { "Content-Length": "0" },
    });
    expect(res.status).toBe(202);
    const id = res.headers.get("Docker-Upload-UUID");
    expect(id).toMatch(UUID);
    expect(pathOf(res.headers.get("Location"))).toBe(`/v2/${repo}/blobs/uploads/${id}`);
    expect(res.headers.get("Range")).toBe("0-0");
    expect(await res.text()).toBe("");
  });

  it("gives every session its own id", async () => {
    const repo = uniqueRepo("up");
    const a = await startUpload(repo);
    const b = await startUpload(repo);
    expect(a.id).not.toBe(b.id);
  });
});

describe("GET /v2/<name>/blobs/uploads/<id> (end-13)", () => {
  it("reports progress with 204, Location and Range", async () => {
    const repo = uniqueRepo("up");
    const { location, id } = await startUpload(repo);
    const fresh = await api(location);
    expect(fresh.status).toBe(204);
    expect(fresh.headers.get("Range")).toBe("0-0");
    expect(pathOf(fresh.headers.get("Location"))).toBe(`/v2/${repo}/blobs/uploads/${id}`);
    expect(fresh.headers.get("Docker-Upload-UUID")).toBe(id);

    expect((await patch(location, randomBytes(1000))).status).toBe(202);
    const after = await api(location);
    expect(after.status).toBe(204);
    expect(after.headers.get("Range")).toBe("0-999");
  });

  it("answers 404 BLOB_UPLOAD_UNKNOWN for an unknown id", async () => {
    const repo = uniqueRepo("up");
    await expectError(
      await api(`/v2/${repo}/blobs/uploads/${crypto.randomUUID()}`),
      404,
      "BLOB_UPLOAD_UNKNOWN",
    );
  });

  it("does not show a session through another repository (sessions belong to one repository)", async () => {
    const repo = uniqueRepo("up");
    const other = uniqueRepo("up");
    const { id } = await startUpload(repo);
    await expectError(await api(`/v2/${other}/blobs/uploads/${id}`), 404, "BLOB_UPLOAD_UNKNOWN");
    const bytes = randomBytes(10);
    await expectError(
      await api(`/v2/${other}/blobs/uploads/${id}?digest=${await sha256(bytes)}`, {
        method: "PUT",
        body: bytes,
      }),
      404,
      "BLOB_UPLOAD_UNKNOWN",
    );
  });
});

describe("unknown and malformed upload ids", () => {
  it.each(["GET", "PATCH", "PUT", "DELETE"])(
    "%s with an unknown id is 404 BLOB_UPLOAD_UNKNOWN",
    async (method) => {
      const repo = uniqueRepo("up");
      const digest = await sha256("x");
      const path = `/v2/${repo}/blobs/uploads/${crypto.randomUUID()}?digest=${digest}`;
      const body = method === "PATCH" || method === "PUT" ? new TextEncoder().encode("x") : null;
      await expectError(await api(path, { method, body }), 404, "BLOB_UPLOAD_UNKNOWN");
    },
  );

  it.each([
    "not-a-uuid",
    "00000000-0000-0000-0000-00000000000G",
    "%2e%2e%2fsecret",
    "X".repeat(300),
  ])("refuses the id %s with a JSON 4xx", async (id) => {
    const repo = uniqueRepo("up");
    for (const method of ["GET", "PATCH", "PUT", "DELETE"]) {
      const res = await api(`/v2/${repo}/blobs/uploads/${id}?digest=${await sha256("")}`, {
        method,
      });
      expect([400, 404]).toContain(res.status);
      await expectError(res, res.status, ["BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"]);
    }
  });
});

describe("PATCH (end-5) and PUT ?digest= (end-6)", () => {
  it("takes a streamed PATCH without Content-Range, then PUT without a body", async () => {
    const repo = uniqueRepo("up");
    const bytes = randomBytes(300 * 1024);
    const { location, id } = await startUpload(repo);
    const res = await api(location, { method: "PATCH", body: streamOf(bytes), headers: octets });
    expect(res.status).toBe(202);
    expect(res.headers.get("Range")).toBe(`0-${bytes.byteLength - 1}`);
    expect(res.headers.get("Docker-Upload-UUID")).toBe(id);
    const next = pathOf(res.headers.get("Location"));

    const digest = await sha256(bytes);
    const put = await api(withDigest(next, digest), { method: "PUT" });
    expect(put.status).toBe(201);
    expect(pathOf(put.headers.get("Location"))).toBe(`/v2/${repo}/blobs/${digest}`);
    expect(put.headers.get("Docker-Content-Digest")).toBe(digest);
    expectSameBytes(await pullBlob(repo, digest), bytes);
    // The session is closed.
    await expectError(await api(location), 404, "BLOB_UPLOAD_UNKNOWN");
  });

  it("takes Content-Range chunks in order and a final chunk on PUT", async () => {
    const repo = uniqueRepo("up");
    const bytes = randomBytes(3000);
    const { location } = await startUpload(repo);
    let next = location;
    for (const [start, end] of [
      [0, 999],
      [1000, 1999],
    ] as const) {
      const res = await patch(next, bytes.slice(start, end + 1), [start, end]);
      expect(res.status).toBe(202);
      expect(res.headers.get("Range")).toBe(`0-${end}`);
      next = pathOf(res.headers.get("Location"));
    }
    const digest = await sha256(bytes);
    const put = await api(withDigest(next, digest), {
      method: "PUT",
      body: bytes.slice(2000),
      headers: { ...octets, "Content-Range": "2000-2999" },
    });
    expect(put.status).toBe(201);
    expect(put.headers.get("Docker-Content-Digest")).toBe(digest);
    expectSameBytes(await pullBlob(repo, digest), bytes);
  });

  it("takes a final chunk on PUT without Content-Range", async () => {
    const repo = uniqueRepo("up");
    const bytes = randomBytes(3000);
    const { location } = await startUpload(repo);
    expect((await patch(location, bytes.slice(0, 1000))).status).toBe(202);
    const digest = await sha256(bytes);
    const put = await api(withDigest(location, digest), {
      method: "PUT",
      body: bytes.slice(1000),
      headers: octets,
    });
    expect(put.status).toBe(201);
    expectSameBytes(await pullBlob(repo, digest), bytes);
    // The session is closed: finishing it again finds nothing.
    await expectError(
      await api(withDigest(location, digest), { method: "PUT" }),
      404,
      "BLOB_UPLOAD_UNKNOWN",
    );
  });

  it("takes the whole blob on POST then PUT (monolithic in two steps)", async () => {
    const repo = uniqueRepo("up");
    const bytes = randomBytes(5000);
    const digest = await sha256(bytes);
    const { location } = await startUpload(repo);
    const put = await api(withDigest(location, digest), {
      method: "PUT",
      body: bytes,
      headers: octets,
    });
    expect(put.status).toBe(201);
    expectSameBytes(await pullBlob(repo, digest), bytes);
  });

  it("refuses an out-of-order chunk with 416 and the Range the registry has", async () => {
    const repo = uniqueRepo("up");
    const bytes = randomBytes(2000);
    const { location } = await startUpload(repo);
    expect((await patch(location, bytes.slice(0, 1000), [0, 999])).status).toBe(202);

    // A gap (skips byte 1000) and a rewind (starts again at 0) are both out of order.
    for (const [start, end] of [
      [1001, 1999],
      [0, 999],
      [500, 1499],
    ] as const) {
      const res = await patch(location, bytes.slice(start, end + 1), [start, end]);
      expect(res.headers.get("Range")).toBe("0-999");
      await expectError(res, 416, ["RANGE_INVALID", "BLOB_UPLOAD_INVALID"]);
    }
    // Nothing was appended: the status still says 0-999, and the right chunk still fits.
    expect((await api(location)).headers.get("Range")).toBe("0-999");
    const ok = await patch(location, bytes.slice(1000), [1000, 1999]);
    expect(ok.status).toBe(202);
    expect(ok.headers.get("Range")).toBe("0-1999");
    const digest = await sha256(bytes);
    expect((await api(withDigest(location, digest), { method: "PUT" })).status).toBe(201);
    expectSameBytes(await pullBlob(repo, digest), bytes);
  });

  it("refuses a first chunk that does not start at 0 with 416", async () => {
    const repo = uniqueRepo("up");
    const { location } = await startUpload(repo);
    const res = await patch(location, randomBytes(10), [5, 14]);
    expect(res.headers.get("Range")).toBe("0-0");
    await expectError(res, 416, ["RANGE_INVALID", "BLOB_UPLOAD_INVALID"]);
  });

  it("refuses a chunk whose length differs from its Content-Range, keeping the session as it was", async () => {
    const repo = uniqueRepo("up");
    const { location } = await startUpload(repo);
    expect((await patch(location, randomBytes(100), [0, 99])).status).toBe(202);
    const res = await patch(location, randomBytes(50), [100, 199]);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    await expectError(res, res.status, ["RANGE_INVALID", "BLOB_UPLOAD_INVALID", "SIZE_INVALID"]);
    // A Range on the refusal must say what the registry has, not count the refused bytes.
    const range = res.headers.get("Range");
    if (range !== null) expect(range).toBe("0-99");
    expect((await api(location)).headers.get("Range")).toBe("0-99");
  });

  it("a refused chunk that had already filled a multipart part leaves the session usable", async () => {
    const repo = uniqueRepo("up");
    const bytes = randomBytes(9 * MiB);
    const { location } = await startUpload(repo);
    // Claims 9 MiB but sends 10: the first 8 MiB part reaches R2 before the length is known.
    const wrong = await patch(location, randomBytes(10 * MiB), [0, 9 * MiB - 1]);
    expect(wrong.status).toBeGreaterThanOrEqual(400);
    expect(wrong.status).toBeLessThan(500);
    expect((await api(location)).headers.get("Range")).toBe("0-0");
    const ok = await patch(location, bytes, [0, 9 * MiB - 1]);
    expect(ok.status).toBe(202);
    const digest = await sha256(bytes);
    expect((await api(withDigest(location, digest), { method: "PUT" })).status).toBe(201);
    expectSameBytes(await pullBlob(repo, digest), bytes);
  });

  it("many small chunks of odd sizes (the digest state is saved and resumed between them)", async () => {
    const repo = uniqueRepo("up");
    const sizes = Array.from({ length: 25 }, (_, i) => 1 + ((i * 997) % 300));
    const bytes = randomBytes(sizes.reduce((a, b) => a + b, 0));
    for (const finalDigest of [sha256, sha512]) {
      const { location } = await startUpload(repo);
      let at = 0;
      for (const size of sizes) {
        const res = await patch(location, bytes.slice(at, at + size), [at, at + size - 1]);
        expect(res.status).toBe(202);
        at += size;
      }
      const digest = await finalDigest(bytes);
      expect((await api(withDigest(location, digest), { method: "PUT" })).status).toBe(201);
      expectSameBytes(await pullBlob(repo, digest), bytes);
    }
  });

  it("an empty blob through a session", async () => {
    const repo = uniqueRepo("up");
    const { location } = await startUpload(repo);
    const digest = await sha256(new Uint8Array(0));
    expect((await api(withDigest(location, digest), { method: "PUT" })).status).toBe(201);
    expect((await api(`/v2/${repo}/blobs/${digest}`, { method: "HEAD" })).status).toBe(200);
  });

  it("concurrent PATCHes to one session never lose or duplicate bytes", async () => {
    const repo = uniqueRepo("up");
    const { location } = await startUpload(repo);
    const chunks = [randomBytes(MiB), randomBytes(MiB), randomBytes(MiB)];
    const results = await Promise.all(chunks.map((chunk) => patch(location, chunk)));
    let accepted = 0;
    for (const res of results) {
      if (res.status === 202) accepted += MiB;
      else {
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(res.status).toBeLessThan(500);
        await res.text();
      }
    }
    expect(accepted).toBeGreaterThan(0);
    expect((await api(location)).headers.get("Range")).toBe(`0-${accepted - 1}`);
  });

  it("refuses a malformed Content-Range", async () => {
    const repo = uniqueRepo("up");
    const { location } = await startUpload(repo);
    const res = await api(location, {
      method: "PATCH",
      body: randomBytes(10),
      headers: { "Content-Range": "bytes=ten-twenty" },
    });
    expect([400, 416]).toContain(res.status);
    await expectError(res, res.status, ["RANGE_INVALID", "BLOB_UPLOAD_INVALID"]);
  });

  it("refuses PUT without a digest or with a malformed one (400 DIGEST_INVALID)", async () => {
    const repo = uniqueRepo("up");
    const { location } = await startUpload(repo);
    await expectError(await api(location, { method: "PUT" }), 400, "DIGEST_INVALID");
    await expectError(
      await api(`${location}?digest=sha256:1234`, { method: "PUT" }),
      400,
      "DIGEST_INVALID",
    );
    // The session survives a request it refused before reading anything.
    expect((await api(location)).status).toBe(204);
  });
});

describe("a wrong digest", () => {
  it("on PUT: 400 DIGEST_INVALID, nothing kept, session gone", async () => {
    const repo = uniqueRepo("up");
    const bytes = randomBytes(4096);
    const claimed = await sha256(randomBytes(16));
    const { location } = await startUpload(repo);
    expect((await patch(location, bytes)).status).toBe(202);
    await expectError(
      await api(withDigest(location, claimed), { method: "PUT" }),
      400,
      "DIGEST_INVALID",
    );
    await expectBlobAbsent(repo, claimed);
    await expectBlobAbsent(repo, await sha256(bytes));
    expect(await blobRecord(claimed)).toBeNull();
    expect(await blobRecord(await sha256(bytes))).toBeNull();
    await expectError(await api(location), 404, "BLOB_UPLOAD_UNKNOWN");
  });

  it("on monolithic POST: 400 DIGEST_INVALID and nothing kept", async () => {
    const repo = uniqueRepo("up");
    const bytes = randomBytes(2048);
    const claimed = await sha256(randomBytes(16));
    await expectError(
      await api(`/v2/${repo}/blobs/uploads/?digest=${claimed}`, {
        method: "POST",
        body: bytes,
        headers: octets,
      }),
      400,
      "DIGEST_INVALID",
    );
    await expectBlobAbsent(repo, claimed);
    await expectBlobAbsent(repo, await sha256(bytes));
    expect(await blobRecord(claimed)).toBeNull();
  });

  it("after a streamed PATCH stored the object: 400 DIGEST_INVALID and the object is deleted", async () => {
    const repo = uniqueRepo("up");
    const bytes = randomBytes(9 * MiB);
    const claimed = await sha256(randomBytes(16));
    const { location, id } = await startUpload(repo);
    expect((await patch(location, bytes)).status).toBe(202);
    const { key } = await sessionStorage(repo, id);
    // A streamed PATCH (no Content-Range) stores the object whole, digested natively.
    expect(await env.BLOBS.head(key)).not.toBeNull();
    await expectError(
      await api(withDigest(location, claimed), { method: "PUT" }),
      400,
      "DIGEST_INVALID",
    );
    await expectBlobAbsent(repo, claimed);
    expect(await blobRecord(await sha256(bytes))).toBeNull();
    await expectError(await api(location), 404, "BLOB_UPLOAD_UNKNOWN");
    expect(await env.BLOBS.head(key)).toBeNull();
  });

  it("after multipart parts were written: 400 DIGEST_INVALID and nothing kept", async () => {
    const repo = uniqueRepo("up");
    const bytes = randomBytes(9 * MiB);
    const claimed = await sha256(randomBytes(16));
    const { location, id } = await startUpload(repo);
    const chunk = await api(location, {
      method: "PATCH",
      body: bytes,
      headers: {
        "Content-Range": `0-${bytes.byteLength - 1}`,
        "Content-Type": "application/octet-stream",
      },
    });
    expect(chunk.status).toBe(202);
    const { key, multipartId } = await sessionStorage(repo, id);
    expect(multipartId).toBeTruthy();
    await expectError(
      await api(withDigest(location, claimed), { method: "PUT" }),
      400,
      "DIGEST_INVALID",
    );
    await expectBlobAbsent(repo, claimed);
    expect(await blobRecord(claimed)).toBeNull();
    expect(await blobRecord(await sha256(bytes))).toBeNull();
    await expectError(await api(location), 404, "BLOB_UPLOAD_UNKNOWN");
    // The parts were aborted and no object was made.
    expect(await env.BLOBS.head(key)).toBeNull();
    await expect(env.BLOBS.resumeMultipartUpload(key, multipartId!).complete([])).rejects.toThrow();
  });

  it("a sha512 digest that does not match a chunked session: 400 and nothing kept", async () => {
    const repo = uniqueRepo("up");
    const bytes = randomBytes(4096);
    const claimed = await sha512(randomBytes(16));
    const { location, id } = await startUpload(repo);
    expect((await patch(location, bytes)).status).toBe(202);
    const { key } = await sessionStorage(repo, id);
    await expectError(
      await api(withDigest(location, claimed), { method: "PUT" }),
      400,
      "DIGEST_INVALID",
    );
    await expectBlobAbsent(repo, claimed);
    expect(await blobRecord(claimed)).toBeNull();
    expect(await env.BLOBS.head(key)).toBeNull();
    await expectError(await api(location), 404, "BLOB_UPLOAD_UNKNOWN");
  });
});

describe("DELETE /v2/<name>/blobs/uploads/<id> (end-14)", () => {
  it("cancels a session: 204, then 404 BLOB_UPLOAD_UNKNOWN everywhere", async () => {
    const repo = uniqueRepo("up");
    const bytes = randomBytes(100);
    const { location } = await startUpload(repo);
    expect((await patch(location, bytes)).status).toBe(202);
    const res = await api(location, { method: "DELETE" });
    expect(res.status).toBe(204);
    await expectError(await api(location), 404, "BLOB_UPLOAD_UNKNOWN");
    await expectError(await patch(location, bytes), 404, "BLOB_UPLOAD_UNKNOWN");
    await expectError(
      await api(withDigest(location, await sha256(bytes)), { method: "PUT" }),
      404,
      "BLOB_UPLOAD_UNKNOWN",
    );
    await expectError(await api(location, { method: "DELETE" }), 404, "BLOB_UPLOAD_UNKNOWN");
    await expectBlobAbsent(repo, await sha256(bytes));
  });
});

describe("POST ?digest= (end-4b, monolithic)", () => {
  it("stores the blob in one request: 201, Location, Docker-Content-Digest", async () => {
    const repo = uniqueRepo("up");
    const bytes = randomBytes(10_000);
    const digest = await sha256(bytes);
    const res = await api(`/v2/${repo}/blobs/uploads/?digest=${digest}`, {
      method: "POST",
      body: bytes,
      headers: octets,
    });
    expect(res.status).toBe(201);
    expect(pathOf(res.headers.get("Location"))).toBe(`/v2/${repo}/blobs/${digest}`);
    expect(res.headers.get("Docker-Content-Digest")).toBe(digest);
    expectSameBytes(await pullBlob(repo, digest), bytes);
  });

  it("stores a sha512 blob", async () => {
    const repo = uniqueRepo("up");
    const bytes = randomBytes(20_000);
    const digest = await sha512(bytes);
    const res = await api(`/v2/${repo}/blobs/uploads/?digest=${digest}`, {
      method: "POST",
      body: bytes,
      headers: octets,
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("Docker-Content-Digest")).toBe(digest);
    const head = await api(`/v2/${repo}/blobs/${digest}`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("Content-Length")).toBe(String(bytes.byteLength));
    expectSameBytes(await pullBlob(repo, digest), bytes);
  });

  it("stores a sha512 blob uploaded in chunks", async () => {
    const repo = uniqueRepo("up");
    const bytes = randomBytes(10_000);
    const digest = await sha512(bytes);
    const { location } = await startUpload(repo);
    expect((await patch(location, bytes.slice(0, 4000), [0, 3999])).status).toBe(202);
    const put = await api(withDigest(location, digest), {
      method: "PUT",
      body: bytes.slice(4000),
      headers: { ...octets, "Content-Range": "4000-9999" },
    });
    expect(put.status).toBe(201);
    expectSameBytes(await pullBlob(repo, digest), bytes);
  });

  it("stores an empty blob", async () => {
    const repo = uniqueRepo("up");
    const digest = await sha256(new Uint8Array(0));
    const res = await api(`/v2/${repo}/blobs/uploads/?digest=${digest}`, {
      method: "POST",
      headers: { "Content-Length": "0" },
    });
    expect(res.status).toBe(201);
    const head = await api(`/v2/${repo}/blobs/${digest}`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("Content-Length")).toBe("0");
    expect((await pullBlob(repo, digest)).byteLength).toBe(0);
  });

  it("refuses a malformed digest with 400 DIGEST_INVALID", async () => {
    const repo = uniqueRepo("up");
    await expectError(
      await api(`/v2/${repo}/blobs/uploads/?digest=sha256:xyz`, { method: "POST", body: "x" }),
      400,
      "DIGEST_INVALID",
    );
  });

  it("refuses an unsupported algorithm with 400", async () => {
    const repo = uniqueRepo("up");
    const res = await api(`/v2/${repo}/blobs/uploads/?digest=md5:${"a".repeat(32)}`, {
      method: "POST",
      body: "x",
    });
    await expectError(res, 400, ["DIGEST_INVALID", "UNSUPPORTED"]);
  });

  it("refuses an invalid repository name with 400 NAME_INVALID", async () => {
    const bytes = randomBytes(10);
    await expectError(
      await api(`/v2/Bad_Name/blobs/uploads/?digest=${await sha256(bytes)}`, {
        method: "POST",
        body: bytes,
      }),
      400,
      "NAME_INVALID",
    );
    await expectError(
      await api("/v2/a..b/blobs/uploads/", { method: "POST" }),
      400,
      "NAME_INVALID",
    );
  });

  it("stores the same bytes pushed twice once (dedupe across repositories)", async () => {
    const a = uniqueRepo("up");
    const b = uniqueRepo("up");
    const bytes = randomBytes(4096);
    const digest = await pushBlob(a, bytes);
    await pushBlob(b, bytes);
    const record = await blobRecord(digest);
    expect(record?.copies).toHaveLength(1);
    expect(record?.size).toBe(bytes.byteLength);
    expectSameBytes(await pullBlob(a, digest), bytes);
    expectSameBytes(await pullBlob(b, digest), bytes);
  });
});

describe("large blobs cross the 8 MiB R2 part size (multipart uploads)", () => {
  it("a large blob pushed again (chunked) is stored once", async () => {
    const repo = uniqueRepo("big");
    const other = uniqueRepo("big");
    const bytes = randomBytes(9 * MiB);
    const digest = await pushBlob(repo, bytes);
    const { location } = await startUpload(other);
    expect((await patch(location, bytes)).status).toBe(202);
    expect((await api(withDigest(location, digest), { method: "PUT" })).status).toBe(201);
    expect((await blobRecord(digest))?.copies).toHaveLength(1);
    expectSameBytes(await pullBlob(other, digest), bytes);
  });

  it("three Content-Range chunks of 5 MiB, then PUT without a body", async () => {
    const repo = uniqueRepo("big");
    const chunk = 5 * MiB;
    const bytes = randomBytes(3 * chunk);
    const { location } = await startUpload(repo);
    let next = location;
    for (let i = 0; i < 3; i++) {
      const start = i * chunk;
      const end = start + chunk - 1;
      const res = await patch(next, bytes.slice(start, end + 1), [start, end]);
      expect(res.status).toBe(202);
      expect(res.headers.get("Range")).toBe(`0-${end}`);
      next = pathOf(res.headers.get("Location"));
    }
    const digest = await sha256(bytes);
    const put = await api(withDigest(next, digest), { method: "PUT" });
    expect(put.status).toBe(201);
    const head = await api(`/v2/${repo}/blobs/${digest}`, { method: "HEAD" });
    expect(head.headers.get("Content-Length")).toBe(String(bytes.byteLength));
    expectSameBytes(await pullBlob(repo, digest), bytes);
  });

  it("one 20 MiB PATCH streamed without a length", async () => {
    const repo = uniqueRepo("big");
    const bytes = randomBytes(20 * MiB);
    const { location } = await startUpload(repo);
    const res = await api(location, { method: "PATCH", body: streamOf(bytes), headers: octets });
    expect(res.status).toBe(202);
    expect(res.headers.get("Range")).toBe(`0-${bytes.byteLength - 1}`);
    const digest = await sha256(bytes);
    const put = await api(withDigest(pathOf(res.headers.get("Location")), digest), {
      method: "PUT",
    });
    expect(put.status).toBe(201);
    expectSameBytes(await pullBlob(repo, digest), bytes);
  });

  it("exactly one part (8 MiB), and two parts exactly (16 MiB), with no tail", async () => {
    const repo = uniqueRepo("big");
    for (const size of [8 * MiB, 16 * MiB]) {
      const bytes = randomBytes(size);
      const { location } = await startUpload(repo);
      expect((await patch(location, bytes)).status).toBe(202);
      const digest = await sha256(bytes);
      expect((await api(withDigest(location, digest), { method: "PUT" })).status).toBe(201);
      expectSameBytes(await pullBlob(repo, digest), bytes);
    }
  });

  it("a 9 MiB final chunk carried by the PUT itself", async () => {
    const repo = uniqueRepo("big");
    const bytes = randomBytes(12 * MiB);
    const { location } = await startUpload(repo);
    expect((await patch(location, bytes.slice(0, 3 * MiB), [0, 3 * MiB - 1])).status).toBe(202);
    const digest = await sha256(bytes);
    const put = await api(withDigest(location, digest), {
      method: "PUT",
      body: bytes.slice(3 * MiB),
      headers: { ...octets, "Content-Range": `${3 * MiB}-${12 * MiB - 1}` },
    });
    expect(put.status).toBe(201);
    expectSameBytes(await pullBlob(repo, digest), bytes);
  });
});

describe("POST ?mount=&from= (end-11)", () => {
  it("mounts a blob the source repository has: 201, Location, Docker-Content-Digest", async () => {
    const source = uniqueRepo("mnt");
    const target = uniqueRepo("mnt");
    const bytes = randomBytes(2048);
    const digest = await pushBlob(source, bytes);
    const res = await api(`/v2/${target}/blobs/uploads/?mount=${digest}&from=${source}`, {
      method: "POST",
      headers: { "Content-Length": "0" },
    });
    expect(res.status).toBe(201);
    expect(pathOf(res.headers.get("Location"))).toBe(`/v2/${target}/blobs/${digest}`);
    expect(res.headers.get("Docker-Content-Digest")).toBe(digest);
    expectSameBytes(await pullBlob(target, digest), bytes);
    // One copy in R2 for both repositories.
    expect((await blobRecord(digest))?.copies).toHaveLength(1);
  });

  it("falls back to a session (202) when the source does not have the blob", async () => {
    const source = uniqueRepo("mnt");
    const target = uniqueRepo("mnt");
    await pushBlob(source, randomBytes(10));
    const digest = await sha256(randomBytes(64));
    const res = await api(`/v2/${target}/blobs/uploads/?mount=${digest}&from=${source}`, {
      method: "POST",
    });
    expect(res.status).toBe(202);
    const id = res.headers.get("Docker-Upload-UUID");
    expect(pathOf(res.headers.get("Location"))).toBe(`/v2/${target}/blobs/uploads/${id}`);
    expect((await api(pathOf(res.headers.get("Location")))).status).toBe(204);
  });

  it("falls back to a session when the source repository does not exist", async () => {
    const target = uniqueRepo("mnt");
    const digest = await sha256(randomBytes(64));
    const res = await api(
      `/v2/${target}/blobs/uploads/?mount=${digest}&from=${uniqueRepo("nowhere")}`,
      { method: "POST" },
    );
    expect(res.status).toBe(202);
  });

  it("does not link a blob the source repository cannot read, even if another repository has it", async () => {
    const owner = uniqueRepo("mnt");
    const bystander = uniqueRepo("mnt");
    const thief = uniqueRepo("mnt");
    await pushBlob(bystander, randomBytes(10));
    const digest = await pushBlob(owner, randomBytes(4096));
    const res = await api(`/v2/${thief}/blobs/uploads/?mount=${digest}&from=${bystander}`, {
      method: "POST",
    });
    expect(res.status).toBe(202);
    await expectBlobAbsent(thief, digest);
    await expectError(await api(`/v2/${thief}/blobs/${digest}`), 404, "BLOB_UNKNOWN");
  });

  // The spec lets a registry fall back to a session when the mount arguments are unusable; a
  // 400 with the matching code is the other sound answer. Never a link, never a 5xx.
  it.each([
    ["a malformed digest", "sha256:nope", null, "DIGEST_INVALID"],
    ["an invalid source name", null, "Not/Valid", "NAME_INVALID"],
  ])("%s: a session (202) or 400", async (_label, mountArg, fromArg, code) => {
    const target = uniqueRepo("mnt");
    const source = uniqueRepo("mnt");
    const digest = await pushBlob(source, randomBytes(10));
    const res = await api(
      `/v2/${target}/blobs/uploads/?mount=${mountArg ?? digest}&from=${fromArg ?? source}`,
      { method: "POST" },
    );
    if (res.status === 202) expect(res.headers.get("Location")).toBeTruthy();
    else await expectError(res, 400, code!);
    await expectBlobAbsent(target, digest);
  });

  it("a mounted blob stays readable in the target after the source unlinks it", async () => {
    const source = uniqueRepo("mnt");
    const target = uniqueRepo("mnt");
    const bytes = randomBytes(1024);
    const digest = await pushBlob(source, bytes);
    const mount = await api(`/v2/${target}/blobs/uploads/?mount=${digest}&from=${source}`, {
      method: "POST",
    });
    expect(mount.status).toBe(201);
    expect((await api(`/v2/${source}/blobs/${digest}`, { method: "DELETE" })).status).toBe(202);
    await expectBlobAbsent(source, digest);
    expectSameBytes(await pullBlob(target, digest), bytes);
  });
});
