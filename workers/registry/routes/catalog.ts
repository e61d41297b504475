// Catalog: GET /v2/_catalog with n/last pagination (distribution's extension, widely used).
import { Hono } from "hono";
import type { AppEnv } from "../env.ts";
import { nextLink } from "../http/pagination.ts";
import { pageSize } from "../http/params.ts";

export const catalog = new Hono<AppEnv>();

catalog.get("/_catalog", async (c) => {
  c.var.auth.requireCatalog();
  const n = pageSize(c.req.query("n"), 1000, 10_000);
  const last = c.req.query("last") ?? null;
  const page = await c.var.services.catalog.list(n, last);
  const headers: Record<string, string> = {};
  const lastName = page.names.at(-1);
  if (page.more && lastName !== undefined) headers.Link = nextLink("/v2/_catalog", n, lastName);
  return c.json({ repositories: page.names }, 200, headers);
});
