// Runs a weft command line the same way for every command: finds the command, reads its flags,
// answers --help / -h (usage to stdout, exit 0), reports a wrong command line (what was wrong,
// then the usage, to stderr, exit 2), stops a long-running command on SIGTERM or SIGINT, and
// exits with the command's code (1 with a JSON log line when it failed).
//
// Flags are read with node:util parseArgs: Node, Deno and Bun all have it, with the same
// behaviour and messages, so the sidecar's CLI needs no package (a CLI library would be one more
// dependency for the three runtimes and the bundle, for the few value kinds of options.ts).
import process from "node:process";
import { parseArgs } from "node:util";
import { UsageError, type Running, type StopSignal } from "../../shared/command.ts";
import type { Command, Group, Registry } from "./command.ts";
import type { Options, Values } from "./options.ts";

const HELP = ["--help", "-h", "help"];
const SIGNALS: readonly StopSignal[] = ["SIGTERM", "SIGINT"];

/** Runs `argv` (the words after the program's name) with the commands of `registry`, then exits. */
export async function runCli(program: string, registry: Registry, argv: string[]): Promise<void> {
  const code = await dispatch(program, registry, argv).catch((error: Error) => {
    logError(error.message);
    return 1;
  });
  // Exit once what was written has reached stdout: Bun drops a pipe's pending writes on exit.
  process.stdout.write("", () => process.exit(code));
}

async function dispatch(program: string, registry: Registry, argv: string[]): Promise<number> {
  let at: Command | Group = registry;
  const words: string[] = [];
  let rest = argv;
  try {
    while (!("run" in at)) {
      const [word, ...more] = rest;
      if (word !== undefined && HELP.includes(word)) {
        // "weft help filter push" is "weft filter push --help".
        if (word !== "help" || more.length === 0) return help(at);
        rest = [...more, "--help"];
        continue;
      }
      if (word === undefined) throw new UsageError("give a command");
      const name = [...words, word].join(" ");
      const load: (() => Promise<Command | Group>) | undefined = Object.hasOwn(registry.commands, name)
        ? registry.commands[name]
        : undefined;
      if (!load) throw new UsageError(`unknown command "${word}"`);
      at = await load();
      words.push(word);
      rest = more;
    }
    const command: Command = at;
    const parsed = read(command, rest);
    if (parsed === "help") return help(command);
    const outcome = await command.run(parsed.values, parsed.positionals);
    return typeof outcome === "number" ? outcome : await untilStopped(outcome);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    const name = [program, ...words].join(" ");
    process.stderr.write(`${e.problems.map((p) => `${name}: ${p}\n`).join("")}\n${at.usage}`);
    return 2;
  }
}

function help(at: Command | Group): number {
  process.stdout.write(at.usage);
  return 0;
}

/** The command's values and positionals from `args` and the environment; every bad value is in the one UsageError. */
function read(command: Command, args: string[]): { values: Values<Options>; positionals: string[] } | "help" {
  const names = command.positionals ?? [];
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({
      args,
      options: {
        ...Object.fromEntries(
          Object.entries(command.options).map(([flag, o]) => [flag, o.short ? { type: o.type, short: o.short } : { type: o.type }]),
        ),
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: names.length > 0,
    });
  } catch (e) {
    if (String((e as { code?: unknown }).code).startsWith("ERR_PARSE_ARGS")) throw new UsageError((e as Error).message);
    throw e;
  }
  if (parsed.values.help) return "help";
  const problems: string[] = [];
  if (parsed.positionals.length > names.length)
    problems.push(`unexpected argument "${parsed.positionals[names.length]}": it takes ${names.join(" ")}`);
  const values: Values<Options> = {};
  for (const [flag, option] of Object.entries(command.options)) {
    const given = parsed.values[flag];
    const fromEnv = given === undefined && option.env ? process.env[option.env] || undefined : undefined;
    try {
      if (typeof given === "string") values[flag] = option.parse(given, `--${flag}`);
      else if (given === true) values[flag] = option.parse("", `--${flag}`);
      else if (fromEnv !== undefined) values[flag] = option.parse(fromEnv, option.env!);
      else values[flag] = option.default;
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  if (problems.length > 0) throw new UsageError(...problems);
  return { values, positionals: parsed.positionals };
}

/** The exit code of `running.stop(signal)`: its own, or 1 with an error line when it outlives `running.stopDeadlineMs`. */
export function stopWithinDeadline(running: Running, signal: StopSignal): Promise<number> {
  const stopping = running.stop(signal).then(() => running.ended ?? 0);
  const deadlineMs = running.stopDeadlineMs;
  if (deadlineMs === undefined) return stopping;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<number>((resolve) => {
    timer = setTimeout(() => {
      logError(
        `the ${signal} stop did not finish within ${deadlineMs / 1000} s; exiting without it (the log line before this one is the step that hung)`,
      );
      resolve(1);
    }, deadlineMs);
  });
  return Promise.race([stopping, late]).finally(() => clearTimeout(timer));
}

function logError(msg: string): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: "error", msg })}\n`);
}

/** The exit code of a long-running command: the first SIGTERM or SIGINT stops it, and later ones do not cut the stop short. */
function untilStopped(running: Running): Promise<number> {
  const signalled = new Promise<StopSignal>((resolve) => {
    for (const signal of SIGNALS) process.on(signal, () => resolve(signal));
  });
  const stopped = signalled.then((signal) => stopWithinDeadline(running, signal));
  return Promise.race(running.ended ? [stopped, running.ended] : [stopped]);
}
