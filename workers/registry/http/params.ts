// Parses URL parts once at the edge into branded values; bad input becomes the spec's error.
import { RegistryError } from "../../../schema/oci/errors.ts";
import {
  type Digest,
  isDigestLike,
  parseDigest,
  parseRepositoryName,
  parseTag,
  type Reference,
  type RepositoryName,
} from "../../../schema/oci/reference.ts";

export function repositoryName(raw: string | undefined): RepositoryName {
  const name = raw === undefined ? undefined : parseRepositoryName(raw);
  if (!name)
    throw new RegistryError("NAME_INVALID", `invalid repository name ${JSON.stringify(raw ?? "")}`);
  return name;
}

export function digestParam(raw: string | undefined | null): Digest {
  const parsed = parseDigest(raw ?? "");
  if (!parsed.ok) {
    throw new RegistryError(
      parsed.reason === "unsupported" ? "UNSUPPORTED" : "DIGEST_INVALID",
      parsed.reason === "unsupported"
        ? `digest algorithm of ${raw} is not supported (sha256, sha512)`
        : `invalid digest ${JSON.stringify(raw ?? "")}`,
      parsed.reason === "unsupported" ? { status: 400 } : {},
    );
  }
  return parsed.digest;
}

export function referenceParam(raw: string | undefined): Reference {
  const value = raw ?? "";
  if (isDigestLike(value)) return { kind: "digest", digest: digestParam(value) };
  const tag = parseTag(value);
  if (!tag) throw new RegistryError("TAG_INVALID", `invalid tag ${JSON.stringify(value)}`);
  return { kind: "tag", tag };
}

/** `n` of a paginated list (tags, catalog): a non-negative integer, capped at `max`. */
export function pageSize(raw: string | undefined, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d{1,9}$/.test(raw)) {
    throw new RegistryError(
      "PAGINATION_NUMBER_INVALID",
      `n must be a non-negative integer, got ${JSON.stringify(raw)}`,
    );
  }
  return Math.min(Number(raw), max);
}

/** `Content-Range: <start>-<end>` as the spec writes it (a `bytes ` prefix and `/total` are tolerated). */
export function contentRange(raw: string | undefined): { start: number; end: number } | null {
  if (raw === undefined) return null;
  const match = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(raw.trim());
  if (!match)
    throw new RegistryError("RANGE_INVALID", `malformed Content-Range ${JSON.stringify(raw)}`);
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (end < start)
    throw new RegistryError("RANGE_INVALID", `Content-Range ${raw} ends before it starts`);
  return { start, end };
}
