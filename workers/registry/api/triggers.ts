// Build triggers of a repository, for its administrators (grammar: schema/build-triggers.ts).
//   GET    /repositories/:name/triggers              ?limit=&cursor= (no secrets)
//   POST   /repositories/:name/triggers              {provider, cloneUrl, dockerfilePath?,
//                                                    contextDir?, refFilter?, tagTemplates?,
//                                                    defaultBranch?, enabled?} → secret, shown once
//   GET    /repositories/:name/triggers/:id
//   PATCH  /repositories/:name/triggers/:id          any field of POST but provider
//   DELETE /repositories/:name/triggers/:id
//   POST   /repositories/:name/triggers/:id/secret   → a new secret, shown once
// Served through repository-subroutes.ts (a repository name has slashes).
import {
  BUILD_TRIGGER_PROVIDERS,
  cloneUrlProblem,
  DEFAULT_REF_FILTER,
  DEFAULT_TAG_TEMPLATES,
  MAX_PATTERNS,
  MAX_TEMPLATES,
  normalizeSourcePath,
  parseTagTemplate,
  type RefFilter,
  refPatternProblem,
} from "../../../schema/build-triggers.ts";
import { invalid, notFound } from "../services/identity/errors.ts";
import {
  createTrigger,
  deleteTrigger,
  describeTrigger,
  listTriggers,
  regenerateTriggerSecret,
  type SecretSealing,
  type TriggerSettings,
  updateTrigger,
} from "../services/triggers.ts";
import {
  type ApiContext,
  type Body,
  identityContext,
  oneOf,
  optionalBoolean,
  pageBody,
  pageOf,
  readBody,
  repositoryParam,
  requiredString,
} from "./context.ts";
import type { RepositorySubroute } from "./repository-subroutes.ts";

const LIST = /^(.+)\/triggers$/;
const ONE = /^(.+)\/triggers\/([^/]+)$/;
const SECRET = /^(.+)\/triggers\/([^/]+)\/secret$/;

/** The trigger endpoints, answered through repository-subroutes.ts. */
export const triggerSubroutes: RepositorySubroute[] = [
  { method: "GET", pattern: LIST, handle: (c, match) => list(c, match[1]!) },
  { method: "POST", pattern: LIST, handle: (c, match) => create(c, match[1]!) },
  { method: "POST", pattern: SECRET, handle: (c, m) => regenerate(c, m[1]!, m[2]!) },
  { method: "GET", pattern: ONE, handle: (c, match) => show(c, match[1]!, match[2]!) },
  { method: "PATCH", pattern: ONE, handle: (c, match) => update(c, match[1]!, match[2]!) },
  { method: "DELETE", pattern: ONE, handle: (c, match) => remove(c, match[1]!, match[2]!) },
];

const NO_STORE = { "Cache-Control": "no-store" };
const SETTINGS = [
  "cloneUrl",
  "dockerfilePath",
  "contextDir",
  "refFilter",
  "tagTemplates",
  "defaultBranch",
  "enabled",
] as const;

async function list(c: ApiContext, repository: string): Promise<Response> {
  const page = await listTriggers(identityContext(c), repositoryParam(repository), pageOf(c, 1));
  return c.json(pageBody("triggers", page));
}

async function create(c: ApiContext, repository: string): Promise<Response> {
  const name = repositoryParam(repository);
  const body = await readBody(c, ["provider", ...SETTINGS]);
  const provider = oneOf("provider", body.provider, BUILD_TRIGGER_PROVIDERS);
  const settings: TriggerSettings = {
    cloneUrl: cloneUrlOf(requiredString(body, "cloneUrl")),
    dockerfilePath: "Dockerfile",
    contextDir: ".",
    refFilter: DEFAULT_REF_FILTER,
    tagTemplates: [...DEFAULT_TAG_TEMPLATES],
    defaultBranch: null,
    enabled: true,
    ...settingsOf(body),
  };
  const trigger = await createTrigger(identityContext(c), sealing(c), name, {
    provider,
    ...settings,
  });
  return c.json(trigger, 201, NO_STORE);
}

async function show(c: ApiContext, repository: string, id: string): Promise<Response> {
  const name = repositoryParam(repository);
  return c.json(await describeTrigger(identityContext(c), name, triggerId(id)));
}

async function update(c: ApiContext, repository: string, id: string): Promise<Response> {
  const name = repositoryParam(repository);
  const changes = settingsOf(await readBody(c, SETTINGS));
  if (Object.keys(changes).length === 0) {
    throw invalid(`nothing to change: send any of ${SETTINGS.join(", ")}`);
  }
  return c.json(await updateTrigger(identityContext(c), name, triggerId(id), changes));
}

async function remove(c: ApiContext, repository: string, id: string): Promise<Response> {
  await deleteTrigger(identityContext(c), repositoryParam(repository), triggerId(id));
  return c.body(null, 204);
}

async function regenerate(c: ApiContext, repository: string, id: string): Promise<Response> {
  const name = repositoryParam(repository);
  const trigger = await regenerateTriggerSecret(
    identityContext(c),
    sealing(c),
    name,
    triggerId(id),
  );
  return c.json(trigger, 200, NO_STORE);
}

// ---- parsing ---------------------------------------------------------------------------------

function sealing(c: ApiContext): SecretSealing {
  return { webhookSecretKey: c.env.WEBHOOK_SECRET_KEY };
}

/** Trigger ids are UUIDs; anything else names no trigger. */
function triggerId(raw: string): string {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(raw)) {
    throw notFound(`build trigger ${raw} not found`);
  }
  return raw;
}

/** The settings present in `body`, each validated. */
function settingsOf(body: Body): Partial<TriggerSettings> {
  const settings: Partial<TriggerSettings> = {};
  if (body.cloneUrl !== undefined) settings.cloneUrl = cloneUrlOf(requiredString(body, "cloneUrl"));
  if (body.dockerfilePath !== undefined) {
    const path = sourcePath("dockerfilePath", requiredString(body, "dockerfilePath"));
    if (path === ".") throw invalid("dockerfilePath must name a file");
    settings.dockerfilePath = path;
  }
  if (body.contextDir !== undefined) {
    settings.contextDir = sourcePath("contextDir", requiredString(body, "contextDir"));
  }
  if (body.refFilter !== undefined) settings.refFilter = refFilterOf(body.refFilter);
  if (body.tagTemplates !== undefined) settings.tagTemplates = tagTemplatesOf(body.tagTemplates);
  if (body.defaultBranch !== undefined) {
    settings.defaultBranch = body.defaultBranch === null ? null : branchName(body.defaultBranch);
  }
  const enabled = optionalBoolean(body, "enabled");
  if (enabled !== undefined) settings.enabled = enabled;
  return settings;
}

function cloneUrlOf(url: string): string {
  const problem = cloneUrlProblem(url);
  if (problem) throw invalid(`cloneUrl ${problem}`);
  return url;
}

function sourcePath(field: string, raw: string): string {
  const result = normalizeSourcePath(raw);
  if ("problem" in result) throw invalid(`${field} ${result.problem}`);
  return result.path;
}

function refFilterOf(value: unknown): RefFilter {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid('refFilter must be an object {"branches": [globs], "tags": [globs]}');
  }
  const unknown = Object.keys(value).filter((key) => key !== "branches" && key !== "tags");
  if (unknown.length > 0) {
    throw invalid(`refFilter has unknown field ${unknown.join(", ")} (expected branches, tags)`);
  }
  const filter = value as Record<string, unknown>;
  // A kind left out builds nothing of that kind: `{"branches": ["main"]}` builds main only.
  return {
    branches: patternsOf("branches", filter.branches),
    tags: patternsOf("tags", filter.tags),
  };
}

function patternsOf(kind: string, value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > MAX_PATTERNS) {
    throw invalid(`refFilter.${kind} must be a list of at most ${MAX_PATTERNS} glob patterns`);
  }
  for (const pattern of value) {
    if (typeof pattern !== "string") throw invalid(`refFilter.${kind} must hold strings`);
    const problem = refPatternProblem(pattern);
    if (problem) throw invalid(`refFilter.${kind} pattern ${JSON.stringify(pattern)} ${problem}`);
  }
  return [...new Set(value as string[])];
}

function tagTemplatesOf(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_TEMPLATES) {
    throw invalid(`tagTemplates must be a list of 1 to ${MAX_TEMPLATES} templates`);
  }
  for (const template of value) {
    if (typeof template !== "string") throw invalid("tagTemplates must hold strings");
    const parsed = parseTagTemplate(template);
    if (typeof parsed === "string") {
      throw invalid(`tag template ${JSON.stringify(template)} ${parsed}`);
    }
  }
  return [...new Set(value as string[])];
}

function branchName(value: unknown): string {
  if (typeof value !== "string") throw invalid("defaultBranch must be a string or null");
  const problem =
    refPatternProblem(value) ?? (/[*?]/.test(value) ? "may not be a glob" : undefined);
  if (problem) throw invalid(`defaultBranch ${problem}`);
  return value;
}
