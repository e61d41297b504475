// The grammar of build triggers, shared by the management API (which validates a trigger) and the
// hooks Worker (which applies it to a push): which refs a trigger builds, which tags the image
// gets, and the paths inside the source. Pure functions; every runtime may import this file.
//
// Ref filter: `{ branches: [...], tags: [...] }`, glob patterns matched against the branch name
// (`refs/heads/<name>`) or the tag name (`refs/tags/<name>`) of the push. `*` matches any run of
// characters but `/`, `**` any run including `/`, `?` one character but `/`; everything else is
// literal. `["**"]` builds everything of that kind, `[]` nothing.
//
// Tag templates: what the image is tagged, each template giving at most one tag:
//   {branch}   the branch name (branch pushes only), `/` replaced by `-`
//   {tag}      the git tag name (tag pushes only), `/` replaced by `-`
//   {sha}      the full commit id; {sha:N} its first N characters (1 ≤ N ≤ 64)
//   @default   suffix: only for pushes to the repository's default branch (`latest@default`)
// A template naming {branch} is skipped for a tag push and vice versa. A result that is not a
// valid OCI tag (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`) is dropped, with the reason reported.
import { parseTag } from "./oci/reference.ts";

export const BUILD_TRIGGER_PROVIDERS = ["github", "gitlab", "generic"] as const;
export type BuildTriggerProvider = (typeof BUILD_TRIGGER_PROVIDERS)[number];

export interface RefFilter {
  branches: string[];
  tags: string[];
}

export const DEFAULT_REF_FILTER: RefFilter = { branches: ["**"], tags: ["**"] };
export const DEFAULT_TAG_TEMPLATES: readonly string[] = ["latest@default", "{branch}", "{tag}"];
export const MAX_PATTERNS = 20;
export const MAX_TEMPLATES = 20;
const MAX_PATTERN_LENGTH = 255;
const MAX_TEMPLATE_LENGTH = 200;
const MAX_PATH_LENGTH = 1024;

/** Whether the text holds an ASCII control character (C0 or DEL). */
export function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

// ---- refs -----------------------------------------------------------------------------------

/** What a pushed ref names. */
export type PushedRef =
  | { kind: "branch"; name: string }
  | { kind: "tag"; name: string }
  | { kind: "other"; ref: string };

export function classifyRef(ref: string): PushedRef {
  if (ref.startsWith("refs/heads/") && ref.length > 11)
    return { kind: "branch", name: ref.slice(11) };
  if (ref.startsWith("refs/tags/") && ref.length > 10) return { kind: "tag", name: ref.slice(10) };
  return { kind: "other", ref };
}

/** Why a pattern is unusable, or undefined when it is fine. */
export function refPatternProblem(pattern: string): string | undefined {
  if (pattern.length === 0 || pattern.length > MAX_PATTERN_LENGTH) {
    return `must be 1 to ${MAX_PATTERN_LENGTH} characters`;
  }
  // Characters git forbids in ref names (git-check-ref-format), but `*` and `?` which are globs.
  if (/[\s\\[~^:]/.test(pattern) || hasControlCharacter(pattern)) {
    return "may not contain whitespace, control characters or any of \\ [ ~ ^ :";
  }
  return undefined;
}

function globToRegExp(pattern: string): RegExp {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i]!;
    if (char === "*" && pattern[i + 1] === "*") {
      source += ".*";
      i++;
    } else if (char === "*") source += "[^/]*";
    else if (char === "?") source += "[^/]";
    else source += char.replace(/[.+^${}()|\]]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}

/** Whether `name` matches one of the glob patterns. */
export function matchesAny(patterns: readonly string[], name: string): boolean {
  return patterns.some((pattern) => globToRegExp(pattern).test(name));
}

/** Undefined when the filter admits the ref; otherwise the reason it does not. */
export function refFilterRefusal(filter: RefFilter, ref: string): string | undefined {
  const pushed = classifyRef(ref);
  if (pushed.kind === "other") return `ref ${ref} is neither a branch nor a tag`;
  const patterns = pushed.kind === "branch" ? filter.branches : filter.tags;
  if (matchesAny(patterns, pushed.name)) return undefined;
  const kinds = pushed.kind === "branch" ? "branches" : "tags";
  return patterns.length === 0
    ? `ref ${ref} is a ${pushed.kind} and the trigger builds no ${kinds}`
    : `ref ${ref} does not match the ${kinds} filter ${JSON.stringify(patterns)}`;
}

// ---- tag templates --------------------------------------------------------------------------

type TemplatePart =
  | { kind: "literal"; text: string }
  | { kind: "branch" }
  | { kind: "tag" }
  | { kind: "sha"; length: number };

interface ParsedTemplate {
  parts: TemplatePart[];
  onlyDefaultBranch: boolean;
}

const DEFAULT_SUFFIX = "@default";
const FULL_SHA = 64;

/** The parsed template, or the reason it is malformed. */
export function parseTagTemplate(template: string): ParsedTemplate | string {
  if (template.length === 0 || template.length > MAX_TEMPLATE_LENGTH) {
    return `must be 1 to ${MAX_TEMPLATE_LENGTH} characters`;
  }
  const onlyDefaultBranch = template.endsWith(DEFAULT_SUFFIX);
  const body = onlyDefaultBranch ? template.slice(0, -DEFAULT_SUFFIX.length) : template;
  if (body === "") return "has nothing before @default";
  const parts: TemplatePart[] = [];
  const token = /\{([^{}]*)\}|([^{}]+)|([{}])/g;
  for (const match of body.matchAll(token)) {
    const [, placeholder, literal, stray] = match;
    if (stray !== undefined) return `has an unmatched ${stray}`;
    if (literal !== undefined) {
      if (!/^[A-Za-z0-9_.-]+$/.test(literal)) {
        return `literal text ${JSON.stringify(literal)} may only use letters, digits, _ . -`;
      }
      parts.push({ kind: "literal", text: literal });
      continue;
    }
    const sha = /^sha(?::(\d{1,2}))?$/.exec(placeholder!);
    if (sha) {
      const length = sha[1] === undefined ? FULL_SHA : Number(sha[1]);
      if (length < 1 || length > FULL_SHA) return `{sha:N} needs 1 ≤ N ≤ ${FULL_SHA}`;
      parts.push({ kind: "sha", length });
    } else if (placeholder === "branch" || placeholder === "tag") {
      parts.push({ kind: placeholder });
    } else {
      return `unknown placeholder {${placeholder}} (known: {branch}, {tag}, {sha}, {sha:N})`;
    }
  }
  const names = new Set(parts.map((part) => part.kind));
  if (names.has("branch") && names.has("tag")) return "cannot use both {branch} and {tag}";
  if (onlyDefaultBranch && names.has("tag")) return "{tag} never applies with @default";
  return { parts, onlyDefaultBranch };
}

/** What a push offers the templates. */
export interface PushFacts {
  ref: string;
  commit: string;
  /** The repository's default branch name, when known. */
  defaultBranch: string | undefined;
}

export interface TagExpansion {
  /** Valid, distinct tags in template order. */
  tags: string[];
  /** Templates that gave no tag, each with the reason. */
  skipped: { template: string; reason: string }[];
}

/** Expands the templates for one push (templates are assumed valid; a malformed one is skipped). */
export function expandTagTemplates(templates: readonly string[], push: PushFacts): TagExpansion {
  const pushed = classifyRef(push.ref);
  const tags: string[] = [];
  const skipped: TagExpansion["skipped"] = [];
  for (const template of templates) {
    const parsed = parseTagTemplate(template);
    if (typeof parsed === "string") {
      skipped.push({ template, reason: `malformed template: ${parsed}` });
      continue;
    }
    if (parsed.onlyDefaultBranch) {
      const onDefault =
        pushed.kind === "branch" &&
        push.defaultBranch !== undefined &&
        pushed.name === push.defaultBranch;
      if (!onDefault) {
        skipped.push({ template, reason: `${push.ref} is not the default branch` });
        continue;
      }
    }
    let text = "";
    let missing: string | undefined;
    for (const part of parsed.parts) {
      if (part.kind === "literal") text += part.text;
      else if (part.kind === "sha") text += push.commit.slice(0, part.length);
      else if (pushed.kind === part.kind) text += pushed.name.replaceAll("/", "-");
      else missing = `{${part.kind}} does not apply to ${push.ref}`;
    }
    if (missing) {
      skipped.push({ template, reason: missing });
      continue;
    }
    if (!parseTag(text)) {
      skipped.push({ template, reason: `${JSON.stringify(text)} is not a valid tag` });
      continue;
    }
    if (!tags.includes(text)) tags.push(text);
  }
  return { tags, skipped };
}

// ---- paths inside the source ----------------------------------------------------------------

/**
 * A relative path inside the build source, normalized (`./a//b` → `a/b`); the reason when it is
 * absolute, climbs out with `..`, or has characters no sane path has. `""` normalizes to `.`.
 */
export function normalizeSourcePath(path: string): { path: string } | { problem: string } {
  if (path.length > MAX_PATH_LENGTH) return { problem: `is longer than ${MAX_PATH_LENGTH}` };
  if (path.startsWith("/")) return { problem: "must be relative to the source root" };
  if (path.includes("\\") || hasControlCharacter(path)) {
    return { problem: "may not contain backslashes or control characters" };
  }
  const segments = path.split("/").filter((segment) => segment !== "" && segment !== ".");
  if (segments.includes("..")) return { problem: "may not contain .." };
  return { path: segments.length === 0 ? "." : segments.join("/") };
}

// ---- clone URLs -----------------------------------------------------------------------------

const MAX_CLONE_URL_LENGTH = 2048;
const CLONE_SCHEMES = ["https:", "http:", "git:", "ssh:"];

/**
 * Why a clone URL is refused, or undefined. A network URL (https, http, git, ssh) or scp-like
 * `user@host:path`; never a local path or `file:` (a build must not read the fleet host's files),
 * and never a password in the URL (it would be stored and shown in plain text).
 */
export function cloneUrlProblem(url: string): string | undefined {
  if (url.length === 0 || url.length > MAX_CLONE_URL_LENGTH) {
    return `must be 1 to ${MAX_CLONE_URL_LENGTH} characters`;
  }
  if (/\s/.test(url) || hasControlCharacter(url)) {
    return "may not contain whitespace or control characters";
  }
  if (/^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!\/\/)[^\s]+$/.test(url)) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "must be a URL (https://, http://, git://, ssh://) or user@host:path";
  }
  if (!CLONE_SCHEMES.includes(parsed.protocol)) {
    return `scheme ${parsed.protocol} is not allowed (use https, http, git or ssh)`;
  }
  if (parsed.hostname === "") return "must name a host";
  if (parsed.password !== "") return "may not carry a password; use a deploy key or a public URL";
  return undefined;
}
