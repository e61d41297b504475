// Command-line parsing: command lookup, strict options, positional checks, help text.
import { describe, expect, it } from "vitest";
import { type CommandSpec, findCommand, helpText, oneOf, parseCommandLine, usage } from "./args.ts";
import { UsageError } from "./errors.ts";

const commands: CommandSpec[] = [
  {
    path: ["login"],
    args: ["url"],
    summary: "log in",
    options: { username: { type: "string", short: "u", description: "who" } },
  },
  {
    path: ["team", "create"],
    args: ["org", "team"],
    summary: "create a team",
    options: { role: { type: "string", value: "role", description: "r" } },
  },
  { path: ["team", "list"], args: ["org"], summary: "list teams" },
  { path: ["repo", "list"], args: ["namespace?"], summary: "list repos" },
  {
    path: ["logs"],
    args: [],
    summary: "logs",
    options: {
      kind: { type: "string", multiple: true, description: "k" },
      follow: { type: "boolean", short: "f", description: "f" },
    },
  },
];

function parse(argv: string[]) {
  const result = parseCommandLine(commands, argv);
  if (result.kind !== "command")
    throw new Error(`expected a command, got help for ${result.words}`);
  return result.parsed;
}

describe("parseCommandLine", () => {
  it("finds a two-word command and its positional arguments", () => {
    const parsed = parse(["team", "create", "acme", "devs", "--role", "admin"]);
    expect(parsed.command.path).toEqual(["team", "create"]);
    expect(parsed.args).toEqual({ org: "acme", team: "devs" });
    expect(parsed.options).toEqual({ role: "admin" });
    expect(parsed.json).toBe(false);
  });

  it("accepts options anywhere, = forms, short flags and --json", () => {
    const parsed = parse(["--json", "team", "create", "--role=creator", "acme", "devs"]);
    expect(parsed.args).toEqual({ org: "acme", team: "devs" });
    expect(parsed.options.role).toBe("creator");
    expect(parsed.json).toBe(true);
    expect(parse(["login", "-u", "alice", "http://x"]).options.username).toBe("alice");
  });

  it("collects repeated options and boolean short flags", () => {
    const parsed = parse(["logs", "--kind", "tag.push", "--kind", "team.*", "-f"]);
    expect(parsed.options).toEqual({ kind: ["tag.push", "team.*"], follow: true });
  });

  it("allows optional positionals to be left out", () => {
    expect(parse(["repo", "list"]).args).toEqual({ namespace: undefined });
    expect(parse(["repo", "list", "acme"]).args).toEqual({ namespace: "acme" });
  });

  it("refuses unknown options, missing and extra arguments, and unknown commands", () => {
    const fails = (argv: string[], message: RegExp) => {
      expect(() => parseCommandLine(commands, argv)).toThrow(UsageError);
      expect(() => parseCommandLine(commands, argv)).toThrow(message);
    };
    fails(["team", "create", "acme", "devs", "--rol", "x"], /Unknown option '--rol'/);
    fails(
      ["team", "create", "acme"],
      /missing <team>\nusage: edge-registry team create <org> <team>/,
    );
    fails(["team", "list", "acme", "extra"], /unexpected argument: extra/);
    fails(["team", "create", "acme", "devs", "--role"], /argument missing/);
    fails(["frobnicate"], /unknown command: frobnicate/);
    fails(["team", "frob"], /unknown command: team frob/);
  });

  it("answers help for no words, a group, or --help", () => {
    expect(parseCommandLine(commands, [])).toEqual({ kind: "help", words: [] });
    expect(parseCommandLine(commands, ["team"])).toEqual({ kind: "help", words: ["team"] });
    expect(parseCommandLine(commands, ["team", "create", "--help"])).toEqual({
      kind: "help",
      words: ["team", "create"],
    });
    expect(parseCommandLine(commands, ["-h"])).toEqual({ kind: "help", words: [] });
  });
});

describe("help", () => {
  it("writes a usage line with arguments and options", () => {
    expect(usage(commands[1]!)).toBe("edge-registry team create <org> <team> [--role <role>]");
    expect(usage(commands[3]!)).toBe("edge-registry repo list [<namespace>]");
  });

  it("lists a group's commands, aligned", () => {
    expect(helpText(commands, ["team"])).toContain(
      ["  team create <org> <team>  create a team", "  team list <org>           list teams"].join(
        "\n",
      ),
    );
  });

  it("describes one command with its options", () => {
    const text = helpText(commands, ["login"]);
    expect(text).toContain("usage: edge-registry login <url> [--username <username>]");
    expect(text).toMatch(/-u, --username <username>\s+who/);
    expect(text).toMatch(/--json\s+print the API's JSON/);
  });

  it("finds the longest matching command", () => {
    expect(findCommand(commands, ["team", "list", "acme"])?.path).toEqual(["team", "list"]);
    expect(findCommand(commands, ["team"])).toBeUndefined();
  });
});

describe("oneOf", () => {
  it("passes allowed values and names the choices otherwise", () => {
    expect(oneOf("read", ["read", "write"] as const, "the role")).toBe("read");
    expect(() => oneOf("owner", ["read", "write"] as const, "the role")).toThrow(
      'the role must be one of read, write (got "owner")',
    );
  });
});
