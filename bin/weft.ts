#!/usr/bin/env node
// The weft command line.
import process from "node:process";
import { parseArgs } from "node:util";

const USAGE = `usage: weft <command> [options]

commands:
  proxy --config FILE   run a sidecar from a proxy configuration file (docs/proxy-config.md)
  filter <command>      write, build, test and find WebAssembly filters ("weft filter help")
  inject -f FILE|-      add the sidecar to the pods and workloads in Kubernetes YAML (docs/injection.md)

Run with Node.js >= 22.18 (node bin/weft.ts), Deno >= 2 (deno run -A bin/weft.ts) or Bun >= 1.2 (bun bin/weft.ts).
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "proxy": {
      const { values } = parseArgs({ args: rest, options: { config: { type: "string", short: "c" } } });
      if (!values.config) {
        process.stderr.write("weft proxy: --config FILE is required (a JSON proxy configuration; see docs/proxy-config.md)\n");
        return 2;
      }
      const { runProxy } = await import("../proxy/main.ts");
      await runProxy(values.config);
      return -1; // keeps running until a signal
    }
    case "inject": {
      const { injectCommand } = await import("../control/inject/cli.ts");
      return injectCommand(rest);
    }
    case "filter": {
      const { filterCommand } = await import("../sdk/cli/command.ts");
      return filterCommand(rest);
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`weft: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // Exit once what was written has reached stdout: Bun drops a pipe's pending writes on exit.
    if (code >= 0) process.stdout.write("", () => process.exit(code));
  },
  (error: Error) => {
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: "error", msg: error.message })}\n`);
    process.exit(1);
  },
);
