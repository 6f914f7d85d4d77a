// Records what a reliability suite checked, one row per case, for docs/reliability.md. Test
// runners cannot aggregate across processes and runtimes, so each suite writes its rows to
// its artifact (artifacts.ts) after every case, so that a suite that dies half way still
// leaves the rows it got to, and test/hostile/report.ts adds them up.
import { it } from "node:test";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { currentRuntime } from "../../proxy/runtime/current.ts";
import { ARTIFACTS, type Artifact, type Row } from "./artifacts.ts";

/** A case body; what it returns becomes the row's counts. */
export type CaseBody = () => Promise<Record<string, number> | void> | Record<string, number> | void;

export class Recorder {
  private readonly artifact: Artifact;
  private readonly file: string;

  /** Starts the suite's artifact afresh, so rows of an earlier run never linger. */
  constructor(suite: string) {
    const { name, version } = currentRuntime();
    this.artifact = { suite, runtime: name, version, rows: [] };
    this.file = path.join(ARTIFACTS, `${suite}-${name}.json`);
    mkdirSync(ARTIFACTS, { recursive: true });
    this.write();
  }

  /** Registers a test (node:test's `it`) whose outcome becomes a row of `kind` and `category`. */
  case(kind: string, category: string, name: string, body: CaseBody): void {
    it(name, async () => {
      try {
        const counts = await body();
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
