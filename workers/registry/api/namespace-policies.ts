// Tag lifecycle policy of a namespace (a user's or an organization's), for all its repositories:
//   GET    /namespaces/:ns/tag-retention              → {namespace, retention, retentionSeconds, isDefault}
//   PUT    /namespaces/:ns/tag-retention              {retention: "14d"} (0s allowed; at most 365d)
//   GET    /namespaces/:ns/immutability-rules         → {rules}
//   POST   /namespaces/:ns/immutability-rules         {tagPattern} → 201 rule
//   DELETE /namespaces/:ns/immutability-rules/:id
//   GET    /namespaces/:ns/prune-policies             → {policies}
//   POST   /namespaces/:ns/prune-policies             {keepCount | olderThan, tagPattern?} → 201
//   DELETE /namespaces/:ns/prune-policies/:id
// Reading takes a member of the namespace, changing an administrator (others: 404 if they cannot
// see the namespace, 403 if they can). Tag patterns are globs (schema/lifecycle.ts).
import { Hono } from "hono";
import {
  addImmutabilityRule,
  addPrunePolicy,
  deleteImmutabilityRule,
  deletePrunePolicy,
  getRetention,
  listImmutabilityRules,
  listPrunePolicies,
  setRetention,
} from "../services/lifecycle-policy.ts";
import { type ApiEnv, identityContext, readBody, requiredString } from "./context.ts";
import { prunePolicyOf, retentionOf, tagPatternOf } from "./lifecycle-input.ts";

export const namespacePoliciesApi = new Hono<ApiEnv>();

namespacePoliciesApi.get("/namespaces/:ns/tag-retention", async (c) =>
  c.json(await getRetention(identityContext(c), c.req.param("ns"))),
);

namespacePoliciesApi.put("/namespaces/:ns/tag-retention", async (c) => {
  const retentionMs = retentionOf(await readBody(c, ["retention"]));
  return c.json(
    await setRetention(identityContext(c), c.var.services.objects, c.req.param("ns"), retentionMs),
  );
});

namespacePoliciesApi.get("/namespaces/:ns/immutability-rules", async (c) => {
  const rules = await listImmutabilityRules(identityContext(c), { namespace: c.req.param("ns") });
  return c.json({ rules });
});

namespacePoliciesApi.post("/namespaces/:ns/immutability-rules", async (c) => {
  const tagPattern = tagPatternOf(requiredString(await readBody(c, ["tagPattern"]), "tagPattern"));
  const scope = { namespace: c.req.param("ns") };
  return c.json(
    await addImmutabilityRule(identityContext(c), c.var.services.objects, scope, tagPattern),
    201,
  );
});

namespacePoliciesApi.delete("/namespaces/:ns/immutability-rules/:id", async (c) => {
  const scope = { namespace: c.req.param("ns") };
  await deleteImmutabilityRule(
    identityContext(c),
    c.var.services.objects,
    scope,
    c.req.param("id"),
  );
  return c.body(null, 204);
});

namespacePoliciesApi.get("/namespaces/:ns/prune-policies", async (c) => {
  const policies = await listPrunePolicies(identityContext(c), { namespace: c.req.param("ns") });
  return c.json({ policies });
});

namespacePoliciesApi.post("/namespaces/:ns/prune-policies", async (c) => {
  const input = prunePolicyOf(await readBody(c, ["keepCount", "olderThan", "tagPattern"]));
  const scope = { namespace: c.req.param("ns") };
  return c.json(
    await addPrunePolicy(identityContext(c), c.var.services.objects, scope, input),
    201,
  );
});

namespacePoliciesApi.delete("/namespaces/:ns/prune-policies/:id", async (c) => {
  const scope = { namespace: c.req.param("ns") };
  await deletePrunePolicy(identityContext(c), c.var.services.objects, scope, c.req.param("id"));
  return c.body(null, 204);
});
