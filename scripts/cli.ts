#!/usr/bin/env node
// edge-registry: the command-line client of the management API (/api/v1). Installed as the
// package's bin; `npx edge-registry --help` lists the commands. See scripts/cli/.
import { processIo } from "./cli/io.ts";
import { main } from "./cli/main.ts";

const abort = new AbortController();
// The first Ctrl-C ends `logs --follow` cleanly; a second one exits at once.
process.once("SIGINT", () => {
  abort.abort();
  process.once("SIGINT", () => process.exit(130));
});

process.exitCode = await main(process.argv.slice(2), processIo(abort.signal));
// Exit once the output is flushed: a finished WebSocket (`logs <repo> <id> --follow`) would
// otherwise hold the process until its TCP connection times out (~10 s: workerd leaves it open).
await Promise.all(
  [process.stdout, process.stderr].map(
    (stream) => new Promise((resolve) => stream.write("", resolve)),
  ),
);
process.exit();
