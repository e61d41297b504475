#!/usr/bin/env node
// The build fleet daemon's entry point (see fleet/cli.ts for the options).
import { main } from "../fleet/cli.ts";

process.exitCode = await main(process.argv.slice(2));
