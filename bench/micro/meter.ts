// Micro-benchmark: what metering costs (proxy/filters/meter.ts, docs/design/filter-deadlines.md):
// the time to instrument an AssemblyScript module of real-filter size, and how much slower
// metered code runs (a tight numeric loop and a string-heavy function), with a tick that does
// what proxy/filters/instance.ts does (read the clock, refill 20,000 units of fuel).
//   node bench/micro/meter.ts; deno run -A bench/micro/meter.ts; bun bench/micro/meter.ts
// Prints one JSON line per case.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { meter } from "../../proxy/filters/meter.ts";
import { currentRuntime } from "../../proxy/runtime/current.ts";
import { compileAssemblyScript, FIXTURE_FLAGS } from "../../test/support/asc.ts";

const source = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "test", "fixtures", "meter", "bench.ts");
const LIMIT = { maxMemoryPages: 256 };
const TICK_FUEL = 20_000;

function median(samples: number[]): number {
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1]!;
}

function time(fn: () => unknown): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

/** Median milliseconds of `fn` over `runs` runs (after a few unmeasured ones). */
function measure(fn: () => unknown, runs: number): number {
  for (let i = 0; i < runs; i++) fn();
  return median(Array.from({ length: runs }, () => time(fn)));
}

/** An instance whose tick acts like proxy/filters/instance.ts: throws past `deadline.at`, otherwise refills. */
function instantiate(module: WebAssembly.Module, deadline = { at: Infinity }): Record<string, (n: number) => unknown> {
  let fuel: WebAssembly.Global | null = null;
  const tick = () => {
    if (performance.now() > deadline.at) throw new Deadline();
    if (fuel) fuel.value = TICK_FUEL;
  };
  const abort = () => {
    throw new Error("abort");
  };
  const instance = new WebAssembly.Instance(module, { env: { abort }, "weft:meter": { tick } });
  fuel = (instance.exports.weft_fuel as WebAssembly.Global | undefined) ?? null;
  if (fuel) fuel.value = TICK_FUEL;
  return instance.exports as Record<string, (n: number) => unknown>;
}

class Deadline extends Error {}

const runtime = currentRuntime().name;
const builds = [
  { name: "optimized", wasm: (await compileAssemblyScript(source, FIXTURE_FLAGS)).wasm },
  { name: "unoptimized", wasm: (await compileAssemblyScript(source, ["--runtime", "incremental"])).wasm },
];
for (const { name, wasm } of builds) {
  const ms = measure(() => meter(wasm, LIMIT), 100);
  const grown = meter(wasm, LIMIT).bytes.length / wasm.length - 1;
  console.log(
    JSON.stringify({
      benchmark: `instrument a ${name} AssemblyScript module`,
      kilobytes: Math.round(wasm.length / 1024),
      milliseconds: Number(ms.toFixed(2)),
      sizeIncreasePercent: Number((grown * 100).toFixed(1)),
      runtime,
    }),
  );
}

const compile = (bytes: Uint8Array) => new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
const meteredModule = compile(meter(builds[0]!.wasm, LIMIT).bytes);
const plain = instantiate(compile(builds[0]!.wasm));
const metered = instantiate(meteredModule);
plain.prepare!(0);
metered.prepare!(0);
const cases: [string, string, number][] = [
  ["tight loop: sum 10M numbers", "sum", 10],
  ["string-heavy: 20k header lines built, split, searched, joined", "strings", 20_000],
  ["standard library mix (maps, sorting, number formatting)", "library", 2_000],
];
for (const [label, fn, n] of cases) {
  if (String(plain[fn]!(n)) !== String(metered[fn]!(n))) throw new Error(`${fn}(${n}) differs when metered`);
  // Interleaved, so that noise from other processes falls on both alike.
  const base: number[] = [];
  const cost: number[] = [];
  for (let i = 0; i < 41; i++) {
    base.push(time(() => plain[fn]!(n)));
    cost.push(time(() => metered[fn]!(n)));
  }
  const [b, c] = [median(base.slice(10)), median(cost.slice(10))];
  console.log(
    JSON.stringify({
      benchmark: `metered vs unmetered, ${label}`,
      unmeteredMs: Number(b.toFixed(2)),
      meteredMs: Number(c.toFixed(2)),
      slowdownPercent: Number(((c / b - 1) * 100).toFixed(1)),
      runtime,
    }),
  );
}

// How late a 5 ms deadline is enforced: from the deadline to the exception reaching the caller.
for (const [label, fn, n] of [
  ["an empty loop", "spin", 0],
  ["string-heavy code", "strings", 1e9],
] as const) {
  const late: number[] = [];
  for (let i = 0; i < 40; i++) {
    const deadline = { at: Infinity };
    const exports = instantiate(meteredModule, deadline); // fresh: the unwound call may leave the heap mid-update
    deadline.at = performance.now() + 5;
    try {
      exports[fn]!(n);
    } catch (e) {
      if (!(e instanceof Deadline)) throw e;
    }
    late.push(performance.now() - deadline.at);
  }
  const sorted = late.slice(10).sort((a, b) => a - b); // the first calls also compile the code they reach
  const us = (q: number) => Math.round(sorted[Math.floor(sorted.length * q)]! * 1000);
  console.log(
    JSON.stringify({
      benchmark: `5 ms deadline in ${label}: stopped this late`,
      medianMicroseconds: us(0.5),
      p90Microseconds: us(0.9),
      runtime,
    }),
  );
}
