// The hono application: middleware, the OCI routes, and the single error renderer.
import { Hono } from "hono";
import type { AppEnv } from "./env.ts";

export const app = new Hono<AppEnv>();

app.get("/v2/", (c) => c.json({}));
