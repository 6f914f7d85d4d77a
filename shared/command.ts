// What a command's implementation gives the command line back, wherever the implementation lives
// (the sidecar in proxy/, the control plane's commands in control/, the filter commands in sdk/):
// a Running to stop, or a UsageError for a bad command line. The runner (bin/cli/runner.ts) acts on both.

export type StopSignal = "SIGTERM" | "SIGINT";

/** What a long-running command (a server) gives back: the runner stops it on SIGTERM or SIGINT. */
export interface Running {
  /** Stops it gracefully (drains); called once, on the first signal. The process then exits 0, or with `ended`'s code. */
  stop(signal: StopSignal): Promise<void>;
  /**
   * How long a stop may take: past it the runner logs that the stop hung and exits 1, so a stop
   * waiting on something that never ends cannot outlive its signal (default: no limit).
   */
  readonly stopDeadlineMs?: number;
  /** For one that may also end by itself (weft dashboard, when kubectl exits): its exit code, once it has ended. */
  readonly ended?: Promise<number>;
}

/** The command line was wrong (exit 2): each problem names the flag, value or argument, and what to give instead. */
export class UsageError extends Error {
  readonly problems: readonly string[];
  constructor(...problems: string[]) {
    super(problems.join("; "));
    this.name = "UsageError";
    this.problems = problems;
  }
}
