// What a command runs with: the parsed command line, the process's Io, a client for the logged-in
// registry, and one way to print (JSON for --json, text otherwise).
import { type CommandSpec, type Parsed, stringOption } from "./args.ts";
import { ApiClient, type Query } from "./client.ts";
import { resolveCredentials } from "./config.ts";
import { UsageError } from "./errors.ts";
import type { Io } from "./io.ts";
import { json } from "./output.ts";

export interface Command extends CommandSpec {
  run(ctx: CommandContext): Promise<void>;
}

export class CommandContext {
  readonly io: Io;
  readonly parsed: Parsed;
  readonly configFile: string;
  #client: ApiClient | undefined;

  constructor(io: Io, parsed: Parsed, configFile: string) {
    this.io = io;
    this.parsed = parsed;
    this.configFile = configFile;
  }

  get json(): boolean {
    return this.parsed.json;
  }

  /** A positional argument the parser already checked is present. */
  arg(name: string): string {
    const value = this.parsed.args[name];
    if (value === undefined) throw new UsageError(`missing <${name}>`);
    return value;
  }

  optionalArg(name: string): string | undefined {
    return this.parsed.args[name];
  }

  option(name: string): string | undefined {
    return stringOption(this.parsed, name);
  }

  flag(name: string): boolean {
    return this.parsed.options[name] === true;
  }

  /** A client for the registry the user logged in to (or REGISTRY_URL / REGISTRY_TOKEN). */
  async client(): Promise<ApiClient> {
    if (!this.#client) {
      const credentials = await resolveCredentials(this.io.env, this.configFile);
      this.#client = new ApiClient(credentials.url, credentials.token, this.io.fetch);
    }
    return this.#client;
  }

  /** `--json`: the value as JSON; otherwise the text `human` makes of it. */
  print<T>(value: T, human: (value: T) => string): void {
    this.io.stdout(this.json ? json(value) : human(value));
  }

  /** A note for people (stderr, so stdout stays parseable); silent under --json. */
  note(text: string): void {
    if (!this.json) this.io.stderr(text);
  }
}

/**
 * Every item of a paginated list, following `next_cursor`. Lists of teams, robots or
 * repositories are small enough to show whole; the audit log is not, and pages itself.
 */
export async function listAll<T>(
  client: ApiClient,
  path: string,
  key: string,
  query: Query = {},
): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 1000; pages++) {
    const page = await client.get<Record<string, unknown>>(path, { ...query, limit: 100, cursor });
    const chunk = page[key];
    if (!Array.isArray(chunk)) throw new Error(`GET ${path}: the response has no "${key}" list`);
    items.push(...(chunk as T[]));
    const next = page.next_cursor;
    if (typeof next !== "string" || next === "") return items;
    cursor = next;
  }
  return items;
}

/** A repository name, or a team `org/team`, as URL path: each segment encoded, slashes kept. */
export function pathOf(name: string): string {
  return name.split("/").map(encodeURIComponent).join("/");
}
