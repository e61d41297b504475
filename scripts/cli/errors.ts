// The CLI's failures and the exit code each one ends the process with.

/** Exit codes, documented in `edge-registry --help`, stable for scripts. */
export const EXIT = {
  ok: 0,
  /** The request failed for another reason (server error, network, bad response). */
  error: 1,
  /** The command line was wrong: unknown command or option, missing argument. */
  usage: 2,
  /** Not logged in, or the token was refused (401). */
  auth: 3,
  /** The account may not do this (403). */
  forbidden: 4,
  /** No such organization, repository, team, robot, token or user (404). */
  notFound: 5,
  /** It exists already, or conflicts with the current state (409). */
  conflict: 6,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class CliError extends Error {
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode = EXIT.error) {
    super(message);
    this.name = "CliError";
    this.exitCode = exitCode;
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT.usage);
    this.name = "UsageError";
  }
}

/** The exit code for an HTTP status the API answered with. */
export function exitCodeForStatus(status: number): ExitCode {
  if (status === 401) return EXIT.auth;
  if (status === 403) return EXIT.forbidden;
  if (status === 404) return EXIT.notFound;
  if (status === 409) return EXIT.conflict;
  if (status === 400 || status === 422) return EXIT.usage;
  return EXIT.error;
}
