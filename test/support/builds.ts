// Driving builds of a running registry from Node, as a user and a git host would: the management
// API as the admin, GitHub-style push webhooks signed with a trigger's secret, the build's state
// and paged log, and the bootstrap fleet credential of the registry's state folder.
//
//   const api = adminApi(registry);
//   const hook = await sendGithubPush(registry.hooksUrl, trigger, { ref, commit, defaultBranch });
//   const build = await waitForBuild(api, repo, buildId, (b) => b.phase === "complete");
//   const lines = await readBuildLog(api, repo, buildId);
import { createHmac, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { parseEnv } from "node:util";
import type { BuildLogEntry, BuildPhase } from "../../schema/builds.ts";
import type { RunningRegistry } from "./registry-process.ts";

/** `fetch` on `<registry>/api/v1<path>` as the bootstrap admin (JSON bodies by default). */
export type Api = (path: string, init?: RequestInit) => Promise<Response>;

export function adminApi(registry: RunningRegistry): Api {
  const auth = Buffer.from(`${registry.adminUser}:${registry.adminPassword}`).toString("base64");
  return (apiPath, init = {}) =>
    fetch(`${registry.url}/api/v1${apiPath}`, {
      ...init,
      headers: {
        Authorization: `Basic ${auth}`,
        "Content-Type": "application/json",
        ...init.headers,
      },
    });
}

/** The answer's JSON when the status is the expected one; otherwise an error quoting the body. */
export async function expectJson<T>(
  response: Response | Promise<Response>,
  status: number,
): Promise<T> {
  const res = await response;
  const text = await res.text();
  if (res.status !== status) {
    throw new Error(`${res.url}: expected ${status}, got ${res.status}: ${text.slice(0, 500)}`);
  }
  return JSON.parse(text) as T;
}

/** The bootstrap FLEET_CREDENTIAL `npm start` generated into the state folder's `.dev.vars`. */
export function fleetCredentialOf(registry: RunningRegistry): string {
  const vars = parseEnv(readFileSync(path.join(registry.stateDir, ".dev.vars"), "utf8"));
  const credential = vars.FLEET_CREDENTIAL;
  if (!credential) throw new Error(`no FLEET_CREDENTIAL in ${registry.stateDir}/.dev.vars`);
  return credential;
}

export interface CreatedTrigger {
  id: string;
  secret: string;
  webhookPath: string;
}

export interface GithubPush {
  ref: string;
  commit: string;
  defaultBranch: string;
  /** X-GitHub-Delivery; a fresh UUID when omitted. */
  delivery?: string;
  /** Signs with this secret instead of the trigger's (a forgery). */
  signWith?: string;
}

export interface SentHook {
  response: Response;
  /** `performance.timeOrigin + performance.now()` just before the request was sent. */
  sentAt: number;
  delivery: string;
  body: string;
}

/** A GitHub `push` payload, as much of it as a build needs plus a little realism. */
export function githubPushBody(push: GithubPush): string {
  return JSON.stringify({
    ref: push.ref,
    before: "0".repeat(40),
    after: push.commit,
    created: false,
    deleted: false,
    forced: false,
    head_commit: { id: push.commit, message: "change", timestamp: new Date().toISOString() },
    repository: { name: "app", full_name: "acme/app", default_branch: push.defaultBranch },
    pusher: { name: "build-test" },
  });
}

/** The `X-Hub-Signature-256` GitHub computes: HMAC-SHA256 of the raw body, hex. */
export function githubSignature(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

/** POSTs a correctly signed (unless `signWith`) GitHub push webhook to the hooks Worker. */
export async function sendGithubPush(
  hooksUrl: string,
  trigger: Pick<CreatedTrigger, "id" | "secret">,
  push: GithubPush,
  body = githubPushBody(push),
): Promise<SentHook> {
  const delivery = push.delivery ?? randomUUID();
  const headers = {
    "Content-Type": "application/json",
    "User-Agent": "GitHub-Hookshot/e2e",
    "X-GitHub-Event": "push",
    "X-GitHub-Delivery": delivery,
    "X-Hub-Signature-256": githubSignature(push.signWith ?? trigger.secret, body),
  };
  const sentAt = performance.timeOrigin + performance.now();
  const response = await fetch(`${hooksUrl}/hooks/github/${trigger.id}`, {
    method: "POST",
    headers,
    body,
  });
  return { response, sentAt, delivery, body };
}

export interface BuildDetail {
  id: string;
  repository: string;
  triggerId: string | null;
  phase: BuildPhase;
  source: { kind: string; cloneUrl?: string; ref?: string; commit?: string };
  tags: string[];
  attempts: number;
  host: string | null;
  digest: string | null;
  error: string | null;
  queuedAt: string;
  phases: { phase: BuildPhase; at: string; attempt: number; detail?: string }[];
  logLines: number;
}

/** Polls `GET …/builds/<id>` (404 until the queue consumer recorded it) until `until` holds. */
export async function waitForBuild(
  api: Api,
  repository: string,
  buildId: string,
  until: (build: BuildDetail) => boolean,
  timeoutMs = 120_000,
  pollMs = 50,
): Promise<BuildDetail> {
  const deadline = Date.now() + timeoutMs;
  let last: BuildDetail | string = "not recorded yet";
  for (;;) {
    const res = await api(`/repositories/${repository}/builds/${buildId}`);
    if (res.status === 200) {
      const build = (await res.json()) as BuildDetail;
      if (until(build)) return build;
      last = build;
    } else {
      const text = await res.text();
      if (res.status !== 404) throw new Error(`build ${buildId}: ${res.status} ${text}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`build ${buildId} not there after ${timeoutMs} ms: ${JSON.stringify(last)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

export const isFinished = (build: BuildDetail): boolean =>
  build.phase === "complete" || build.phase === "error" || build.phase === "cancelled";

/** The whole log through the paged endpoint (`?after=&limit=`), page by page, until finished. */
export async function readBuildLog(
  api: Api,
  repository: string,
  buildId: string,
  pageSize = 50,
): Promise<{ lines: BuildLogEntry[]; pages: number }> {
  const lines: BuildLogEntry[] = [];
  let after = 0;
  let pages = 0;
  for (;;) {
    const page = await expectJson<{
      lines: BuildLogEntry[];
      next_after: number | null;
      finished: boolean;
    }>(
      api(`/repositories/${repository}/builds/${buildId}/logs?after=${after}&limit=${pageSize}`),
      200,
    );
    pages++;
    lines.push(...page.lines);
    if (page.next_after === null) return { lines, pages };
    if (page.next_after === after && !page.finished) {
      throw new Error(`build ${buildId} still runs: its log is not complete yet`);
    }
    after = page.next_after;
  }
}

/** Build ids of a repository, newest first (every page). */
export async function listBuildIds(api: Api, repository: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `?limit=100&cursor=${encodeURIComponent(cursor)}` : "?limit=100";
    const page: { builds: { id: string }[]; next_cursor: string | null } = await expectJson(
      api(`/repositories/${repository}/builds${query}`),
      200,
    );
    ids.push(...page.builds.map((b) => b.id));
    cursor = page.next_cursor;
  } while (cursor);
  return ids;
}
