// What a verified webhook says, per provider: a push (ref, commit, whether the ref was deleted,
// the repository's default branch), a ping, another event to ignore, or a payload we cannot read.
//   github   X-GitHub-Event: push | ping | …; payload {ref, after, deleted, head_commit.id,
//            repository.default_branch}
//   gitlab   X-Gitlab-Event: Push Hook | Tag Push Hook | …; payload {ref, after, checkout_sha,
//            project.default_branch}
//   generic  payload {ref: "refs/heads/main", commit: "<40 or 64 hex>", defaultBranch?: "main"}
// Also the delivery id each provider sends, which replay protection keys on.
import { type BuildTriggerProvider, hasControlCharacter } from "../../schema/build-triggers.ts";

export interface Push {
  ref: string;
  /** The commit to build (for an annotated tag, the commit it points at when the payload says). */
  commit: string;
  /** The ref was deleted by this push: nothing to build. */
  deleted: boolean;
  defaultBranch: string | undefined;
}

export type HookEvent =
  | { kind: "push"; push: Push }
  | { kind: "ping" }
  | { kind: "other"; event: string }
  | { kind: "invalid"; problem: string };

const ZERO_COMMIT = /^0+$/;
const COMMIT = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const MAX_DELIVERY_ID = 200;

/** The delivery id of a hook, or the problem with it. */
export function deliveryIdOf(
  provider: BuildTriggerProvider,
  headers: Headers,
): { id: string } | { problem: string } {
  const [name, value] =
    provider === "github"
      ? ["X-GitHub-Delivery", headers.get("X-GitHub-Delivery")]
      : provider === "gitlab"
        ? [
            "Idempotency-Key or X-Gitlab-Event-UUID",
            headers.get("Idempotency-Key") ?? headers.get("X-Gitlab-Event-UUID"),
          ]
        : ["X-Registry-Delivery", headers.get("X-Registry-Delivery")];
  if (value === null || value.trim() === "") return { problem: `no ${name} header` };
  const id = value.trim();
  if (id.length > MAX_DELIVERY_ID || !/^[\x21-\x7e]+$/.test(id)) {
    return { problem: `${name} must be 1 to ${MAX_DELIVERY_ID} printable ASCII characters` };
  }
  return { id };
}

export function parseHookEvent(
  provider: BuildTriggerProvider,
  headers: Headers,
  body: Uint8Array,
): HookEvent {
  if (provider === "github") {
    const event = headers.get("X-GitHub-Event") ?? "";
    if (event === "ping") return { kind: "ping" };
    if (event !== "push") return { kind: "other", event: event || "(no X-GitHub-Event)" };
  } else if (provider === "gitlab") {
    const event = headers.get("X-Gitlab-Event") ?? "";
    if (event !== "Push Hook" && event !== "Tag Push Hook") {
      return { kind: "other", event: event || "(no X-Gitlab-Event)" };
    }
  }
  let payload: unknown;
  try {
    payload = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(body));
  } catch {
    return { kind: "invalid", problem: "the body is not UTF-8 JSON" };
  }
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    return { kind: "invalid", problem: "the body is not a JSON object" };
  }
  const push =
    provider === "github"
      ? githubPush(payload as Record<string, unknown>)
      : provider === "gitlab"
        ? gitlabPush(payload as Record<string, unknown>)
        : genericPush(payload as Record<string, unknown>);
  return typeof push === "string" ? { kind: "invalid", problem: push } : { kind: "push", push };
}

function githubPush(payload: Record<string, unknown>): Push | string {
  const ref = refOf(payload.ref);
  const after = stringOf(payload.after);
  if (typeof ref !== "string" || ref === "") return "payload.ref is missing or malformed";
  if (after === undefined) return "payload.after is missing";
  const deleted = payload.deleted === true || ZERO_COMMIT.test(after);
  // For an annotated tag `after` is the tag object; head_commit is the commit it points at.
  const commit = stringOf(objectOf(payload.head_commit)?.id) ?? after;
  return pushOf(ref, commit, deleted, stringOf(objectOf(payload.repository)?.default_branch));
}

function gitlabPush(payload: Record<string, unknown>): Push | string {
  const ref = refOf(payload.ref);
  const after = stringOf(payload.after);
  if (typeof ref !== "string" || ref === "") return "payload.ref is missing or malformed";
  if (after === undefined) return "payload.after is missing";
  const deleted = ZERO_COMMIT.test(after);
  const commit = stringOf(payload.checkout_sha) ?? after;
  return pushOf(ref, commit, deleted, stringOf(objectOf(payload.project)?.default_branch));
}

function genericPush(payload: Record<string, unknown>): Push | string {
  const ref = refOf(payload.ref);
  const commit = stringOf(payload.commit);
  if (typeof ref !== "string" || ref === "") {
    return 'payload.ref must be a full ref such as "refs/heads/main"';
  }
  if (commit === undefined) return "payload.commit is missing";
  const defaultBranch = payload.defaultBranch;
  if (defaultBranch !== undefined && typeof defaultBranch !== "string") {
    return "payload.defaultBranch must be a string";
  }
  return pushOf(ref, commit, ZERO_COMMIT.test(commit), defaultBranch);
}

function pushOf(
  ref: string,
  commit: string,
  deleted: boolean,
  defaultBranch: string | undefined,
): Push | string {
  if (!deleted && !COMMIT.test(commit)) {
    return `commit ${JSON.stringify(commit.slice(0, 80))} is not a full hexadecimal commit id`;
  }
  return { ref, commit, deleted, defaultBranch };
}

/** A full ref name (`refs/…`) without spaces or control characters; "" when malformed. */
function refOf(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  return value.startsWith("refs/") &&
    value.length <= 255 &&
    !/\s/.test(value) &&
    !hasControlCharacter(value)
    ? value
    : "";
}

function stringOf(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function objectOf(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null
    ? (value as Record<string, unknown>)
    : undefined;
}
