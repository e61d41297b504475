// Tags: end-8a (GET tags/list) and end-8b (with n and last), RFC 8288 Link for the next page.
import { Hono } from "hono";
import { RegistryError } from "../../../schema/oci/errors.ts";
import type { AppEnv } from "../env.ts";
import { nextLink } from "../http/pagination.ts";
import { pageSize, repositoryName } from "../http/params.ts";

/** Without `n`, a page holds this many tags and links to the next (the spec leaves room). */
export const DEFAULT_TAG_PAGE = 1000;
export const MAX_TAG_PAGE = 10_000;

export const tags = new Hono<AppEnv>();

tags.get("/:name{.+}/tags/list", async (c) => {
  const name = repositoryName(c.req.param("name"));
  await c.var.auth.require(name, "pull");
  const n = pageSize(c.req.query("n"), DEFAULT_TAG_PAGE, MAX_TAG_PAGE);
  const last = c.req.query("last") ?? null;
  const page = await c.var.services.objects.repository(name).listTags(n, last);
  if (!page.exists) throw new RegistryError("NAME_UNKNOWN", undefined, { detail: { name } });
  const headers: Record<string, string> = {};
  const lastTag = page.tags.at(-1);
  if (page.more && lastTag !== undefined)
    headers.Link = nextLink(`/v2/${name}/tags/list`, n, lastTag);
  return c.json({ name, tags: page.tags }, 200, headers);
});
