// Command-line parsing: find the command named by the leading words, then parse the rest
// strictly against that command's options (node:util parseArgs), so a typo is a usage error
// instead of a silently ignored flag.
import { type ParseArgsOptionDescriptor, parseArgs } from "node:util";
import { UsageError } from "./errors.ts";

export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** Shown in help: `--role <role>`. */
  value?: string;
  description: string;
}

export type OptionSpecs = Record<string, OptionSpec>;

/** Options every command accepts. */
export const GLOBAL_OPTIONS: OptionSpecs = {
  json: { type: "boolean", description: "print the API's JSON instead of a table" },
  help: { type: "boolean", short: "h", description: "show help" },
};

export interface CommandSpec {
  /** The words that name it: ["org", "create"]. */
  path: readonly string[];
  /** Positional arguments, in order; a trailing `?` marks an optional one. */
  args: readonly string[];
  summary: string;
  options?: OptionSpecs;
}

export interface Parsed<C extends CommandSpec = CommandSpec> {
  command: C;
  /** Positional arguments by name (without the `?`). */
  args: Record<string, string | undefined>;
  options: Record<string, string | boolean | string[] | undefined>;
  json: boolean;
}

export type Resolution<C extends CommandSpec> =
  | { kind: "command"; parsed: Parsed<C> }
  /** `--help`, or a group name alone (`org`): help for the words given. */
  | { kind: "help"; words: string[] };

/** The command whose path is the longest prefix of the leading words. */
export function findCommand<C extends CommandSpec>(
  commands: readonly C[],
  words: readonly string[],
): C | undefined {
  let best: C | undefined;
  for (const command of commands) {
    if (command.path.length > words.length) continue;
    if (!command.path.every((word, i) => words[i] === word)) continue;
    if (!best || command.path.length > best.path.length) best = command;
  }
  return best;
}

export function parseCommandLine<C extends CommandSpec>(
  commands: readonly C[],
  argv: readonly string[],
): Resolution<C> {
  // First pass, lenient: only to learn which words name the command. Options may come before or
  // after the command words; values of unknown options may be taken as words, which only matters
  // when they come before the command, and then the strict pass below reports them.
  const loose = parseArgs({
    args: [...argv],
    options: { json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    strict: false,
    allowPositionals: true,
  });
  const words = loose.positionals;
  const command = findCommand(commands, words);
  if (!command) {
    if (words.length === 0 || loose.values.help === true) return { kind: "help", words };
    const group = commands.some((c) => c.path[0] === words[0]);
    if (group && words.length === 1) return { kind: "help", words };
    const known = group ? `${words[0]} ${words[1]}` : words[0];
    throw new UsageError(`unknown command: ${known} (see \`edge-registry --help\`)`);
  }
  if (loose.values.help === true) return { kind: "help", words: [...command.path] };

  const specs: OptionSpecs = { ...GLOBAL_OPTIONS, ...command.options };
  const descriptors: Record<string, ParseArgsOptionDescriptor> = {};
  for (const [name, spec] of Object.entries(specs)) {
    descriptors[name] = {
      type: spec.type,
      ...(spec.short ? { short: spec.short } : {}),
      ...(spec.multiple ? { multiple: true } : {}),
    };
  }
  let strict: ReturnType<typeof parseArgs>;
  try {
    strict = parseArgs({
      args: [...argv],
      options: descriptors,
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    throw new UsageError(
      `${(error as Error).message.replace(/\. To specify a positional.*$/s, "")}\nusage: ${usage(command)}`,
    );
  }
  const positionals = strict.positionals.slice(command.path.length);
  const args: Record<string, string | undefined> = {};
  const required = command.args.filter((arg) => !arg.endsWith("?")).length;
  if (positionals.length < required) {
    const missing = command.args[positionals.length]!;
    throw new UsageError(`missing <${missing.replace(/\?$/, "")}>\nusage: ${usage(command)}`);
  }
  if (positionals.length > command.args.length) {
    throw new UsageError(
      `unexpected argument: ${positionals[command.args.length]}\nusage: ${usage(command)}`,
    );
  }
  command.args.forEach((arg, i) => {
    args[arg.replace(/\?$/, "")] = positionals[i];
  });
  const { json, help: _help, ...options } = strict.values as Parsed["options"];
  return { kind: "command", parsed: { command, args, options, json: json === true } };
}

/** `edge-registry team create <org> <team> [--role <role>]` */
export function usage(command: CommandSpec): string {
  const parts = ["edge-registry", ...command.path];
  for (const arg of command.args)
    parts.push(arg.endsWith("?") ? `[<${arg.slice(0, -1)}>]` : `<${arg}>`);
  for (const [name, spec] of Object.entries(command.options ?? {})) {
    parts.push(spec.type === "boolean" ? `[--${name}]` : `[--${name} <${spec.value ?? name}>]`);
  }
  return parts.join(" ");
}

/** Help for one command, or the list of commands under the given words (all when none). */
export function helpText<C extends CommandSpec>(
  commands: readonly C[],
  words: readonly string[],
  footer = "",
): string {
  const exact = findCommand(commands, words);
  if (exact && exact.path.length === words.length) {
    const lines = [`usage: ${usage(exact)}`, "", exact.summary];
    const options = Object.entries({ ...exact.options, ...GLOBAL_OPTIONS });
    if (options.length > 0) {
      lines.push("", "options:");
      const labels = options.map(([name, spec]) => {
        const short = spec.short ? `-${spec.short}, ` : "";
        return `${short}--${name}${spec.type === "string" ? ` <${spec.value ?? name}>` : ""}`;
      });
      const width = Math.max(...labels.map((label) => label.length));
      for (const [i, [, spec]] of options.entries()) {
        lines.push(`  ${labels[i]!.padEnd(width)}  ${spec.description}`);
      }
    }
    return lines.join("\n");
  }
  const listed = commands.filter((c) => words.length === 0 || c.path[0] === words[0]);
  const signatures = listed.map((c) =>
    [...c.path, ...c.args.map((a) => (a.endsWith("?") ? `[${a.slice(0, -1)}]` : `<${a}>`))].join(
      " ",
    ),
  );
  const width = Math.max(...signatures.map((s) => s.length));
  const lines = [
    "usage: edge-registry <command> [options]",
    "",
    "commands:",
    ...listed.map((c, i) => `  ${signatures[i]!.padEnd(width)}  ${c.summary}`),
    "",
    "Every command takes --json (print the API's JSON) and --help.",
  ];
  if (footer) lines.push("", footer);
  return lines.join("\n");
}

/** A string option's value, or undefined. */
export function stringOption(parsed: Parsed, name: string): string | undefined {
  const value = parsed.options[name];
  return typeof value === "string" ? value : undefined;
}

/** One of the allowed values, or a usage error naming them. */
export function oneOf<T extends string>(
  value: string | undefined,
  allowed: readonly T[],
  what: string,
): T {
  if (value !== undefined && (allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(
    `${what} must be one of ${allowed.join(", ")}${value === undefined ? "" : ` (got "${value}")`}`,
  );
}
