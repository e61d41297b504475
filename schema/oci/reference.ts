// Parsing of the identifiers that arrive in URLs, once, at the edge: repository names, tags
// and digests become branded values so services never see an unchecked string.

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

export type RepositoryName = Brand<string, "RepositoryName">;
export type Tag = Brand<string, "Tag">;
export type Digest = Brand<string, "Digest">;
export type DigestAlgorithm = "sha256" | "sha512";

// distribution-spec §"Pulling manifests": <name> is path components joined by "/".
const NAME_PATTERN =
  /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG_PATTERN = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
// image-spec descriptor.md: registered algorithms and their encodings.
const DIGEST_PATTERNS: Record<DigestAlgorithm, RegExp> = {
  sha256: /^sha256:[a-f0-9]{64}$/,
  sha512: /^sha512:[a-f0-9]{128}$/,
};
const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** Names longer than this are refused (the spec's suggested limit with a host prefix). */
export const MAX_NAME_LENGTH = 255;

export function parseRepositoryName(value: string): RepositoryName | undefined {
  if (value.length === 0 || value.length > MAX_NAME_LENGTH) return undefined;
  return NAME_PATTERN.test(value) ? (value as RepositoryName) : undefined;
}

export function parseTag(value: string): Tag | undefined {
  return TAG_PATTERN.test(value) ? (value as Tag) : undefined;
}

export type DigestParse =
  | { ok: true; digest: Digest; algorithm: DigestAlgorithm; hex: string }
  | { ok: false; reason: "malformed" | "unsupported" };

export function parseDigest(value: string): DigestParse {
  if (!DIGEST_GRAMMAR.test(value)) return { ok: false, reason: "malformed" };
  const algorithm = value.slice(0, value.indexOf(":"));
  if (algorithm !== "sha256" && algorithm !== "sha512") return { ok: false, reason: "unsupported" };
  if (!DIGEST_PATTERNS[algorithm].test(value)) return { ok: false, reason: "malformed" };
  return { ok: true, digest: value as Digest, algorithm, hex: value.slice(algorithm.length + 1) };
}

export function isDigestLike(reference: string): boolean {
  return reference.includes(":");
}

export function digestAlgorithm(digest: Digest): DigestAlgorithm {
  return digest.startsWith("sha512:") ? "sha512" : "sha256";
}

export function digestHex(digest: Digest): string {
  return digest.slice(digest.indexOf(":") + 1);
}

/** A manifest reference is either a tag or a digest. */
export type Reference = { kind: "tag"; tag: Tag } | { kind: "digest"; digest: Digest };
