// Catalog: GET /v2/_catalog with n/last pagination and an RFC 8288 Link (distribution's extension).
// Other tests write repositories too, so each test works under its own name prefix and reads the
// catalog from just before it (`last=<prefix>` sorts before every `<prefix>/...`).
import { describe, expect, it } from "vitest";
import {
  api,
  expectError,
  pathOf,
  pushBlob,
  pushImage,
  randomBytes,
  startUpload,
} from "./helpers.ts";

interface Catalog {
  repositories: string[];
}

function uniquePrefix(): string {
  return `cat${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
}

async function catalog(path: string): Promise<{ res: Response; body: Catalog }> {
  const res = await api(path);
  expect(res.status).toBe(200);
  expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
  return { res, body: (await res.json()) as Catalog };
}

const mine = (prefix: string, names: string[]) => names.filter((n) => n.startsWith(`${prefix}/`));

/** Three repositories written three ways: a blob push, a manifest push, a cross-repository mount. */
async function threeRepositories(prefix: string): Promise<string[]> {
  const names = [`${prefix}/a`, `${prefix}/b/deep`, `${prefix}/c`];
  const digest = await pushBlob(names[0]!, randomBytes(32));
  await pushImage(names[1]!, { tag: "v1" });
  const mount = await api(`/v2/${names[2]}/blobs/uploads/?mount=${digest}&from=${names[0]}`, {
    method: "POST",
  });
  expect(mount.status).toBe(201);
  return names;
}

describe("GET /v2/_catalog", () => {
  it("lists every repository that received a write, sorted", async () => {
    const prefix = uniquePrefix();
    const names = await threeRepositories(prefix);
    const { body } = await catalog(`/v2/_catalog?last=${prefix}`);
    expect(body.repositories.slice(0, 3)).toEqual(names);
    const all = await catalog("/v2/_catalog?n=10000");
    expect(mine(prefix, all.body.repositories)).toEqual(names);
  });

  it("does not list a repository where only an upload session was opened", async () => {
    const prefix = uniquePrefix();
    await startUpload(`${prefix}/idle`);
    const { body } = await catalog(`/v2/_catalog?last=${prefix}`);
    expect(mine(prefix, body.repositories)).toEqual([]);
  });

  it("n limits the page; Link points at the next page, which follows on", async () => {
    const prefix = uniquePrefix();
    const names = await threeRepositories(prefix);
    const first = await catalog(`/v2/_catalog?n=2&last=${prefix}`);
    expect(first.body.repositories).toEqual(names.slice(0, 2));
    const link = first.res.headers.get("Link");
    expect(link).not.toBeNull();
    const match = /^<([^>]+)>;\s*rel="next"$/.exec(link!);
    expect(match, link!).not.toBeNull();
    const next = new URL(match![1]!, "http://registry.test");
    expect(next.pathname).toBe("/v2/_catalog");
    expect(next.searchParams.get("n")).toBe("2");
    expect(next.searchParams.get("last")).toBe(names[1]);
    const second = await catalog(pathOf(match![1]!));
    expect(second.body.repositories[0]).toBe(names[2]);
  });

  it("n=0 returns an empty list", async () => {
    const { body } = await catalog("/v2/_catalog?n=0");
    expect(body.repositories).toEqual([]);
  });

  it.each(["-1", "ten", "2.5"])("n=%s: 400", async (n) => {
    await expectError(await api(`/v2/_catalog?n=${n}`), 400, [
      "PAGINATION_NUMBER_INVALID",
      "UNSUPPORTED",
    ]);
  });
});
