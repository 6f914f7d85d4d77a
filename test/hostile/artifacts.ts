// Where reliability suites leave their results and in what form: one JSON file per suite and
// runtime, test/.artifacts/reliability/<suite>-<runtime>.json (git-ignored), which
// test/hostile/record.ts writes and test/hostile/report.ts reads.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";

export const ARTIFACTS = path.resolve(import.meta.dirname ?? ".", "..", ".artifacts", "reliability");

export interface Row {
  /** Which section of the report: "hostile input", "property", later e.g. "fault". */
  kind: string;
  category: string;
  name: string;
  outcome: "passed" | "failed";
  /** Numbers the report adds up per category, named as they read: { runs: 200 }, { "requests sent": 1000 }. */
  counts?: Record<string, number>;
}

/** A case as registered: its row, once it has run, has the same kind, category and name. */
export type Case = Pick<Row, "kind" | "category" | "name">;

export interface Artifact {
  suite: string;
  runtime: string;
  version: string;
  /**
   * Every case the suite registered on this runtime, run or not, so that the report can show
   * the ones that never ran (the run crashed or stopped first). Absent in older artifacts.
   */
  cases?: Case[];
  rows: Row[];
}

/** Every artifact, in file name order (so the report comes out the same for the same results). */
export function readArtifacts(): Artifact[] {
  if (!existsSync(ARTIFACTS)) return [];
  return readdirSync(ARTIFACTS)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => JSON.parse(readFileSync(path.join(ARTIFACTS, f), "utf8")) as Artifact);
}
