// runtimes: node deno bun
// Replays the fuzzing corpus (test/fuzz/corpus/<target>/, kept by `npm run fuzz`) on every
// runtime: each input the fuzzer kept for reaching new code must still meet its target's
// invariants, so a regression in a peer-facing parser shows up in npm test without fuzzing.
// One row per target in the reliability report (docs/fuzzing.md says how the corpus grows).
import { describe } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { TARGETS } from "../fuzz/targets/index.ts";
import { readCorpus } from "../fuzz/corpus.ts";
import { Recorder } from "./record.ts";

// A parser that takes this long on one small input is stuck, not slow.
const INPUT_LIMIT_MS = 2000;

const recorder = new Recorder("fuzz-replay");

describe("fuzz corpus replay", () => {
  for (const target of TARGETS) {
    recorder.case("fuzz corpus", target.name, `${target.name}: every kept input meets its invariants`, async () => {
      const corpus = readCorpus(target.name);
      assert.ok(corpus.length > 0, `test/fuzz/corpus/${target.name}/ is empty: run node test/fuzz/run.ts ${target.name}`);
      for (const { name, data } of corpus) {
        const started = performance.now();
        try {
          await target.fuzz(data);
        } catch (e) {
          assert.fail(
            `test/fuzz/corpus/${target.name}/${name} ${JSON.stringify(Buffer.from(data).toString("latin1").slice(0, 300))}: ${(e as Error).stack ?? e}`,
          );
        }
        const ms = performance.now() - started;
        assert.ok(ms < INPUT_LIMIT_MS, `test/fuzz/corpus/${target.name}/${name} took ${ms.toFixed(0)} ms`);
      }
      return { inputs: corpus.length };
    });
  }
});
