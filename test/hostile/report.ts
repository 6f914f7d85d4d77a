// Writes docs/reliability.md from the artifacts the reliability suites left (artifacts.ts):
// cases by kind and category, and how each runtime did. `npm test` runs it last; by hand:
// node_modules/.bin/node test/hostile/report.ts. A new kind of row (a fault-injection suite's
// "fault" rows with { "requests sent": n, "requests failed": m }) needs no change here to be
// counted; an entry in KINDS gives its section an introduction.
import { writeFileSync } from "node:fs";
import path from "node:path";
import process from "node:process";
import { readArtifacts, type Artifact, type Case, type Row } from "./artifacts.ts";

const OUT = path.resolve(import.meta.dirname ?? ".", "..", "..", "docs", "reliability.md");

const RUNTIMES: [name: string, title: string][] = [
  ["node", "Node.js"],
  ["deno", "Deno"],
  ["bun", "Bun"],
];

/** Sections of the report in this order, then any other kind of row by name. */
const KINDS: Record<string, { title: string; about: string }> = {
  "hostile input": {
    title: "Hostile input",
    about:
      "Malformed and malicious input sent to the real thing. Each case asserts the exact error it gets, then that well-behaved clients " +
      "are still served and that nothing refused got through. For HTTP/1.1 (raw sockets, [test/hostile/http1.test.ts](../test/hostile/http1.test.ts)) " +
      "and HTTP/2 (frames built by hand, [test/hostile/http2.test.ts](../test/hostile/http2.test.ts)) the target is a sidecar in front of an upstream " +
      "that records what reaches it; the answer is a status and its `x-weft-error`, or a GOAWAY or RST_STREAM and its error code; the limits " +
      "involved are `limits` in [proxy-config.md](proxy-config.md). Each class of request smuggling and response desynchronisation " +
      "([test/hostile/desync.test.ts](../test/hostile/desync.test.ts)) and what weft does about it is listed in [http-framing.md](http-framing.md).",
  },
  property: {
    title: "Property tests",
    about:
      "Generated inputs ([fast-check](https://fast-check.dev), [test/hostile/properties.test.ts](../test/hostile/properties.test.ts)) for the proxy's own " +
      "parsers and codecs: what should round-trip does, and arbitrary input ends in the parser's own error, never a crash. " +
      "`runs` counts generated inputs; a failure prints the seed that replays it.",
  },
  "fuzz corpus": {
    title: "Fuzzing",
    about:
      "Coverage-guided fuzzing of every parser that faces a peer ([fuzzing.md](fuzzing.md)): the last campaign (2026-12-07) ran 17,665,874 " +
      "executions over nine targets; the bugs it found are fixed and listed there. The inputs the fuzzer kept are replayed here on every " +
      "runtime, each checked against its target's invariants ([test/hostile/fuzz-replay.test.ts](../test/hostile/fuzz-replay.test.ts)); " +
      "`inputs` counts them.",
  },
  fault: {
    title: "Faults under load",
    about:
      "A fault injected while an open-loop load ([test/support/open-loop.ts](../test/support/open-loop.ts)) runs on loopback: requests leave on their own " +
      "schedule whatever happened to earlier ones, bounded in count and time. `requests failed` must be 0 wherever the design says no request fails; " +
      "the one exception, an endpoint killed under the default retry budget, asserts its bound. `requests dropped` are requests that came due while " +
      "128 were already in flight, so were never sent: answers had fallen about half a second behind (the sidecars and the load share one process, " +
      "so a stalled process does that too). Each case asserts a bound on them, with its reason in the suite. Data-plane faults: [test/hostile/faults.test.ts](../test/hostile/faults.test.ts); " +
      "control-plane faults on a real API server: [test/control/faults.test.ts](../test/control/faults.test.ts).",
  },
  security: {
    title: "Security",
    about:
      "Who may call the control plane, and where secrets must never appear: the CA key, keys, pull-secret passwords and tokens are searched for in logs, " +
      "`/config_dump`, status, `weft status` and every answer ([test/control/security.test.ts](../test/control/security.test.ts)). What a filter may do is in " +
      "the Security category of hostile input. AccessPolicy (default deny, DENY before ALLOW, methods, normalized paths) and STRICT mTLS are enforced by " +
      "the inbound sidecar on every runtime ([test/access-policy.test.ts](../test/access-policy.test.ts)).",
  },
};

/** The control plane runs on Node only (docs/runtimes.md): its suites have no Deno or Bun rows by design. */
const nodeOnly = (suites: Iterable<string>) => [...suites].every((s) => s.startsWith("control-"));

/** How one runtime did on some cases. */
interface Cell {
  passed: number;
  failed: number;
  /** Cases registered (on any runtime) that have no row from this runtime: it crashed, stopped or skipped them. */
  notRun: number;
  counts: Record<string, number>;
}

/** Results of one category: every case any runtime registered or ran, and each one's outcome per runtime. */
interface Category {
  suites: Set<string>;
  cases: Map<string, { name: string; outcomes: Map<string, Row["outcome"]> }>;
  /** The rows' counts added up, per runtime. */
  counts: Map<string, Record<string, number>>;
}

function entry<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) map.set(key, (value = make()));
  return value;
}

const emptyCell = (): Cell => ({ passed: 0, failed: 0, notRun: 0, counts: {} });

function add(into: Cell, from: Cell): Cell {
  into.passed += from.passed;
  into.failed += from.failed;
  into.notRun += from.notRun;
  for (const [name, n] of Object.entries(from.counts)) into.counts[name] = (into.counts[name] ?? 0) + n;
  return into;
}

function group(artifacts: Artifact[]): Map<string, Map<string, Category>> {
  const kinds = new Map<string, Map<string, Category>>();
  const categoryOf = (c: Case) =>
    entry(
      entry(kinds, c.kind, () => new Map()),
      c.category,
      () => ({ suites: new Set(), cases: new Map(), counts: new Map() }),
    );
  // Keyed by suite too: two suites may name a case alike.
  const caseOf = (suite: string, c: Case) => {
    const category = categoryOf(c);
    category.suites.add(suite);
    return entry(category.cases, `${suite}\n${c.name}`, () => ({ name: c.name, outcomes: new Map() }));
  };
  for (const artifact of artifacts) {
    for (const c of artifact.cases ?? []) caseOf(artifact.suite, c);
    for (const row of artifact.rows) {
      caseOf(artifact.suite, row).outcomes.set(artifact.runtime, row.outcome);
      const counts = entry(categoryOf(row).counts, artifact.runtime, (): Record<string, number> => ({}));
      for (const [name, n] of Object.entries(row.counts ?? {})) counts[name] = (counts[name] ?? 0) + n;
    }
  }
  return kinds;
}

/** How `runtime` did on `category`; undefined where it is not meant to run (Node-only suites). */
function cellOf(category: Category, runtime: string): Cell | undefined {
  if (runtime !== "node" && nodeOnly(category.suites)) return undefined;
  const cell = emptyCell();
  for (const { outcomes } of category.cases.values()) {
    const outcome = outcomes.get(runtime);
    if (outcome === "passed") cell.passed++;
    else if (outcome === "failed") cell.failed++;
    else cell.notRun++;
  }
  cell.counts = { ...category.counts.get(runtime) };
  return cell;
}

/** Several cells added up; undefined when the runtime is meant to run none of them. */
function sum(cells: (Cell | undefined)[]): Cell | undefined {
  const present = cells.filter((c): c is Cell => c !== undefined);
  return present.length ? present.reduce(add, emptyCell()) : undefined;
}

const loud = (n: number, what: string) => (n ? `**${n} ${what}**` : `0 ${what}`);

function cellText(cell: Cell | undefined, withCounts = true): string {
  if (!cell) return "Node only";
  const result = `${cell.passed} passed, ${loud(cell.failed, "failed")}, ${loud(cell.notRun, "not run")}`;
  const counts = withCounts ? Object.entries(cell.counts).map(([name, n]) => `${n} ${name}`) : [];
  return counts.length ? `${result}; ${counts.join(", ")}` : result;
}

/** Text for a table cell: a "|" would end it. */
const cellSafe = (text: string) => text.replaceAll("|", "\\|");

function mark(outcome: Row["outcome"] | undefined, meant: boolean): string {
  if (!meant) return "–";
  return outcome === "passed" ? "✓" : outcome === "failed" ? "✗" : "not run";
}

export function render(artifacts: Artifact[]): string {
  const kinds = group(artifacts);
  const order = [...Object.keys(KINDS).filter((k) => kinds.has(k)), ...[...kinds.keys()].filter((k) => !KINDS[k]).sort()];
  const versions = RUNTIMES.map(([name, title]) => {
    const version = artifacts.find((a) => a.runtime === name)?.version;
    return version ? `${title} ${version}` : `${title} (not run)`;
  });
  const runtimeHeader = RUNTIMES.map(([, title]) => title).join(" | ");
  const lines = [
    "# Reliability",
    "",
    "What weft was shown to withstand, generated from the last run of the reliability suites: do not edit by hand.",
    "To regenerate it, run `npm test` (its last step writes this file), or run the suites on each runtime and then",
    "`node_modules/.bin/node test/hostile/report.ts`; each suite's rows come from its last run on each runtime",
    "(`test/.artifacts/reliability/<suite>-<runtime>.json`).",
    "",
    `Runtimes: ${versions.join(", ")}.`,
    "",
    "A case that a suite registered, or that another runtime ran, but that has no result from a runtime is **not run** there: its run " +
      "crashed or stopped before it, or skipped it. Per case: ✓ passed, ✗ failed, – not meant to run there (the control plane runs on Node only).",
    "",
    `| kind | cases | ${runtimeHeader} |`,
    `|---|---|${RUNTIMES.map(() => "---").join("|")}|`,
  ];
  const allCells: (Cell | undefined)[][] = RUNTIMES.map(() => []);
  let allCases = 0;
  for (const kind of order) {
    const categories = [...kinds.get(kind)!.values()];
    const cases = categories.reduce((n, c) => n + c.cases.size, 0);
    allCases += cases;
    // Outcomes only: a category's counts mean something within it, not summed with another's.
    const cells = RUNTIMES.map(([runtime], i) => {
      const cell = sum(categories.map((c) => cellOf(c, runtime)));
      allCells[i].push(cell);
      return cellText(cell, false);
    });
    lines.push(`| ${KINDS[kind]?.title ?? kind} | ${cases} | ${cells.join(" | ")} |`);
  }
  lines.push(`| **all** | ${allCases} | ${allCells.map((cells) => cellText(sum(cells), false)).join(" | ")} |`);
  for (const kind of order) {
    const categories = kinds.get(kind)!;
    lines.push("", `## ${KINDS[kind]?.title ?? kind}`, "");
    if (KINDS[kind]) lines.push(KINDS[kind].about, "");
    lines.push(`| category | suite | cases | ${runtimeHeader} |`, `|---|---|---|${RUNTIMES.map(() => "---").join("|")}|`);
    for (const [name, category] of categories) {
      const cells = RUNTIMES.map(([runtime]) => cellText(cellOf(category, runtime)));
      lines.push(`| ${cellSafe(name)} | ${[...category.suites].join(", ")} | ${category.cases.size} | ${cells.join(" | ")} |`);
    }
    for (const [name, category] of categories) {
      lines.push(
        "",
        `<details><summary>${name}: ${category.cases.size} cases</summary>`,
        "",
        `| case | ${runtimeHeader} |`,
        `|---|${RUNTIMES.map(() => "---").join("|")}|`,
      );
      for (const { name: caseName, outcomes } of category.cases.values()) {
        const marks = RUNTIMES.map(([runtime]) => mark(outcomes.get(runtime), cellOf(category, runtime) !== undefined));
        lines.push(`| ${cellSafe(caseName)} | ${marks.join(" | ")} |`);
      }
      lines.push("", "</details>");
    }
  }
  return `${lines.join("\n")}\n`;
}

// Imported by test/runner.test.ts for render; run, it writes the report.
if (import.meta.main) {
  const artifacts = readArtifacts();
  if (artifacts.length === 0) {
    process.stdout.write(
      "no reliability artifacts in test/.artifacts/reliability: run the suites first; docs/reliability.md left as it was\n",
    );
  } else {
    writeFileSync(OUT, render(artifacts));
    process.stdout.write(`wrote ${path.relative(process.cwd(), OUT)} from ${artifacts.length} artifacts\n`);
  }
}
