// What a weft command is to the runner (runner.ts). Each module of bin/commands is one: it
// exports its usage text, its options and run; a command with subcommands (weft filter) exports
// its usage text alone, and the registry lists its subcommands under its name ("filter push").
// A run returns a Running or throws a UsageError (shared/command.ts, since the implementations
// it loads live in the parts below bin/, which may not import it).
import type { Running } from "../../shared/command.ts";
import type { Options, Values } from "./options.ts";

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
