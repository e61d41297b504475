// Personal app tokens: POST /user/tokens (the secret is in this response and nowhere else),
// GET /user/tokens (no secrets), DELETE /user/tokens/:id (revoke).
import { Hono } from "hono";
import { createAppToken, listAppTokens, revokeAppToken } from "../services/identity/app-tokens.ts";
import { checkLabel } from "../services/identity/names.ts";
import {
  type ApiEnv,
  identityContext,
  optionalInteger,
  pageBody,
  pageOf,
  readBody,
  requiredString,
} from "./context.ts";

export const tokensApi = new Hono<ApiEnv>();

const MAX_EXPIRY_DAYS = 3650;

tokensApi.post("/user/tokens", async (c) => {
  const body = await readBody(c, ["name", "expiresInDays"]);
  const expiresInDays = optionalInteger(body, "expiresInDays", 1, MAX_EXPIRY_DAYS);
  const token = await createAppToken(identityContext(c), {
    name: checkLabel("name", requiredString(body, "name"), 100),
    ...(expiresInDays !== undefined ? { expiresInDays } : {}),
  });
  // The secret must not linger in any cache between here and the client.
  return c.json(token, 201, { "Cache-Control": "no-store" });
});

tokensApi.get("/user/tokens", async (c) =>
  c.json(pageBody("tokens", await listAppTokens(identityContext(c), pageOf(c, 2)))),
);

tokensApi.delete("/user/tokens/:id", async (c) => {
  await revokeAppToken(identityContext(c), c.req.param("id"));
  return c.body(null, 204);
});
