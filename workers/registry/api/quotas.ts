// Namespace storage quotas:
//   GET    /namespaces/:ns/quota   → {usageBytes, limitBytes, warningPercent, blobs}
//                                   (members and admins of the namespace, superusers; else 404)
//   PUT    /namespaces/:ns/quota   {limitBytes, warningPercent?} (superusers only)
//   DELETE /namespaces/:ns/quota   removes the limit (superusers only)
import { Hono } from "hono";
import { invalid } from "../services/identity/errors.ts";
import { describeQuota, removeQuota, setQuota } from "../services/quota-settings.ts";
import { type ApiEnv, identityContext, optionalInteger, readBody } from "./context.ts";

export const quotasApi = new Hono<ApiEnv>();

quotasApi.get("/namespaces/:ns/quota", async (c) =>
  c.json(await describeQuota(identityContext(c), c.var.services.objects, c.req.param("ns"))),
);

quotasApi.put("/namespaces/:ns/quota", async (c) => {
  const body = await readBody(c, ["limitBytes", "warningPercent"]);
  const limitBytes = optionalInteger(body, "limitBytes", 0, Number.MAX_SAFE_INTEGER);
  if (limitBytes === undefined) throw invalid("limitBytes is required (bytes, an integer ≥ 0)");
  const warningPercent = optionalInteger(body, "warningPercent", 1, 100);
  const view = await setQuota(identityContext(c), c.var.services.objects, c.req.param("ns"), {
    limitBytes,
    ...(warningPercent !== undefined ? { warningPercent } : {}),
  });
  return c.json(view);
});

quotasApi.delete("/namespaces/:ns/quota", async (c) => {
  await removeQuota(identityContext(c), c.var.services.objects, c.req.param("ns"));
  return c.body(null, 204);
});
