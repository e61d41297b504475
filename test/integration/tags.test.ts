// Tags: end-8a (GET tags/list) and end-8b (n/last pagination with an RFC 8288 Link header).
import { describe, expect, it } from "vitest";
import {
  api,
  expectError,
  pathOf,
  pushBlob,
  pushImage,
  putManifest,
  randomBytes,
  uniqueRepo,
} from "./helpers.ts";

interface TagList {
  name: string;
  tags: string[];
}

/** One image tagged with every name in `tags`, pushed in the order given. */
async function tagged(tags: string[]): Promise<string> {
  const repo = uniqueRepo("tags");
  const image = await pushImage(repo);
  for (const tag of tags) expect((await putManifest(repo, tag, image.manifest)).status).toBe(201);
  return repo;
}

async function list(path: string): Promise<{ res: Response; body: TagList }> {
  const res = await api(path);
  expect(res.status).toBe(200);
  expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
  return { res, body: (await res.json()) as TagList };
}

describe("GET /v2/<name>/tags/list (end-8a)", () => {
  it("lists every tag, sorted, with the repository name", async () => {
    const names = ["v2", "latest", "1.0", "Z-upper", "a_b", "v10", "v1"];
    const repo = await tagged(names);
    const { res, body } = await list(`/v2/${repo}/tags/list`);
    expect(body.name).toBe(repo);
    expect(body.tags).toEqual([...names].sort());
    expect(res.headers.get("Link")).toBeNull();
  });

  it("an existing repository without tags answers 200 with an empty list", async () => {
    const repo = uniqueRepo("tags");
    await pushBlob(repo, randomBytes(16));
    const { body } = await list(`/v2/${repo}/tags/list`);
    expect(body.tags).toEqual([]);
  });

  it("an unknown repository: 404 NAME_UNKNOWN", async () => {
    await expectError(await api(`/v2/${uniqueRepo("nowhere")}/tags/list`), 404, "NAME_UNKNOWN");
  });

  it("an invalid name: 400 NAME_INVALID", async () => {
    await expectError(await api("/v2/Not/Valid/tags/list"), 400, "NAME_INVALID");
  });

  it("retagging moves the tag: listed once, pointing at the new manifest", async () => {
    const repo = uniqueRepo("tags");
    const first = await pushImage(repo, { tag: "latest" });
    const second = await pushImage(repo, { tag: "latest" });
    expect(second.digest).not.toBe(first.digest);
    const head = await api(`/v2/${repo}/manifests/latest`, { method: "HEAD" });
    expect(head.headers.get("Docker-Content-Digest")).toBe(second.digest);
    const { body } = await list(`/v2/${repo}/tags/list`);
    expect(body.tags).toEqual(["latest"]);
    // The old manifest is still there by digest.
    expect((await api(`/v2/${repo}/manifests/${first.digest}`)).status).toBe(200);
  });
});

describe("GET /v2/<name>/tags/list?n=&last= (end-8b)", () => {
  const names = ["a", "b", "c", "d", "e"];

  it("n limits the page and Link points at the next one", async () => {
    const repo = await tagged(names);
    const { res, body } = await list(`/v2/${repo}/tags/list?n=2`);
    expect(body.tags).toEqual(["a", "b"]);
    expect(res.headers.get("Link")).toBe(`</v2/${repo}/tags/list?n=2&last=b>; rel="next"`);
  });

  it("following Link walks every tag exactly once, and the last page has no Link", async () => {
    const repo = await tagged(names);
    const seen: string[] = [];
    let next: string | null = `/v2/${repo}/tags/list?n=2`;
    let pages = 0;
    while (next !== null) {
      const { res, body } = await list(next);
      expect(body.tags.length).toBeLessThanOrEqual(2);
      seen.push(...body.tags);
      const link = res.headers.get("Link");
      if (link === null) next = null;
      else {
        const match = /^<([^>]+)>;\s*rel="next"$/.exec(link);
        expect(match, link).not.toBeNull();
        next = pathOf(match![1]!);
      }
      pages++;
      expect(pages).toBeLessThan(10);
    }
    expect(seen).toEqual(names);
  });

  it("last starts after the given tag, whether or not it exists", async () => {
    const repo = await tagged(names);
    expect((await list(`/v2/${repo}/tags/list?last=b`)).body.tags).toEqual(["c", "d", "e"]);
    expect((await list(`/v2/${repo}/tags/list?n=2&last=bb`)).body.tags).toEqual(["c", "d"]);
    expect((await list(`/v2/${repo}/tags/list?last=e`)).body.tags).toEqual([]);
  });

  it("n equal to the remaining tags gives no Link", async () => {
    const repo = await tagged(names);
    const { res, body } = await list(`/v2/${repo}/tags/list?n=3&last=b`);
    expect(body.tags).toEqual(["c", "d", "e"]);
    expect(res.headers.get("Link")).toBeNull();
  });

  it("n larger than the list returns everything", async () => {
    const repo = await tagged(names);
    const { res, body } = await list(`/v2/${repo}/tags/list?n=100`);
    expect(body.tags).toEqual(names);
    expect(res.headers.get("Link")).toBeNull();
  });

  it("n=0 returns an empty list", async () => {
    const repo = await tagged(names);
    const { body } = await list(`/v2/${repo}/tags/list?n=0`);
    expect(body.tags).toEqual([]);
  });

  it.each(["-1", "abc", "1.5", "0x10"])("n=%s: 400", async (n) => {
    const repo = await tagged(names);
    const res = await api(`/v2/${repo}/tags/list?n=${n}`);
    await expectError(res, 400, ["PAGINATION_NUMBER_INVALID", "UNSUPPORTED"]);
  });

  it("a deleted tag disappears from the list", async () => {
    const repo = await tagged(names);
    expect((await api(`/v2/${repo}/manifests/c`, { method: "DELETE" })).status).toBe(202);
    expect((await list(`/v2/${repo}/tags/list`)).body.tags).toEqual(["a", "b", "d", "e"]);
  });
});
