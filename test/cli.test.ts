// runtimes: node deno bun
// The `weft` command line's conventions (bin/cli/runner.ts), for every command and subcommand in
// the registry (bin/commands/index.ts), as a user meets them: the real bin/weft.ts in a child
// process on the runtime running this suite. --help prints the usage to stdout and exits 0; a
// bogus flag, a bad port, a missing or unknown subcommand prints what was wrong, then the usage,
// to stderr and exits 2. Deno and Bun run the sidecar, not the control plane or the filter
// tools (docs/runtimes.md), so on them the suite covers `weft` itself and `weft proxy`; on Node,
// every command.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import process from "node:process";
import type { Command, Group } from "../bin/cli/command.ts";
import * as registry from "../bin/commands/index.ts";
import { stopWithinDeadline } from "../bin/cli/runner.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..");
const onNode = !("Deno" in globalThis) && !("Bun" in globalThis);

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `weft ARGS` on this runtime, with none of the injected sidecar's variables but `env`. */
function weft(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(WEFT_|POD_)/.test(name)));
  const argv = "Deno" in globalThis ? ["run", "-A", "bin/weft.ts", ...args] : ["bin/weft.ts", ...args];
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      argv,
      { cwd: root, env: { ...inherited, ...env }, encoding: "utf8", timeout: 30_000 },
      (_error, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }),
    );
  });
}

/** Exit 2, nothing on stdout, and on stderr `weft NAME: ` with the problem, a blank line and the usage. */
function assertUsageError(ran: Ran, name: string, problem: RegExp, usage: string): void {
  assert.equal(ran.code, 2, ran.stderr);
  assert.equal(ran.stdout, "");
  const [first, ...rest] = ran.stderr.split("\n");
  assert.match(first!, new RegExp(`^${name}: `), ran.stderr);
  assert.match(ran.stderr.slice(0, ran.stderr.length - usage.length), problem);
  assert.ok(rest.join("\n").endsWith(`\n${usage}`), `the usage follows the message:\n${ran.stderr}`);
}

function assertHelp(ran: Ran, usage: string): void {
  assert.equal(ran.code, 0, ran.stderr);
  assert.equal(ran.stdout, usage);
  assert.equal(ran.stderr, "");
}

/** A port flag refuses 70000 as "not a port". */
const isPort = (option: Command["options"][string]) => {
  try {
    option.parse("70000", "--x");
    return false;
  } catch (e) {
    return /is not a port/.test((e as Error).message);
  }
};

const names = Object.keys(registry.commands).filter((name) => onNode || name === "proxy");
const loaded = new Map<string, Command | Group>(
  await Promise.all(names.map(async (name) => [name, await registry.commands[name]!()] as const)),
);

describe("weft", () => {
  it("--help, -h and help print the usage to stdout and exit 0", async () => {
    for (const flag of ["--help", "-h", "help"]) assertHelp(await weft([flag]), registry.usage);
  });

  it("without a command, or with an unknown one, says so with the usage on stderr and exits 2", async () => {
    assertUsageError(await weft([]), "weft", /give a command/, registry.usage);
    assertUsageError(await weft(["bogus"]), "weft", /unknown command "bogus"/, registry.usage);
  });

  it("its usage names every command", () => {
    for (const name of Object.keys(registry.commands).filter((n) => !n.includes(" ")))
      assert.match(registry.usage, new RegExp(`^  ${name}\\b`, "m"), name);
  });

  it('"weft help COMMAND" is "weft COMMAND --help"', async () => {
    assertHelp(await weft(["help", "proxy"]), (loaded.get("proxy") as Command).usage);
  });
});

for (const [name, command] of loaded) {
  const words = name.split(" ");
  describe(`weft ${name}`, () => {
    it("--help and -h print its usage to stdout and exit 0", async () => {
      assertHelp(await weft([...words, "--help"]), command.usage);
      assertHelp(await weft([...words, "-h"]), command.usage);
    });

    if (!("run" in command)) {
      const subcommands = Object.keys(registry.commands)
        .filter((n) => n.startsWith(`${name} `))
        .map((n) => n.slice(name.length + 1));
      it("without a subcommand, or with an unknown one, says so with its usage on stderr and exits 2", async () => {
        assertUsageError(await weft(words), `weft ${name}`, /give a command/, command.usage);
        assertUsageError(await weft([...words, "bogus"]), `weft ${name}`, /unknown command "bogus"/, command.usage);
      });
      it("its usage names every subcommand", () => {
        for (const sub of subcommands) assert.match(command.usage, new RegExp(`^  ${sub}\\b`, "m"), sub);
      });
      return;
    }

    it("a bogus flag is named on stderr, before the usage, and exits 2", async () => {
      assertUsageError(await weft([...words, "--bogus"]), `weft ${name}`, /'--bogus'/, command.usage);
    });

    const ports = Object.entries(command.options)
      .filter(([, option]) => isPort(option))
      .map(([flag]) => flag);
    if (ports.length > 0) {
      it(`a bad port (${ports.map((p) => `--${p}`).join(", ")}) is refused with what a port is, and exits 2`, async () => {
        for (const flag of ports)
          assertUsageError(
            await weft([...words, `--${flag}`, "70000"]),
            `weft ${name}`,
            new RegExp(`--${flag}: "70000" is not a port \\([01]-65535\\)`),
            command.usage,
          );
      });
    }

    const most = command.positionals?.length ?? 0;
    it(`more than ${most} argument${most === 1 ? "" : "s"} is a usage error`, async () => {
      const extra = Array.from({ length: most + 1 }, (_, i) => `arg${i}`);
      assertUsageError(await weft([...words, ...extra]), `weft ${name}`, new RegExp(`arg${most}`), command.usage);
    });
  });
}

describe("weft proxy's settings from the environment (the injected sidecar's)", () => {
  it("a bad port in WEFT_ADMIN_PORT names the variable and exits 2", async () => {
    const usage = (loaded.get("proxy") as Command).usage;
    const ran = await weft(["proxy", "--control-plane", "http://127.0.0.1:1", "--namespace", "shop", "--pod", "web-0"], {
      WEFT_ADMIN_PORT: "http",
    });
    assertUsageError(ran, "weft proxy", /WEFT_ADMIN_PORT: "http" is not a port \(0-65535\)/, usage);
  });
});

describe("a long-running command's stop (stopWithinDeadline)", () => {
  it("exits with the command's code when its stop finishes in time", async () => {
    const running = { stopDeadlineMs: 5_000, stop: async () => {}, ended: Promise.resolve(3) };
    assert.equal(await stopWithinDeadline(running, "SIGTERM"), 3);
  });

  it("exits 1 when its stop outlives stopDeadlineMs, instead of hanging until SIGKILL", async () => {
    const running = { stopDeadlineMs: 50, stop: () => new Promise<void>(() => {}) };
    assert.equal(await stopWithinDeadline(running, "SIGTERM"), 1);
  });
});
