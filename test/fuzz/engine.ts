// A coverage-guided fuzzing loop for Node (jazzer.js does not run here: its prebuilt addon needs
// a newer glibc and building it fetches sources from GitHub). Inputs are mutated from the
// corpus (mutate.ts) and run in batches; V8 block coverage (coverage.ts) is taken once per
// batch, and only a batch that reached new blocks is replayed input by input to keep those that
// did. The batch doubles after each batch with nothing new, so the cost of taking coverage
// fades as coverage saturates. Errors other than a target's accepted refusals are findings,
// kept with the smallest input that shows each; a watchdog thread ends an input that hangs.
import { Buffer } from "node:buffer";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Worker } from "node:worker_threads";
import { Coverage, ROOT } from "./coverage.ts";
import { addToCorpus, entryName, readCorpus, removeFromCorpus } from "./corpus.ts";
import { Rng, mutate, type MutationSource } from "./mutate.ts";
import { InvariantError, type FuzzTarget } from "./target.ts";

export const FINDINGS = path.join(ROOT, "test", ".artifacts", "fuzz");
const MAX_BATCH = 1024;

export interface RunOptions {
  runs: number;
  seconds: number;
  seed: number;
  /** An input running this long is a hang: the process is killed with it saved. */
  hangMs: number;
  /** An input running this long is reported as slow. */
  slowMs: number;
  log: (line: string) => void;
}

export interface Finding {
  kind: "crash" | "slow";
  /** What makes two findings the same bug: error type, place and message shape. */
  signature: string;
  message: string;
  /** The smallest input seen that shows it. */
  input: Uint8Array;
  file: string;
}

export interface RunStats {
  target: string;
  executions: number;
  seconds: number;
  corpusFiles: number;
  corpusBytes: number;
  /** Distinct V8 blocks the kept corpus reaches. */
  blocks: number;
  findings: Finding[];
}

/** Numbers and quoted text vary between inputs that show the same bug. */
const shape = (message: string) =>
  message
    .split("\n")[0]
    .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
    .replace(/\d+/g, "N")
    .slice(0, 160);

function signatureOf(e: unknown): { signature: string; message: string } {
  if (!(e instanceof Error)) return { signature: `non-Error ${typeof e}`, message: String(e) };
  const frame =
    (e.stack ?? "")
      .split("\n")
      .find((l) => l.includes(ROOT) && !l.includes("/test/fuzz/"))
      ?.trim() ?? "";
  const where = frame
    .replace(/^.*\((.*)\)$/, "$1")
    .replace(/^at /, "")
    .replace(`file://${ROOT}/`, "")
    .replace(/:\d+$/, "");
  return {
    signature: e instanceof InvariantError ? `${e.name}: ${shape(e.message)}` : `${e.name} at ${where}: ${shape(e.message)}`,
    message: e.stack ?? e.message,
  };
}

/** Shares the running input with the watchdog thread. */
class Watchdog {
  private readonly state: Int32Array;
  private readonly input: Uint8Array;
  private readonly worker: Worker;

  constructor(target: string, limitMs: number, capacity: number) {
    const shared = new SharedArrayBuffer(12 + capacity);
    this.state = new Int32Array(shared, 0, 3);
    this.input = new Uint8Array(shared, 12);
    mkdirSync(path.join(FINDINGS, target), { recursive: true });
    const file = path.join(FINDINGS, target, "hang");
    this.worker = new Worker(new URL("./watchdog.ts", import.meta.url), { workerData: { shared, limitMs, file } });
    this.worker.unref();
  }

  enter(data: Uint8Array): void {
    const n = Math.min(data.length, this.input.length);
    this.input.set(data.subarray(0, n));
    Atomics.store(this.state, 1, n);
    Atomics.add(this.state, 2, 1);
    Atomics.store(this.state, 0, 1);
  }

  leave(): void {
    Atomics.store(this.state, 0, 0);
  }

  stop(): Promise<number> {
    return this.worker.terminate();
  }
}

export class Fuzzer {
  private readonly target: FuzzTarget;
  private readonly coverage = new Coverage();
  private readonly seen = new Set<number>();
  private readonly corpus: Uint8Array[] = [];
  private readonly findings = new Map<string, Finding>();
  private readonly options: RunOptions;
  private readonly watchdog: Watchdog;
  executions = 0;

  constructor(target: FuzzTarget, options: RunOptions) {
    this.target = target;
    this.options = options;
    this.watchdog = new Watchdog(target.name, options.hangMs, Math.max(target.maxLength, 1 << 16));
  }

  /** Runs one input; records what it shows besides a pass; whether it passed. */
  private async run(data: Uint8Array): Promise<boolean> {
    this.executions++;
    this.watchdog.enter(data);
    const started = performance.now();
    try {
      const result = this.target.fuzz(data);
      if (result) await result;
    } catch (e) {
      this.watchdog.leave();
      const { signature, message } = signatureOf(e);
      this.record("crash", signature, message, data);
      return false;
    }
    this.watchdog.leave();
    const ms = performance.now() - started;
    if (ms > this.options.slowMs) this.record("slow", `slow (over ${this.options.slowMs} ms)`, `${ms.toFixed(0)} ms`, data);
    return true;
  }

  private record(kind: Finding["kind"], signature: string, message: string, data: Uint8Array): void {
    const known = this.findings.get(signature);
    if (known && known.input.length <= data.length) return;
    const file = path.join(FINDINGS, this.target.name, `${kind}-${entryName(data)}`);
    writeFileSync(file, data);
    if (!known)
      this.options.log(
        `${kind.toUpperCase()}: ${signature}\n  input: ${JSON.stringify(Buffer.from(data).toString("latin1"))}\n  ${message.split("\n").slice(0, 4).join("\n  ")}`,
      );
    this.findings.set(signature, { kind, signature, message, input: data.slice(), file });
  }

  /** Merges a take into what is seen; whether it held anything new. */
  private merge(blocks: number[]): boolean {
    const before = this.seen.size;
    for (const b of blocks) this.seen.add(b);
    return this.seen.size > before;
  }

  private async load(): Promise<void> {
    let entries = readCorpus(this.target.name).map((e) => e.data);
    if (entries.length === 0) {
      entries = await this.target.seeds();
      for (const e of entries) addToCorpus(this.target.name, e);
    }
    this.coverage.take();
    for (const data of entries) {
      if (await this.run(data)) this.merge(this.coverage.take());
      else this.coverage.take();
      this.corpus.push(data);
    }
  }

  async fuzz(): Promise<RunStats> {
    const { runs, seconds, seed, log } = this.options;
    const start = performance.now();
    await this.load();
    const rng = new Rng(seed);
    const source: MutationSource = {
      rng,
      dictionary: this.target.dictionary.map((t) => Buffer.from(t, "latin1")),
      other: () => rng.pick(this.corpus),
      maxLength: this.target.maxLength,
      json: this.target.json ?? false,
    };
    const elapsed = () => (performance.now() - start) / 1000;
    let batchSize = 1;
    let lastReport = 0;
    while (this.executions < runs && elapsed() < seconds) {
      const batch: Uint8Array[] = [];
      for (let i = 0; i < batchSize && this.executions < runs; i++) {
        const input = mutate(rng.pick(this.corpus), source);
        batch.push(input);
        await this.run(input);
      }
      const blocks = this.coverage.take();
      if (!blocks.some((b) => !this.seen.has(b))) {
        batchSize = Math.min(batchSize * 2, MAX_BATCH);
      } else {
        await this.attribute(batch);
        // What only failing inputs reached is not looked for again.
        this.merge(blocks);
        batchSize = 1;
      }
      if (elapsed() - lastReport >= 10) {
        lastReport = elapsed();
        log(
          `${this.target.name}: ${this.executions} runs in ${lastReport.toFixed(0)} s (${(this.executions / lastReport).toFixed(0)}/s), corpus ${this.corpus.length}, blocks ${this.seen.size}, findings ${this.findings.size}`,
        );
      }
    }
    const fuzzSeconds = elapsed();
    await this.minimize();
    await this.watchdog.stop();
    this.coverage.close();
    const kept = readCorpus(this.target.name);
    return {
      target: this.target.name,
      executions: this.executions,
      seconds: fuzzSeconds,
      corpusFiles: kept.length,
      corpusBytes: kept.reduce((n, e) => n + e.data.length, 0),
      blocks: this.seen.size,
      findings: [...this.findings.values()],
    };
  }

  /**
   * Finds the inputs of a batch that reached new code by halving it: a half whose replay
   * reaches nothing new is dropped whole, so a find costs a few takes, not one per input.
   */
  private async attribute(inputs: Uint8Array[]): Promise<void> {
    if (inputs.length === 1) {
      // A failing input is a finding, not corpus: the replay suite must pass.
      const passed = await this.run(inputs[0]);
      const blocks = this.coverage.take();
      if (passed && this.merge(blocks)) {
        this.corpus.push(inputs[0]);
        addToCorpus(this.target.name, inputs[0]);
      }
      return;
    }
    const middle = inputs.length >> 1;
    for (const half of [inputs.slice(0, middle), inputs.slice(middle)]) {
      for (const input of half) await this.run(input);
      if (this.coverage.take().some((b) => !this.seen.has(b))) await this.attribute(half);
    }
  }

  /**
   * Keeps the smallest set of corpus files, smallest first, that reaches every block the whole
   * corpus reaches, and none that fails: a file the replay suite would fail on is a finding.
   */
  async minimize(): Promise<void> {
    const entries = readCorpus(this.target.name).sort((a, b) => a.data.length - b.data.length || a.name.localeCompare(b.name));
    this.seen.clear();
    this.coverage.take();
    for (const entry of entries) {
      const passed = await this.run(entry.data);
      const blocks = this.coverage.take();
      if (!passed || !this.merge(blocks)) removeFromCorpus(this.target.name, entry.name);
    }
  }
}
