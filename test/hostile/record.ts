// Records what a reliability suite checked, one row per case, for docs/reliability.md. Test
// runners cannot aggregate across processes and runtimes, so each suite writes its rows to
// its artifact (artifacts.ts) after every case, so that a suite that dies half way still
// leaves the rows it got to, and test/hostile/report.ts adds them up. The artifact also lists
// every case the suite registered, so that the report shows the ones that never ran.
import { it } from "node:test";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { currentRuntime } from "../../proxy/runtime/current.ts";
import { ARTIFACTS, type Artifact, type Case, type Row } from "./artifacts.ts";

/** A case body; what it returns becomes the row's counts. */
export type CaseBody = () => Promise<Record<string, number> | void> | Record<string, number> | void;

export interface CaseOptions {
  /** Milliseconds the case may take before it fails; default CASE_TIMEOUT_MS. */
  timeout?: number;
}

/**
 * Long enough for the slowest case (a fault under 4 s of load, with its set-up) several times
 * over; short enough that a case that hangs fails on its own instead of stalling the whole
 * step until test/run.ts stops it at 30 minutes.
 */
export const CASE_TIMEOUT_MS = 60_000;

/** The runner's own deadline, a backstop behind ours: ours fails with a row and a reason. */
const RUNNER_GRACE_MS = 5_000;

// Deno's node:test passes a test during which an error was thrown outside its promise chain (in
// a timer or a socket handler, e.g. the in-process proxy's) and reports nothing; Node fails the
// test. Here such an error fails the case it happened in, on Deno as on Node.
const isDeno = "Deno" in globalThis;

/** Settles as `body` does, or rejects after `ms` or at an error no one caught meanwhile. */
export async function guarded<T>(body: () => Promise<T> | T, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onError: ((event: Event) => void) | undefined;
  const stopped = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `the case did not finish within ${ms / 1000} s (Recorder.case's timeout; pass { timeout } for a case that needs longer)`,
          ),
        ),
      ms,
    );
    if (isDeno) {
      onError = (event) => {
        const error = (event as ErrorEvent).error;
        reject(
          new Error(
            `an error no one caught was thrown during the case: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
          ),
        );
      };
      globalThis.addEventListener("error", onError);
    }
  });
  try {
    return await Promise.race([Promise.resolve().then(body), stopped]);
  } finally {
    clearTimeout(timer);
    if (onError) globalThis.removeEventListener("error", onError);
  }
}

export class Recorder {
  private readonly artifact: Artifact & { cases: Case[] };
  private readonly file: string;

  /** Starts the suite's artifact afresh, so rows of an earlier run never linger. */
  constructor(suite: string) {
    const { name, version } = currentRuntime();
    this.artifact = { suite, runtime: name, version, cases: [], rows: [] };
    this.file = path.join(ARTIFACTS, `${suite}-${name}.json`);
    mkdirSync(ARTIFACTS, { recursive: true });
    this.write();
  }

  /**
   * Registers a test (node:test's `it`) whose outcome becomes a row of `kind` and `category`.
   * It fails after `options.timeout` ms (default CASE_TIMEOUT_MS).
   */
  case(kind: string, category: string, name: string, body: CaseBody): void;
  case(kind: string, category: string, name: string, options: CaseOptions, body: CaseBody): void;
  case(kind: string, category: string, name: string, optionsOrBody: CaseOptions | CaseBody, maybeBody?: CaseBody): void {
    const [options, body] = typeof optionsOrBody === "function" ? [{}, optionsOrBody] : [optionsOrBody, maybeBody!];
    const timeout = options.timeout ?? CASE_TIMEOUT_MS;
    this.artifact.cases.push({ kind, category, name });
    this.write();
    it(name, { timeout: timeout + RUNNER_GRACE_MS }, async () => {
      try {
        const counts = await guarded(body, timeout);
        this.add({ kind, category, name, outcome: "passed", ...(counts ? { counts } : {}) });
      } catch (e) {
        this.add({ kind, category, name, outcome: "failed" });
        throw e;
      }
    });
  }

  private add(row: Row): void {
    this.artifact.rows.push(row);
    this.write();
  }

  private write(): void {
    writeFileSync(this.file, `${JSON.stringify(this.artifact, null, 1)}\n`);
  }
}
