// runtimes: node deno bun
// The test tooling itself: what test/run.ts counts from each runtime's output (samples are
// real output, shortened), how the reliability report shows cases a runtime did not run, the
// open-loop drop bound, and Recorder.case's deadline. A runner that counts wrong reports more
// than the suites checked.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { nodeCounts, denoCounts, bunCounts, judge, type Counts, type Ended } from "./run.ts";
import { render } from "./hostile/report.ts";
import { guarded } from "./hostile/record.ts";
import { assertLoad, type LoadResult } from "./support/open-loop.ts";

/** What test/run.ts makes of a step that printed `output` and exited with `code`. */
function judged(count: (output: string) => Counts, output: string, ended: Partial<Ended> = {}) {
  const { passed, failed, skipped, problems } = judge(
    { name: "step", command: "", args: [], count },
    { code: 0, signal: null, hung: false, output, ...ended },
  );
  return { passed, failed, skipped, problems: problems.length };
}

// One suite on each runtime: describe("X") { describe("Y") { a, b }, c, fails, skipped }, then
// test("d"): 4 cases passed, 1 failed, 1 skipped, whatever each runner calls them.
const NESTED = {
  node: `▶ X
  ▶ Y
    ✔ a (0.79828ms)
    ✔ b (0.266207ms)
  ✔ Y (2.252245ms)
  ✔ c (0.241832ms)
  ✖ fails (1.105394ms)
  ﹣ skipped (0.16082ms) # SKIP
✖ X (5.069455ms)
✔ d (0.141524ms)
ℹ tests 6
ℹ suites 2
ℹ pass 4
ℹ fail 1
ℹ cancelled 0
ℹ skipped 1
ℹ todo 0
ℹ duration_ms 289.676772
`,
  // Deno's summary says "2 passed (4 steps)": 2 top-level tests, and the describe Y among the steps.
  deno: `running 2 tests from ./a.test.ts
X ...
  Y ...
    a ... ok (1ms)
    b ... ok (1ms)
  Y ... ok (16ms)
  c ... ok (1ms)
  fails ... FAILED (2ms)
  skipped ... ignored (0ms)
X ... FAILED (due to 1 failed step) (35ms)
d ... ok (332µs)

 ERRORS 

X ... fails => ext:deno_node/testing.ts:1:21231
error: AssertionError: Expected values to be strictly equal:

 FAILURES 

X ... fails => ext:deno_node/testing.ts:1:21231

FAILED | 1 passed (4 steps) | 1 failed (1 step) | 0 ignored (1 step) (112ms)
`,
  bun: `(pass) X > Y > a [0.04ms]
(pass) X > Y > b [0.02ms]
(pass) X > c [0.02ms]
(fail) X > fails [1.32ms]
(skip) X > skipped
(pass) d [0.04ms]

 4 pass
 1 skip
 1 fail
Ran 6 tests across 1 file. [40.00ms]
`,
};

describe("test/run.ts counts test cases alike on every runtime", () => {
  it("counts the leaves of nested suites, not Deno's tests and steps", () => {
    const expected = { passed: 4, failed: 1, skipped: 1, problems: 0 };
    assert.deepEqual(judged(nodeCounts, NESTED.node, { code: 1 }), expected);
    assert.deepEqual(judged(denoCounts, NESTED.deno, { code: 1 }), expected);
    assert.deepEqual(judged(bunCounts, NESTED.bun, { code: 1 }), expected);
  });

  it("keeps test output Deno captured out of the count", () => {
    const output = `running 1 test from ./o.test.ts
quiet ...
------- output -------
looks ... ok (1ms)
----- output end -----
quiet ... ok (3ms)

ok | 1 passed | 0 failed (3ms)
`;
    assert.deepEqual(judged(denoCounts, output), { passed: 1, failed: 0, skipped: 0, problems: 0 });
  });

  it("counts a Deno run that a test's process.exit stopped as crashed, its running case as failed", () => {
    const output = `running 1 test from ./crash-exit.test.ts
C ...
  one ... ok (1ms)
  exits ...
warning A test called Deno.exit(1) while the exit sanitizer was disabled (sanitizeExit: false). Aborting the test run.

The following tests were pending:

C ... exits => ext:deno_node/testing.ts:1:21231
C => ./crash-exit.test.ts:2:1
`;
    assert.deepEqual(judged(denoCounts, output, { code: 1 }), { passed: 1, failed: 1, skipped: 0, problems: 1 });
  });

  it("counts a suite whose hook failed: Node's cancelled cases, Deno's failed suites, Bun's errors", () => {
    // describe("H") { before throws; h1; h2 }, describe("A") { after throws; a1 }.
    const node =
      "▶ H\n  ✖ h1\n  ✖ h2\n✖ H (1.96ms)\n▶ A\n  ✔ a1 (0.46ms)\n✖ A (1.31ms)\nℹ tests 3\nℹ suites 2\nℹ pass 1\nℹ fail 0\nℹ cancelled 2\nℹ skipped 0\nℹ todo 0\n";
    const deno =
      "running 2 tests from ./hook.test.ts\nH ... FAILED (6ms)\nA ...\n  a1 ... ok (1ms)\nA ... FAILED (5ms)\n\n ERRORS \n\nH => ./hook.test.ts:2:1\n\nFAILED | 0 passed (1 step) | 2 failed (106ms)\n";
    const bun =
      "# Unhandled error between tests\nerror: before failed\n(pass) H > h1 [1.35ms]\n(pass) H > h2 [0.05ms]\n(pass) A > a1 [24.94ms]\n# Unhandled error between tests\nerror: after failed\n\n 3 pass\n 0 fail\n 2 errors\n";
    assert.deepEqual(judged(nodeCounts, node, { code: 1 }), { passed: 1, failed: 2, skipped: 0, problems: 0 });
    assert.deepEqual(judged(denoCounts, deno, { code: 1 }), { passed: 1, failed: 2, skipped: 0, problems: 0 });
    assert.deepEqual(judged(bunCounts, bun, { code: 1 }), { passed: 3, failed: 2, skipped: 0, problems: 0 });
  });

  it("counts Node's cancelled cases (a timeout) as failed", () => {
    const output =
      "▶ T\n  ✖ hangs (201.04ms)\n  ✔ slow but ok (301.82ms)\n✖ T (509.48ms)\nℹ tests 2\nℹ pass 1\nℹ fail 0\nℹ cancelled 1\nℹ skipped 0\nℹ todo 0\n";
    assert.deepEqual(judged(nodeCounts, output, { code: 1 }), { passed: 1, failed: 1, skipped: 0, problems: 0 });
  });

  it("counts a Bun run with no summary by its lines, and as crashed", () => {
    const output = "bun test v1.4.5 (a7733435c)\n\ncrash-exit.test.ts:\n(pass) C > one [1.11ms]\n";
    assert.deepEqual(judged(bunCounts, output, { code: 1 }), { passed: 1, failed: 1, skipped: 0, problems: 1 });
  });

  it("counts a hung, killed or failing step with nothing counted as at least one failure", () => {
    const half = "▶ X\n  ✔ a (1ms)\n  ✔ b (1ms)\n";
    assert.deepEqual(judged(nodeCounts, half, { code: null, signal: "SIGTERM", hung: true }), {
      passed: 2,
      failed: 1,
      skipped: 0,
      problems: 1,
    });
    assert.deepEqual(judged(nodeCounts, half, { code: null, signal: "SIGKILL" }), { passed: 2, failed: 1, skipped: 0, problems: 1 });
    assert.deepEqual(judged(bunCounts, NESTED.bun.replace(" 1 fail", " 0 fail").replace("(fail)", "(pass)"), { code: 1 }).failed, 1);
    assert.deepEqual(judged(denoCounts, "", { code: 1 }), { passed: 0, failed: 1, skipped: 0, problems: 1 });
  });
});

describe("the reliability report shows the cases a runtime did not run", () => {
  it("counts a case registered or run elsewhere as not run", () => {
    const cases = ["one", "two", "three"].map((name) => ({ kind: "fault", category: "c", name }));
    const row = (name: string, outcome: "passed" | "failed" = "passed") => ({ kind: "fault", category: "c", name, outcome });
    const text = render([
      { suite: "s", runtime: "node", version: "24", cases, rows: [row("one"), row("two"), row("three", "failed")] },
      // Deno stopped after its first case; Bun's artifact predates the list of cases.
      { suite: "s", runtime: "deno", version: "2", cases, rows: [row("one")] },
      { suite: "s", runtime: "bun", version: "1", rows: [row("one"), row("two")] },
    ]);
    assert.match(
      text,
      /\| Faults under load \| 3 \| 2 passed, \*\*1 failed\*\*, 0 not run \| 1 passed, 0 failed, \*\*2 not run\*\* \| 2 passed, 0 failed, \*\*1 not run\*\* \|/,
    );
    assert.match(text, /\| three \| ✗ \| not run \| not run \|/);
  });
});

describe("open-loop load bounds", () => {
  const result = (failed: number, dropped: number): LoadResult => ({
    sent: 1000 - dropped,
    ok: 1000 - dropped - failed,
    failed,
    dropped,
    byStatus: {},
    errors: {},
    lateMs: 40,
  });
  it("fails on dropped requests beyond the bound, with the numbers", () => {
    assert.throws(
      () => assertLoad(result(0, 573), { maxFailed: 0, maxDropped: 10 }),
      /573 of 1000 requests were dropped .* more than the 10 allowed/,
    );
    assert.throws(
      () => assertLoad(result(3, 0), { maxFailed: 2, maxDropped: 0 }),
      /3 of 1000 requests sent failed, more than the 2 allowed/,
    );
    assertLoad(result(2, 10), { maxFailed: 2, maxDropped: 10 });
  });
});

describe("Recorder.case's deadline", () => {
  it("fails a case that outlives its timeout, saying so", async () => {
    await assert.rejects(
      guarded(() => new Promise(() => {}), 50),
      /did not finish within 0\.05 s \(Recorder\.case's timeout/,
    );
    assert.equal(await guarded(() => 7, 50), 7);
  });

  it("fails a case during which an error no one caught was thrown, on Deno too", {
    skip: "Deno" in globalThis ? undefined : "Node and Bun fail such a test themselves",
  }, async () => {
    await assert.rejects(
      guarded(async () => {
        setTimeout(() => {
          throw new Error("thrown in a timer");
        }, 1);
        await new Promise((r) => setTimeout(r, 50));
      }, 1000),
      /an error no one caught was thrown during the case: Error: thrown in a timer/,
    );
  });
});
