// Where a helper program is: the drivers check their tools (bwrap, qemu, setpriv, …) before
// claiming to be available, against the PATH their children will get, not the daemon's.
import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { join } from "node:path";

/** The executable `command` resolves to on `path` (a name with a slash is taken as is). */
export async function findTool(command: string, path: string): Promise<string | undefined> {
  const candidates = command.includes("/")
    ? [command]
    : path
        .split(":")
        .filter((dir) => dir !== "")
        .map((dir) => join(dir, command));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}
