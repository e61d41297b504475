// Names of accounts and groups, checked once at the edge: usernames and organizations share one
// namespace space and each becomes the first path component of repository names, so both follow
// the distribution-spec path-component grammar; teams and robot short names follow it too, which
// keeps `org/team` and `namespace+robot` unambiguous (neither `/` nor `+` can occur inside one).
import { invalid } from "./errors.ts";

// distribution-spec §"Pulling manifests": one <name> path component.
const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
export const MAX_NAME_LENGTH = 64;

export type NameKind = "username" | "organization" | "team" | "robot";

/** Returns the name when valid; otherwise throws a 400 that says what a valid one looks like. */
export function checkName(kind: NameKind, value: string): string {
  if (value.length === 0 || value.length > MAX_NAME_LENGTH || !COMPONENT.test(value)) {
    throw invalid(
      `${kind} ${JSON.stringify(value)} is invalid: use 1-${MAX_NAME_LENGTH} lowercase letters, ` +
        `digits and single separators (".", "_", "__", "-") between them`,
    );
  }
  return value;
}

export function isValidName(value: string): boolean {
  return value.length > 0 && value.length <= MAX_NAME_LENGTH && COMPONENT.test(value);
}

/** `namespace+shortname` → its parts (undefined when it is not a robot name). */
export function splitRobotName(name: string): { namespace: string; shortname: string } | undefined {
  const plus = name.indexOf("+");
  if (plus <= 0 || plus === name.length - 1) return undefined;
  return { namespace: name.slice(0, plus), shortname: name.slice(plus + 1) };
}

/**
 * A robot named in a URL or body under `namespace`: either its short name or `namespace+short`
 * (a robot of another namespace is refused here, before any lookup).
 */
export function robotShortname(namespace: string, name: string): string {
  const parts = splitRobotName(name);
  if (!parts) return checkName("robot", name);
  if (parts.namespace !== namespace) {
    throw invalid(`robot ${name} belongs to namespace ${parts.namespace}, not ${namespace}`);
  }
  return checkName("robot", parts.shortname);
}

/** A team named as `org/team` or just `team` (meaning a team of `org`). */
export function teamName(org: string, name: string): string {
  const slash = name.indexOf("/");
  if (slash < 0) return checkName("team", name);
  const owner = name.slice(0, slash);
  if (owner !== org) {
    throw invalid(`team ${name} belongs to organization ${owner}, not ${org}`);
  }
  return checkName("team", name.slice(slash + 1));
}

export const MIN_PASSWORD_LENGTH = 8;
const MAX_PASSWORD_LENGTH = 1024;

export function checkPassword(password: string): string {
  if (password.length < MIN_PASSWORD_LENGTH || password.length > MAX_PASSWORD_LENGTH) {
    throw invalid(
      `password must be ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters long`,
    );
  }
  return password;
}

export function checkEmail(email: string): string {
  if (email.length > 254 || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) {
    throw invalid(`email ${JSON.stringify(email)} is not an email address`);
  }
  return email;
}

/** Free-text labels (token names, robot descriptions): printable, bounded. */
export function checkLabel(what: string, value: string, max: number): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (value.trim().length === 0 || value.length > max || /[\u0000-\u001f\u007f]/.test(value)) {
    throw invalid(`${what} must be 1-${max} printable characters`);
  }
  return value;
}
