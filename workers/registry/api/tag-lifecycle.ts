// A repository's tag lifecycle: the time machine, tag expiry, and the repository's own
// immutability rules and prune policies (GET lists also show those inherited from its namespace).
// Answered through repository-subroutes.ts (`<name>` may contain slashes):
//   GET    /repositories/<name>/tag-history            ?tag=&limit=&cursor= newest first
//                                                      → {history, retention, next_cursor}
//   DELETE /repositories/<name>/tag-history/<id>       erase an ended entry for good
//   POST   /repositories/<name>/tags/<tag>/restore     {digest} → {tag, digest, previousDigest, moved}
//   PUT    /repositories/<name>/tags/<tag>/expiry      {expiresAt | expiresIn} → {tag, digest, expiresAt}
//   DELETE /repositories/<name>/tags/<tag>/expiry
//   GET    /repositories/<name>/immutability-rules     → {rules}
//   POST   /repositories/<name>/immutability-rules     {tagPattern} → 201 rule
//   DELETE /repositories/<name>/immutability-rules/<id>
//   GET    /repositories/<name>/prune-policies         → {policies}
//   POST   /repositories/<name>/prune-policies         {keepCount | olderThan, tagPattern?} → 201
//   DELETE /repositories/<name>/prune-policies/<id>
// Reading takes pull access; changing takes a repository administrator (404 for who cannot see
// the repository, 403 for who can). Restores and expiry changes also refuse read-only ones.

import { invalid } from "../services/identity/errors.ts";
import {
  addImmutabilityRule,
  addPrunePolicy,
  deleteImmutabilityRule,
  deletePrunePolicy,
  listImmutabilityRules,
  listPrunePolicies,
} from "../services/lifecycle-policy.ts";
import {
  eraseHistoryEntry,
  restoreTag,
  setTagExpiry,
  tagHistory,
} from "../services/tag-lifecycle-service.ts";
import {
  type ApiContext,
  identityContext,
  pageBody,
  pageOf,
  readBody,
  repositoryParam,
  requiredString,
} from "./context.ts";
import { digestOf, expiryOf, prunePolicyOf, tagParam, tagPatternOf } from "./lifecycle-input.ts";
import type { RepositorySubroute } from "./repository-subroutes.ts";

const HISTORY = /^(.+)\/tag-history$/;
const HISTORY_ENTRY = /^(.+)\/tag-history\/([^/]+)$/;
const RESTORE = /^(.+)\/tags\/([^/]+)\/restore$/;
const EXPIRY = /^(.+)\/tags\/([^/]+)\/expiry$/;
const RULES = /^(.+)\/immutability-rules$/;
const RULE = /^(.+)\/immutability-rules\/([^/]+)$/;
const POLICIES = /^(.+)\/prune-policies$/;
const POLICY = /^(.+)\/prune-policies\/([^/]+)$/;

export const tagLifecycleSubroutes: RepositorySubroute[] = [
  { method: "GET", pattern: HISTORY, handle: (c, m) => history(c, m[1]!) },
  { method: "DELETE", pattern: HISTORY_ENTRY, handle: (c, m) => erase(c, m[1]!, m[2]!) },
  { method: "POST", pattern: RESTORE, handle: (c, m) => restore(c, m[1]!, m[2]!) },
  { method: "PUT", pattern: EXPIRY, handle: (c, m) => expiry(c, m[1]!, m[2]!, true) },
  { method: "DELETE", pattern: EXPIRY, handle: (c, m) => expiry(c, m[1]!, m[2]!, false) },
  { method: "GET", pattern: RULES, handle: (c, m) => rules(c, m[1]!) },
  { method: "POST", pattern: RULES, handle: (c, m) => addRule(c, m[1]!) },
  { method: "DELETE", pattern: RULE, handle: (c, m) => deleteRule(c, m[1]!, m[2]!) },
  { method: "GET", pattern: POLICIES, handle: (c, m) => policies(c, m[1]!) },
  { method: "POST", pattern: POLICIES, handle: (c, m) => addPolicy(c, m[1]!) },
  { method: "DELETE", pattern: POLICY, handle: (c, m) => deletePolicy(c, m[1]!, m[2]!) },
];

const HISTORY_QUERY = ["tag", "limit", "cursor"];

async function history(c: ApiContext, repository: string): Promise<Response> {
  const unknown = Object.keys(c.req.queries()).filter((key) => !HISTORY_QUERY.includes(key));
  if (unknown.length > 0) {
    throw invalid(`unknown query parameter ${unknown.join(", ")} (expected: ${HISTORY_QUERY})`);
  }
  const tag = c.req.query("tag");
  const page = await tagHistory(
    identityContext(c),
    c.var.services.objects,
    repositoryParam(repository),
    { tag: tag === undefined ? null : tagParam(tag) },
    pageOf(c, 1),
  );
  return c.json({ ...pageBody("history", page), retention: page.retention });
}

async function erase(c: ApiContext, repository: string, rawId: string): Promise<Response> {
  const name = repositoryParam(repository);
  const id = Number(rawId);
  if (!/^[1-9]\d{0,15}$/.test(rawId) || !Number.isSafeInteger(id)) {
    throw invalid(`history entry id ${JSON.stringify(rawId)} is not a positive integer`);
  }
  await eraseHistoryEntry(identityContext(c), c.var.services.objects, name, id);
  return c.body(null, 204);
}

async function restore(c: ApiContext, repository: string, rawTag: string): Promise<Response> {
  const name = repositoryParam(repository);
  const tag = tagParam(rawTag);
  const digest = digestOf(await readBody(c, ["digest"]));
  return c.json(await restoreTag(identityContext(c), c.var.services.objects, name, tag, digest));
}

async function expiry(
  c: ApiContext,
  repository: string,
  rawTag: string,
  set: boolean,
): Promise<Response> {
  const name = repositoryParam(repository);
  const tag = tagParam(rawTag);
  const expiresMs = set
    ? expiryOf(await readBody(c, ["expiresAt", "expiresIn"]), Date.now())
    : null;
  const result = await setTagExpiry(
    identityContext(c),
    c.var.services.objects,
    name,
    tag,
    expiresMs,
  );
  return set ? c.json(result) : c.body(null, 204);
}

async function rules(c: ApiContext, repository: string): Promise<Response> {
  const scope = { repository: repositoryParam(repository) };
  return c.json({ rules: await listImmutabilityRules(identityContext(c), scope) });
}

async function addRule(c: ApiContext, repository: string): Promise<Response> {
  const scope = { repository: repositoryParam(repository) };
  const tagPattern = tagPatternOf(requiredString(await readBody(c, ["tagPattern"]), "tagPattern"));
  return c.json(
    await addImmutabilityRule(identityContext(c), c.var.services.objects, scope, tagPattern),
    201,
  );
}

async function deleteRule(c: ApiContext, repository: string, id: string): Promise<Response> {
  const scope = { repository: repositoryParam(repository) };
  await deleteImmutabilityRule(identityContext(c), c.var.services.objects, scope, id);
  return c.body(null, 204);
}

async function policies(c: ApiContext, repository: string): Promise<Response> {
  const scope = { repository: repositoryParam(repository) };
  return c.json({ policies: await listPrunePolicies(identityContext(c), scope) });
}

async function addPolicy(c: ApiContext, repository: string): Promise<Response> {
  const scope = { repository: repositoryParam(repository) };
  const input = prunePolicyOf(await readBody(c, ["keepCount", "olderThan", "tagPattern"]));
  return c.json(
    await addPrunePolicy(identityContext(c), c.var.services.objects, scope, input),
    201,
  );
}

async function deletePolicy(c: ApiContext, repository: string, id: string): Promise<Response> {
  const scope = { repository: repositoryParam(repository) };
  await deletePrunePolicy(identityContext(c), c.var.services.objects, scope, id);
  return c.body(null, 204);
}
