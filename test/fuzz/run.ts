// The fuzzing CLI (Node only; docs/fuzzing.md):
//   node test/fuzz/run.ts <target|all> [--runs N] [--seconds S] [--seed N] [--hang-ms N] [--slow-ms N]
//   node test/fuzz/run.ts <target|all> --coverage     line coverage the kept corpus reaches
//   node test/fuzz/run.ts <target|all> --minimize     prune the corpus, no fuzzing
//   node test/fuzz/run.ts <target> --input FILE       run one input (a finding) and show what it does
//   node test/fuzz/run.ts --list
// Each run ends with one JSON line of results, also appended to test/.artifacts/fuzz/results.jsonl.
import { Buffer } from "node:buffer";
import { spawnSync } from "node:child_process";
import { appendFileSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { Coverage, lineCoverage } from "./coverage.ts";
import { readCorpus } from "./corpus.ts";
import { FINDINGS, Fuzzer, type RunOptions } from "./engine.ts";
import type { FuzzTarget } from "./target.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    runs: { type: "string", default: String(Number.MAX_SAFE_INTEGER) },
    seconds: { type: "string", default: "60" },
    seed: { type: "string" },
    "hang-ms": { type: "string", default: "5000" },
    "slow-ms": { type: "string", default: "500" },
    coverage: { type: "boolean", default: false },
    minimize: { type: "boolean", default: false },
    list: { type: "boolean", default: false },
    input: { type: "string" },
  },
});

// Coverage counts from the first line only for code loaded after it starts: targets load later.
const coverage = values.coverage ? new Coverage() : null;
const { TARGETS } = await import("./targets/index.ts");

if (values.list || positionals.length !== 1) {
  for (const t of TARGETS) process.stdout.write(`${t.name.padEnd(20)} ${t.about}\n`);
  if (!values.list)
    process.stdout.write("\nusage: node test/fuzz/run.ts <target|all> [--runs N] [--seconds S] [--seed N] [--coverage] [--minimize]\n");
  process.exit(values.list ? 0 : 2);
}

const chosen = positionals[0] === "all" ? TARGETS : TARGETS.filter((t) => t.name === positionals[0]);
if (chosen.length === 0) {
  process.stderr.write(`no target ${positionals[0]}: node test/fuzz/run.ts --list\n`);
  process.exit(2);
}

if (values.input) {
  try {
    await chosen[0].fuzz(new Uint8Array(readFileSync(values.input)));
    process.stdout.write(`${chosen[0].name}: the input meets every invariant\n`);
  } catch (e) {
    process.stdout.write(`${chosen[0].name}: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  }
  process.exit(0);
}

/** Line coverage of the target's sources by its corpus, measured in a fresh process so module loading counts. */
function measure(target: FuzzTarget): { covered: number; lines: number } {
  const child = spawnSync(process.execPath, [process.argv[1], target.name, "--coverage"], { encoding: "utf8" });
  const line = child.stdout.trim().split("\n").pop() ?? "";
  return (JSON.parse(line) as { coverage: { covered: number; lines: number } }).coverage;
}

const log = (line: string) => process.stdout.write(`${line}\n`);

for (const target of chosen) {
  if (coverage) {
    for (const { data } of readCorpus(target.name)) {
      try {
        await target.fuzz(data);
      } catch {
        // A failing corpus file is the replay suite's to report.
      }
    }
    log(JSON.stringify({ target: target.name, coverage: lineCoverage(coverage.takeRaw(), target.sources) }));
    continue;
  }
  const options: RunOptions = {
    runs: values.minimize ? 0 : Number(values.runs),
    seconds: Number(values.seconds),
    seed: Number(values.seed ?? Date.now() % 2 ** 31),
    hangMs: Number(values["hang-ms"]),
    slowMs: Number(values["slow-ms"]),
    log,
  };
  log(`${target.name}: seed ${options.seed}, up to ${options.runs} runs or ${options.seconds} s`);
  const stats = await new Fuzzer(target, options).fuzz();
  const { covered, lines } = measure(target);
  const result = {
    date: new Date().toISOString(),
    seed: options.seed,
    ...stats,
    coveredLines: covered,
    lines,
    findings: stats.findings.map((f) => ({
      kind: f.kind,
      signature: f.signature,
      input: Buffer.from(f.input).toString("latin1"),
      file: path.relative(process.cwd(), f.file),
    })),
  };
  mkdirSync(FINDINGS, { recursive: true });
  appendFileSync(path.join(FINDINGS, "results.jsonl"), `${JSON.stringify(result)}\n`);
  log(
    `${target.name}: ${stats.executions} runs in ${stats.seconds.toFixed(0)} s, corpus ${stats.corpusFiles} files (${stats.corpusBytes} bytes), ` +
      `${stats.blocks} blocks, lines ${covered}/${lines} (${((100 * covered) / lines).toFixed(1)}%), ${stats.findings.length} findings`,
  );
  log(JSON.stringify(result));
}
