// `npm test`: installs and builds what the suites need (test/setup.ts), checks which part imports
// which (test/boundaries.ts), formatting and lint (Biome) and types, then runs every suite on the
// runtimes it declares: Node, then Deno, then Bun. Ends with one line that counts everything:
// "N passed, N failed", in test cases (each `it` or `test`, counted alike on the three runtimes);
// a step that crashed, hung or failed without a failed case to show for it counts as at least one
// failure.
//
//   node test/run.ts [--runtime node|deno|bun]... [FRAGMENT...]
//
// A FRAGMENT picks the suites whose path contains it, --runtime the runtimes to run them on
// (default: every runtime each declares); setup then builds only what the picked suites need.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, existsSync, rmSync } from "node:fs";
import process from "node:process";
import path from "node:path";
import { ARTIFACTS } from "./hostile/artifacts.ts";
import { isNeed, NEEDS, setUp, type Need } from "./setup.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..");

/** The folders under `dir` (relative to the root) that hold a *.test.ts. */
function foldersWithTests(dir: string): string[] {
  const entries = readdirSync(path.join(root, dir), { withFileTypes: true });
  const here = entries.some((e) => e.isFile() && e.name.endsWith(".test.ts")) ? [dir] : [];
  return [...here, ...entries.filter((e) => e.isDirectory()).flatMap((e) => foldersWithTests(`${dir}/${e.name}`))];
}
const bin = (name: string) => path.join(root, "node_modules", ".bin", name);

// The suites are the *.test.ts in these folders, and the unit tests beside the code under proxy/
// (test/k8s/'s are run by hand). Each declares on
// its first line the runtimes it runs on and, on the second, anything slow to build it needs
// (test/setup.ts's NEEDS):
//   // runtimes: node deno bun
//   // needs: k8s helm
// The data plane runs on all three runtimes; the control plane on Node only (docs/runtimes.md).
const SUITE_DIRS = ["test", "test/hostile", "test/control", ...foldersWithTests("proxy")];
const RUNTIMES = ["node", "deno", "bun"] as const;
type Runtime = (typeof RUNTIMES)[number];
const isRuntime = (name: string): name is Runtime => (RUNTIMES as readonly string[]).includes(name);

interface Suite {
  file: string;
  runtimes: readonly Runtime[];
  needs: readonly Need[];
}

const words = (line: string, re: RegExp) => re.exec(line)?.[1]?.trim().split(/\s+/).filter(Boolean);

/** Every suite as it declares itself, and one line for each suite whose declaration is missing or wrong. */
function readSuites(): { suites: Suite[]; problems: string[] } {
  const suites: Suite[] = [];
  const problems: string[] = [];
  for (const dir of SUITE_DIRS) {
    for (const name of readdirSync(path.join(root, dir)).filter((f) => f.endsWith(".test.ts"))) {
      const file = `${dir}/${name}`;
      const [first = "", second = ""] = readFileSync(path.join(root, file), "utf8").split("\n", 2);
      const runtimes = words(first, /^\/\/ runtimes:(.*)$/);
      if (!runtimes?.length) {
        problems.push(
          `${file}: its first line must say which runtimes the suite runs on, as "// runtimes: node deno bun" (any of ${RUNTIMES.join(", ")}; CONTRIBUTING.md)`,
        );
        continue;
      }
      const needs = words(second, /^\/\/ needs:(.*)$/) ?? [];
      const wrong = [
        ...runtimes
          .filter((r) => !isRuntime(r))
          .map((r) => `unknown runtime "${r}" on its "// runtimes:" line (the runtimes are ${RUNTIMES.join(", ")})`),
        ...needs
          .filter((n) => !isNeed(n))
          .map((n) => `unknown need "${n}" on its "// needs:" line (the needs are ${NEEDS.join(", ")}: test/setup.ts)`),
      ];
      if (wrong.length) problems.push(`${file}: ${wrong.join("; ")}`);
      else suites.push({ file, runtimes: runtimes as Runtime[], needs: needs as Need[] });
    }
  }
  return { suites, problems };
}

const USAGE = "usage: node test/run.ts [--runtime node|deno|bun]... [FRAGMENT...]";

/** The command line: suite path fragments and the runtimes asked for (all when none is), or what is wrong with it. */
function parseArgs(args: readonly string[]): { fragments: string[]; runtimes: ReadonlySet<Runtime> } | string {
  const fragments: string[] = [];
  const runtimes = new Set<Runtime>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--runtime" || arg.startsWith("--runtime=")) {
      const value = arg === "--runtime" ? args[++i] : arg.slice("--runtime=".length);
      if (!value || !isRuntime(value)) return `--runtime takes one of ${RUNTIMES.join(", ")}, not ${value ? `"${value}"` : "nothing"}`;
      runtimes.add(value);
    } else if (arg.startsWith("-")) return `unknown option ${arg}`;
    else fragments.push(arg);
  }
  return { fragments, runtimes: runtimes.size ? runtimes : new Set(RUNTIMES) };
}

/** Test cases (node:test's `it`/`test` leaves, never the `describe` around them) as a runner reported them. */
export interface Counts {
  passed: number;
  failed: number;
  skipped: number;
  /** The runner printed its closing summary; a run that ends without one crashed or was stopped. */
  finished: boolean;
}

export interface Step {
  name: string;
  command: string;
  args: string[];
  /** For steps that run tests: what the output says. Other steps count only as failed or not. */
  count?: (output: string) => Counts;
}

const plain = (output: string) => output.replace(/\x1b\[[0-9;]*m/g, "");

/** The number after the last match of `re`, or undefined when it never matched. */
const last = (output: string, re: RegExp) => {
  const all = [...output.matchAll(re)];
  return all.length ? Number(all[all.length - 1][1]) : undefined;
};

type Outcome = "passed" | "failed" | "skipped";
/** One line of a runner's tree output: a test or suite opening, or one's outcome. */
type TreeLine = { open: string; indent: number } | { name: string; indent: number; outcome: Outcome } | "failure" | "end" | undefined;

/**
 * Counts the leaves of a runner's tree output (Deno's, and Node's spec reporter): a result
 * line that closes an opening with results inside is a suite, any other result line is a test
 * case. A suite that failed with no failed case inside failed on its own (a hook) and counts
 * once. `cutOff`: cases opened and never closed, which were running if the output stopped there.
 */
export function countLeaves(output: string, parse: (line: string) => TreeLine): Omit<Counts, "finished"> & { cutOff: number } {
  const counts = { passed: 0, failed: 0, skipped: 0, cutOff: 0 };
  const open: { name: string; indent: number; parent: boolean; failedBefore: number }[] = [];
  const cutOff = (entry: (typeof open)[number]) => {
    if (!entry.parent) counts.cutOff++;
  };
  for (const line of plain(output).split("\n")) {
    const parsed = parse(line);
    if (parsed === "end") break;
    if (parsed === "failure") {
      counts.failed++;
      continue;
    }
    if (!parsed) continue;
    const indent = parsed.indent;
    while (open.length && open[open.length - 1].indent > indent) cutOff(open.pop()!);
    const top = open[open.length - 1];
    if ("open" in parsed) {
      if (top && top.indent === indent) cutOff(open.pop()!);
      if (open.length) open[open.length - 1].parent = true;
      open.push({ name: parsed.open, indent, parent: false, failedBefore: counts.failed });
      continue;
    }
    if (top && top.indent === indent && top.name === parsed.name) {
      open.pop();
      if (open.length) open[open.length - 1].parent = true;
      if (!top.parent) counts[parsed.outcome]++;
      else if (parsed.outcome === "failed" && counts.failed === top.failedBefore) counts.failed++;
      continue;
    }
    if (top && top.indent === indent) cutOff(open.pop()!);
    if (open.length) open[open.length - 1].parent = true;
    counts[parsed.outcome]++;
  }
  for (const entry of open) cutOff(entry);
  return counts;
}

// Deno prints "name ..." when a test with steps (or captured output) starts, "name ... ok (2ms)"
// when it ends, and the tests' captured output between "------- output -------" markers.
function denoLine(): (line: string) => TreeLine {
  let captured = false;
  return (line: string): TreeLine => {
    if (/^-{3,} (?:pre-test |post-test )?output end -{3,}$/.test(line)) return void (captured = false);
    if (/^-{3,} (?:pre-test |post-test )?output -{3,}$/.test(line)) return void (captured = true);
    if (captured) return undefined;
    // The ERRORS and FAILURES sections repeat names; the summary follows them.
    if (/^ (?:ERRORS|FAILURES) $/.test(line) || /^(?:ok|FAILED) \| /.test(line)) return "end";
    if (/^Uncaught error from .* FAILED$/.test(line)) return "failure";
    if (/^The following tests were pending:$/.test(line)) return "end";
    const result = /^( *)(.*) \.\.\. (ok|FAILED|ignored|cancelled)(?: \(due to [^()]*\))?(?: \([^()]*\))?$/.exec(line);
    if (result) {
      const outcome: Outcome = result[3] === "ok" ? "passed" : result[3] === "ignored" ? "skipped" : "failed";
      return { name: result[2], indent: result[1].length, outcome };
    }
    const opening = /^( *)(.*) \.\.\.$/.exec(line);
    return opening ? { open: opening[2], indent: opening[1].length } : undefined;
  };
}

// Node's spec reporter: "▶ suite", then its tests, then "✔ suite (2ms)"; a cancelled test has no time.
function nodeLine(line: string): TreeLine {
  if (/^ℹ tests \d+$/.test(line) || /^✖ failing tests:$/.test(line)) return "end";
  const opening = /^( *)▶ (.*)$/.exec(line);
  if (opening) return { open: opening[2], indent: opening[1].length };
  const result = /^( *)(✔|✖|﹣) (.*?)(?: \([\d.]+ms\))?(?: # .*)?$/.exec(line);
  if (!result) return undefined;
  return { name: result[3], indent: result[1].length, outcome: result[2] === "✔" ? "passed" : result[2] === "✖" ? "failed" : "skipped" };
}

/**
 * Node's own summary counts test cases; a cancelled one (timed out, or its suite's hook
 * failed) did not pass and counts as failed. Without the summary (the run was stopped), the tree.
 */
export function nodeCounts(output: string): Counts {
  const o = plain(output);
  const pass = last(o, /^ℹ pass (\d+)$/gm);
  if (pass === undefined) {
    const { passed, failed, skipped, cutOff } = countLeaves(o, nodeLine);
    return { passed, failed: failed + cutOff, skipped, finished: false };
  }
  const n = (re: RegExp) => last(o, re) ?? 0;
  return {
    passed: pass,
    failed: n(/^ℹ fail (\d+)$/gm) + n(/^ℹ cancelled (\d+)$/gm),
    skipped: n(/^ℹ skipped (\d+)$/gm) + n(/^ℹ todo (\d+)$/gm),
    finished: true,
  };
}

/**
 * Deno's summary counts top-level tests and, apart, "steps": every describe and it inside them,
 * so "2 passed (5 steps)" may be 4 cases or 5. The cases are the leaves of its tree.
 */
export function denoCounts(output: string): Counts {
  const { passed, failed, skipped, cutOff } = countLeaves(output, denoLine());
  const finished = /^(?:ok|FAILED) \| /m.test(plain(output));
  // A case still open when Deno stopped without its summary was the one running (a process.exit).
  return { passed, failed: finished ? failed : failed + cutOff, skipped, finished };
}

/**
 * Bun's summary counts test cases; "N error(s)" are failures outside any case (a hook, a
 * module that threw) that it does not count as failed. Without the summary, its per-case lines.
 */
export function bunCounts(output: string): Counts {
  const o = plain(output);
  const pass = last(o, /^ *(\d+) pass$/gm);
  const n = (re: RegExp) => last(o, re) ?? 0;
  if (pass !== undefined) {
    return {
      passed: pass,
      failed: n(/^ *(\d+) fail$/gm) + n(/^ *(\d+) errors?$/gm),
      skipped: n(/^ *(\d+) skip$/gm) + n(/^ *(\d+) todo$/gm),
      finished: true,
    };
  }
  const lines = (re: RegExp) => o.match(re)?.length ?? 0;
  return {
    passed: lines(/^\(pass\) /gm),
    failed: lines(/^\(fail\) /gm) + lines(/^# Unhandled error between tests$/gm),
    skipped: lines(/^\((?:skip|todo)\) /gm),
    finished: false,
  };
}

/** A runner step over `suites`; none when no suite matched (with no files, each runner would look for suites everywhere). */
const over = (suites: string[], step: (files: string[]) => Step): Step[] => (suites.length === 0 ? [] : [step(suites)]);
const nodeStep =
  (name: string) =>
  (files: string[]): Step => ({
    name,
    command: bin("node"),
    args: ["--test", "--test-reporter=spec", "--test-concurrency=1", ...files],
    count: nodeCounts,
  });

/** The steps that run `suites` on `runtimes`, between the static checks and the reliability report. */
function plan(suites: readonly Suite[], runtimes: ReadonlySet<Runtime>): Step[] {
  const on = (runtime: Runtime, only?: (s: Suite) => boolean) =>
    runtimes.has(runtime) ? suites.filter((s) => s.runtimes.includes(runtime) && (only?.(s) ?? true)).map((s) => s.file) : [];
  return [
    {
      name: "import boundaries (test/boundaries.ts)",
      command: bin("node"),
      args: ["test/boundaries.ts"],
    },
    // Formatting and lint at once, writing nothing: `npm run format` fixes what the first reports.
    {
      name: "format and lint (biome ci)",
      command: bin("biome"),
      args: ["ci", "--colors=off", "--error-on-warnings", "--max-diagnostics=50"],
    },
    {
      name: "typecheck (tsc --noEmit, strict)",
      command: bin("tsc"),
      args: ["--noEmit", "-p", "tsconfig.json"],
    },
    // Node's suites in two steps, each with its own time limit: those that run on the other
    // runtimes too, then the Node-only ones (the control plane's).
    ...over(
      on("node", (s) => s.runtimes.length > 1),
      nodeStep("Node.js"),
    ),
    ...over(
      on("node", (s) => s.runtimes.length === 1),
      nodeStep("Node.js, Node-only suites"),
    ),
    ...over(on("deno"), (files) => ({
      name: "Deno",
      command: bin("deno"),
      args: ["test", "-A", "--no-check", ...files],
      count: denoCounts,
    })),
    // Bun alone stops a test after 5 s by default, so a slow machine failed tests that pass on Node
    // and Deno; 60 s is Recorder.case's own default (CASE_TIMEOUT_MS, test/hostile/record.ts).
    ...over(on("bun"), (files) => ({
      name: "Bun",
      command: bin("bun"),
      args: ["test", "--timeout", "60000", ...files.map((f) => `./${f}`)],
      count: bunCounts,
    })),
    {
      name: "reliability report (docs/reliability.md)",
      command: bin("node"),
      args: ["test/hostile/report.ts"],
    },
  ];
}

// Every step takes minutes; one still running after this is a hang. WEFT_STEP_LIMIT_MS is for
// trying the runner itself.
const STEP_LIMIT_MS = Number(process.env.WEFT_STEP_LIMIT_MS) || 30 * 60_000;
const STEP_LIMIT = STEP_LIMIT_MS % 60_000 === 0 ? `${STEP_LIMIT_MS / 60_000} min` : `${STEP_LIMIT_MS / 1000} s`;

export interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Stopped at STEP_LIMIT_MS. */
  hung: boolean;
  output: string;
}

function run(step: Step): Promise<Ended> {
  return new Promise((resolve) => {
    if (!existsSync(step.command)) {
      resolve({ code: 127, signal: null, hung: false, output: `${step.command} is missing: run "npm install" first\n` });
      return;
    }
    process.stdout.write(`\n=== ${step.name}: ${path.basename(step.command)} ${step.args.join(" ")}\n`);
    // No FORCE_COLOR at all: Deno takes any value of it, "0" too, as "use colours".
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
    delete env.FORCE_COLOR;
    const child = spawn(step.command, step.args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    let hung = false;
    const take = (d: Buffer) => {
      output += d.toString();
      process.stdout.write(d);
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    // A suite whose process never exits (a handle left open after its last test) would hold
    // the run until CI's own limit.
    const timer = setTimeout(() => {
      hung = true;
      take(
        Buffer.from(
          `\n=== ${step.name}: still running after ${STEP_LIMIT}; stopping it. A test that never ends, or a suite's process that did not exit: look for a timer or socket left open after its last test.\n`,
        ),
      );
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 5000).unref();
    }, STEP_LIMIT_MS);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, hung, output });
    });
  });
}

/**
 * What a step counts for. A step that did not end normally counts at least one failure, since
 * the cases it never reached are not in its counts: hung, killed, ended without its runner's
 * summary (a crash: Deno stops at a test's process.exit), or failed with no failed case counted.
 */
export function judge(step: Step, ended: Ended): { passed: number; failed: number; skipped: number; problems: string[] } {
  const counts = step.count?.(ended.output) ?? { passed: 0, failed: 0, skipped: 0, finished: true };
  const problems: string[] = [];
  if (ended.hung) problems.push(`hung: stopped after ${STEP_LIMIT}`);
  else if (ended.signal) problems.push(`killed by ${ended.signal}`);
  else if (!counts.finished) problems.push(`crashed: exit ${ended.code} before the runner's summary`);
  else if (ended.code !== 0 && counts.failed === 0)
    problems.push(step.count ? `exit ${ended.code} with no failed test counted` : `exit ${ended.code}`);
  const failed = problems.length ? Math.max(1, counts.failed) : counts.failed;
  return { passed: counts.passed, failed, skipped: counts.skipped, problems };
}

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

// Imported by test/runner.test.ts for its counting; run, it runs the suites.
if (import.meta.main) {
  const args = parseArgs(process.argv.slice(2));
  if (typeof args === "string") {
    process.stderr.write(`${args}\n${USAGE}\n`);
    process.exit(2);
  }
  const { suites, problems } = readSuites();
  if (problems.length) {
    process.stderr.write(
      `suites that do not declare their runtimes as test/run.ts reads them:\n${problems.map((p) => `  ${p}\n`).join("")}`,
    );
    process.exit(1);
  }
  const { fragments, runtimes } = args;
  const picked = suites.filter(
    (s) => (fragments.length === 0 || fragments.some((f) => s.file.includes(f))) && s.runtimes.some((r) => runtimes.has(r)),
  );
  if (picked.length === 0) {
    process.stdout.write(`no suite matches ${fragments.join(" ")} on ${[...runtimes].join(", ")}\n`);
    process.exit(1);
  }
  const needs = new Set(picked.flatMap((s) => s.needs));
  process.stdout.write(`\n=== setup (test/setup.ts): Debian packages${[...needs].map((n) => `, ${n}`).join("")}\n`);
  const started = Date.now();
  try {
    await setUp(needs);
  } catch (e) {
    process.stdout.write(`=== setup: FAILED, so no suite ran: ${(e as Error).message}\n`);
    process.exit(1);
  }
  process.stdout.write(`=== setup: ok (${seconds(started)})\n`);
  // A full run starts the reliability report afresh, so a runtime that fails to start shows as not run.
  if (fragments.length === 0 && runtimes.size === RUNTIMES.length) rmSync(ARTIFACTS, { recursive: true, force: true });
  let passed = 0;
  let failed = 0;
  const failures: string[] = [];
  for (const step of plan(picked, runtimes)) {
    const ended = await run(step);
    const counts = judge(step, ended);
    passed += counts.passed;
    failed += counts.failed;
    const ok = ended.code === 0 && counts.failed === 0;
    if (!ok) failures.push(`${step.name} (${counts.problems[0] ?? `exit ${ended.code}`})`);
    const skipped = counts.skipped ? `, ${counts.skipped} skipped` : "";
    const why = counts.problems.length ? `, ${counts.problems.join("; ")}` : "";
    process.stdout.write(`=== ${step.name}: ${ok ? "ok" : "FAILED"}${why} (${counts.passed} passed, ${counts.failed} failed${skipped})\n`);
  }
  if (failures.length) process.stdout.write(`\nfailed steps: ${failures.join(", ")}\n`);
  process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
  process.exit(failures.length ? 1 : 0);
}
