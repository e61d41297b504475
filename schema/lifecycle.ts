// Tag lifecycle contracts shared by the RepositoryObject and the Worker: the effective policy a
// repository's object enforces (retention window, immutable tag patterns, auto-prune rules), the
// tag-pattern syntax, and the time machine's RPC views.

/** How long an ended tag lifetime stays restorable (and keeps its manifest) unless set. */
export const DEFAULT_TAG_RETENTION_MS = 14 * 24 * 60 * 60 * 1000;

/**
 * An auto-prune rule. `keep-count`: of the current tags (matching `tagPattern`, if set), only the
 * `count` most recently pushed stay. `older-than`: a tag pushed more than `olderThanMs` ago goes.
 * Immutable tags are never pruned, and do not count towards `count`.
 */
export type PruneRule =
  | { id: string; kind: "keep-count"; count: number; tagPattern: string | null }
  | { id: string; kind: "older-than"; olderThanMs: number; tagPattern: string | null };

/**
 * What a RepositoryObject enforces, computed from D1 (the source of truth) and pushed to it on
 * every change. `revision` orders pushes: the object keeps the highest it has seen, so a slow
 * push of an older state can never overwrite a newer one.
 */
export interface LifecyclePolicy {
  repository: string;
  namespace: string;
  revision: number;
  retentionMs: number;
  /** Tag patterns (see `tagPatternProblem`); a tag matching any of them cannot move or go. */
  immutableTags: string[];
  prune: PruneRule[];
}

// ---- tag patterns ----------------------------------------------------------------------------
//
// Tag patterns are globs with SQLite's GLOB semantics, matched against the whole tag and case
// sensitive: `*` any run of characters, `?` one character, `[abc]` / `[a-z]` one of a set,
// `[^abc]` one not in it; every other character is itself. Globs rather than regular
// expressions: the object matches them in SQL (`name GLOB pattern`) over all its tags, and no
// pattern a user writes can make that backtrack for seconds (a regular expression can: ReDoS).

export const MAX_TAG_PATTERN_LENGTH = 128;
const TAG_CHAR = /[a-zA-Z0-9._-]/;

/** Why `pattern` is not a valid tag pattern, or null when it is. */
export function tagPatternProblem(pattern: string): string | null {
  if (pattern.length === 0) return "a tag pattern cannot be empty";
  if (pattern.length > MAX_TAG_PATTERN_LENGTH) {
    return `a tag pattern has at most ${MAX_TAG_PATTERN_LENGTH} characters`;
  }
  for (let at = 0; at < pattern.length; at++) {
    const ch = pattern[at]!;
    if (ch === "*" || ch === "?" || TAG_CHAR.test(ch)) continue;
    if (ch !== "[") return `character ${JSON.stringify(ch)} cannot appear in a tag pattern`;
    const close = pattern.indexOf("]", at + 1);
    if (close < 0) return `the set opened at position ${at + 1} is not closed`;
    const set = pattern.slice(at + 1, close).replace(/^\^/, "");
    if (set.length === 0) return `the set at position ${at + 1} is empty`;
    if (!/^(?:[a-zA-Z0-9._]-[a-zA-Z0-9._]|[a-zA-Z0-9._-])+$/.test(set)) {
      return `the set at position ${at + 1} may hold only tag characters and ranges like a-z`;
    }
    at = close;
  }
  return null;
}

// ---- time machine views ------------------------------------------------------------------------

/** Why a lifetime ended: the tag was pushed elsewhere, deleted, restored, expired or pruned. */
export type TagEndReason = "moved" | "deleted" | "restored" | "expired" | "pruned";

/** One lifetime of a tag: it pointed at `digest` from `startMs` until `endMs` (null: still). */
export interface TagLifetime {
  id: number;
  tag: string;
  digest: string;
  startMs: number;
  endMs: number | null;
  endReason: TagEndReason | null;
  /** When the (current) tag is set to expire. */
  expiresMs: number | null;
  /** Whether the manifest is still stored. */
  manifestPresent: boolean;
  /** Whether the tag can be restored to this digest now (ended inside the window, manifest kept). */
  restorable: boolean;
}

export interface TagHistoryPage {
  entries: TagLifetime[];
  /** True when older entries follow the last one returned. */
  more: boolean;
  retentionMs: number;
}

/** An expected refusal of a lifecycle RPC, in the management API's codes. */
export interface LifecycleRefusal {
  ok: false;
  error: "NOT_FOUND" | "CONFLICT" | "FORBIDDEN";
  message: string;
}

export type LifecycleResult<T> = ({ ok: true } & T) | LifecycleRefusal;
