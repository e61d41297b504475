// Request parsing shared by the tag lifecycle endpoints (namespace-policies.ts, tag-lifecycle.ts):
// durations, tag patterns, prune policies and expiry times, each refused with a 400 that names
// the field and says what would be accepted.
import { tagPatternProblem } from "../../../schema/lifecycle.ts";
import { type Digest, parseDigest, parseTag, type Tag } from "../../../schema/oci/reference.ts";
import { parseDuration } from "../lib/duration.ts";
import { invalid } from "../services/identity/errors.ts";
import { MAX_RETENTION_MS, type PrunePolicyInput } from "../services/lifecycle-policy.ts";
import { type Body, optionalInteger, optionalString, requiredString } from "./context.ts";

const DAY_MS = 24 * 60 * 60 * 1000;
/** The furthest ahead an expiry or an age may be: ten years. */
const MAX_HORIZON_MS = 3650 * DAY_MS;
export const MAX_KEEP_COUNT = 10_000;

/** A duration field (`30s`, `15m`, `12h`, `2d`, `3w`) from `min` to `max` milliseconds. */
function durationField(body: Body, field: string, min: number, max: number): number {
  const text = requiredString(body, field);
  const ms = parseDuration(text);
  if (ms === undefined) {
    throw invalid(
      `${field} must be a number and a unit, like 12h, 2d or 3w (units: s, m, h, d, w)`,
    );
  }
  if (ms < min || ms > max) {
    throw invalid(`${field} must be from ${min / 1000} seconds to ${max / DAY_MS} days`);
  }
  return ms;
}

export function retentionOf(body: Body): number {
  return durationField(body, "retention", 0, MAX_RETENTION_MS);
}

export function tagPatternOf(value: string, field = "tagPattern"): string {
  const problem = tagPatternProblem(value);
  if (problem) {
    throw invalid(
      `${field}: ${problem} (a glob: * any characters, ? one, [a-z] one of a set, [^a-z] one not in it)`,
    );
  }
  return value;
}

export function prunePolicyOf(body: Body): PrunePolicyInput {
  const pattern = optionalString(body, "tagPattern");
  const tagPattern = pattern === undefined ? null : tagPatternOf(pattern);
  const keepCount = optionalInteger(body, "keepCount", 1, MAX_KEEP_COUNT);
  const hasAge = body.olderThan !== undefined && body.olderThan !== null;
  if ((keepCount === undefined) === !hasAge) {
    throw invalid("send exactly one of keepCount (tags to keep) or olderThan (an age like 30d)");
  }
  if (keepCount !== undefined) return { method: "keep-count", count: keepCount, tagPattern };
  const ms = durationField(body, "olderThan", 1000, MAX_HORIZON_MS);
  return { method: "older-than", seconds: ms / 1000, tagPattern };
}

/** `{expiresAt: <ISO 8601 time>}` or `{expiresIn: <duration>}`: when the tag expires. */
export function expiryOf(body: Body, now: number): number {
  const hasAt = body.expiresAt !== undefined;
  if (hasAt === (body.expiresIn !== undefined)) {
    throw invalid("send exactly one of expiresAt (an ISO 8601 time) or expiresIn (like 2d)");
  }
  if (!hasAt) return now + durationField(body, "expiresIn", 1000, MAX_HORIZON_MS);
  const text = requiredString(body, "expiresAt");
  const at = /^\d{4}-\d{2}-\d{2}T/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(at)) throw invalid("expiresAt must be an ISO 8601 time with a date and time");
  if (at <= now) throw invalid("expiresAt must be in the future (to remove a tag, delete it)");
  if (at > now + MAX_HORIZON_MS) throw invalid("expiresAt must be within ten years");
  return at;
}

export function tagParam(raw: string): Tag {
  const tag = parseTag(raw);
  if (!tag) throw invalid(`invalid tag ${JSON.stringify(raw)}`);
  return tag;
}

export function digestOf(body: Body): Digest {
  const text = requiredString(body, "digest");
  const parsed = parseDigest(text);
  if (!parsed.ok) throw invalid(`digest ${JSON.stringify(text)} is not a valid digest`);
  return parsed.digest;
}
