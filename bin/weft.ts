#!/usr/bin/env node
// The weft command line: its commands are the modules of bin/commands; what every command does
// alike (help, usage errors, signals, exit codes) is bin/cli/runner.ts.
import process from "node:process";
import { runCli } from "./cli/runner.ts";
import * as weft from "./commands/index.ts";

await runCli("weft", weft, process.argv.slice(2));
