// The CLI's driver: parse the command line, run the command, turn every failure into a message on
// stderr and an exit code (see errors.ts). Never throws.
import { helpText, parseCommandLine } from "./args.ts";
import { COMMANDS } from "./commands.ts";
import { configPath } from "./config.ts";
import { CommandContext } from "./context.ts";
import { CliError, EXIT, type ExitCode } from "./errors.ts";
import type { Io } from "./io.ts";

const FOOTER = [
  "Credentials: `edge-registry login <url>` stores the URL and an app token in",
  "$XDG_CONFIG_HOME/edge-registry/config.json (~/.config/… by default, mode 0600);",
  "REGISTRY_URL and REGISTRY_TOKEN override it.",
  "",
  "Exit codes: 0 ok, 1 error, 2 usage, 3 not logged in or token refused, 4 forbidden,",
  "5 not found, 6 conflict (already exists).",
].join("\n");

export async function main(argv: readonly string[], io: Io): Promise<ExitCode> {
  try {
    const resolution = parseCommandLine(COMMANDS, argv);
    if (resolution.kind === "help") {
      io.stdout(helpText(COMMANDS, resolution.words, resolution.words.length === 0 ? FOOTER : ""));
      return EXIT.ok;
    }
    const ctx = new CommandContext(io, resolution.parsed, configPath(io.env, io.home));
    await resolution.parsed.command.run(ctx);
    return EXIT.ok;
  } catch (error) {
    if (error instanceof CliError) {
      io.stderr(`error: ${error.message}`);
      return error.exitCode;
    }
    io.stderr(`error: ${error instanceof Error ? error.message : String(error)}`);
    if (io.env.EDGE_REGISTRY_DEBUG && error instanceof Error && error.stack) io.stderr(error.stack);
    return EXIT.error;
  }
}
