// What a weft command is to the runner (runner.ts). Each module of bin/commands is one: it
// exports its usage text, its options and run; a command with subcommands (weft filter) exports
// its usage text alone, and the registry lists its subcommands under its name ("filter push").
import type { Options, Values } from "./options.ts";

export type StopSignal = "SIGTERM" | "SIGINT";

/** What a long-running command (a server) gives back: the runner stops it on SIGTERM or SIGINT. */
export interface Running {
  /** Stops it gracefully (drains); called once, on the first signal. The process then exits 0, or with `ended`'s code. */
  stop(signal: StopSignal): Promise<void>;
  /** For one that may also end by itself (weft dashboard, when kubectl exits): its exit code, once it has ended. */
  readonly ended?: Promise<number>;
}

export interface Command<O extends Options = Options> {
  /** Printed for --help (to stdout) and after a usage error (to stderr). */
  readonly usage: string;
  readonly options: O;
  /** The arguments it takes besides the options, named as its usage names them; none when absent. */
  readonly positionals?: readonly string[];
  /** An exit code once done, or what keeps running. A UsageError it throws is reported like a bad flag. */
  run(values: Values<O>, positionals: string[]): Promise<number | Running>;
}

/** A command with subcommands: what it prints for --help, or when the subcommand is missing or unknown. */
export interface Group {
  readonly usage: string;
}

/** The program's usage, and every command and subcommand by its words after the program's name, each loaded only when it runs. */
export interface Registry extends Group {
  readonly commands: Readonly<Record<string, () => Promise<Command | Group>>>;
}

/** A run that imports its implementation only when it runs, so that --help and a bad flag load nothing more. */
export const lazy =
  <V>(load: () => Promise<(values: V, positionals: string[]) => Promise<number | Running> | number | Running>) =>
  async (values: V, positionals: string[]): Promise<number | Running> =>
    (await load())(values, positionals);

/** The command line was wrong (exit 2): each problem names the flag, value or argument, and what to give instead. */
export class UsageError extends Error {
  readonly problems: readonly string[];
  constructor(...problems: string[]) {
    super(problems.join("; "));
    this.name = "UsageError";
    this.problems = problems;
  }
}
