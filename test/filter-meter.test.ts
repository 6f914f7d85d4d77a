// runtimes: node deno bun
// Metering filter modules (proxy/filters/meter.ts): a filter that loops forever is stopped by
// its host's tick, everything the function-index shift touches still works, memory gets its
// ceiling, and modules weft cannot meter are refused with the reason. Runs on Node, Deno and Bun.
import { test } from "node:test";
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { meter, MeterError } from "../proxy/filters/meter.ts";
import { buildImports, IMPORT_SIGNATURES, type InstanceHost } from "../proxy/filters/imports.ts";
import { Blocks } from "../proxy/filters/blocks.ts";
import { importing, I32, I64, F64 } from "./hostile/wasm-modules.ts";
import { compileAssemblyScript } from "./support/asc.ts";
import * as handmade from "./fixtures/meter/handmade.ts";

const fixtures = join(dirname(fileURLToPath(import.meta.url)), "fixtures", "meter");
const loop = (await compileAssemblyScript(join(fixtures, "loop.ts"))).wasm;
const calls = (await compileAssemblyScript(join(fixtures, "calls.ts"))).wasm;

const LIMIT = { maxMemoryPages: 16 };

class Deadline extends Error {}

type Exports = Record<string, (...args: number[]) => unknown>;

/** A host like proxy/filters/instance.ts: tick throws past the deadline, otherwise refills the fuel. */
function instantiate(bytes: Uint8Array, imports: WebAssembly.Imports = {}, refill = 10_000) {
  const host = { deadline: Infinity, ticks: 0, fuel: null as WebAssembly.Global | null };
  const tick = () => {
    host.ticks++;
    if (performance.now() > host.deadline) throw new Deadline("past the deadline");
    if (host.fuel) host.fuel.value = refill;
  };
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), {
    ...imports,
    "weft:meter": { tick },
  });
  host.fuel = instance.exports.weft_fuel as WebAssembly.Global;
  return { exports: instance.exports as Exports, host };
}

const plain = (bytes: Uint8Array, imports: WebAssembly.Imports = {}) =>
  new WebAssembly.Instance(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), imports).exports as Exports;

function refused(bytes: Uint8Array, message: RegExp): void {
  assert.throws(
    () => meter(bytes, LIMIT),
    (e: Error) => e instanceof MeterError && message.test(e.message),
    `expected a MeterError matching ${message}`,
  );
}

test("a call that loops forever throws the tick's exception at its deadline; the instance and a fresh one keep working", () => {
  const metered = meter(loop, LIMIT).bytes;
  const module = new WebAssembly.Module(metered as Uint8Array<ArrayBuffer>);
  const imports = WebAssembly.Module.imports(module);
  assert.deepEqual(imports[imports.length - 1], { module: "weft:meter", name: "tick", kind: "function" });
  assert.ok(WebAssembly.Module.exports(module).some((e) => e.name === "weft_fuel" && e.kind === "global"));

  const { exports, host } = instantiate(metered);
  const fuel = exports.weft_fuel as unknown as WebAssembly.Global;
  assert.ok(fuel instanceof WebAssembly.Global);
  fuel.value = 123; // throws on an immutable global
  assert.equal(fuel.value, 123);

  fuel.value = 10_000;
  const started = performance.now();
  host.deadline = started + 50;
  assert.throws(() => exports.spin(), Deadline);
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 50 && elapsed < 1000, `stopped after ${elapsed.toFixed(1)} ms`);

  host.deadline = Infinity;
  assert.equal(exports.count(1000), 500, "the same instance still answers");
  assert.equal(instantiate(metered).exports.count(1000), 500, "so does a fresh one");
});

test("every function entry and loop iteration takes one unit of fuel", () => {
  const { exports, host } = instantiate(meter(loop, LIMIT).bytes, {}, 100);
  const fuel = exports.weft_fuel as unknown as WebAssembly.Global;
  fuel.value = 100;
  assert.equal(exports.count(10_000), 5_000);
  // 10,000 iterations and one entry at 100 units per tick: the 100th tick comes at 10,000.
  assert.ok(host.ticks >= 99 && host.ticks <= 101, `${host.ticks} ticks`);
});

test("a start function that never returns is stopped too: instantiation throws", () => {
  const bytes = meter(handmade.startsForever(), LIMIT).bytes;
  const deadline = performance.now() + 50;
  const tick = () => {
    if (performance.now() > deadline) throw new Deadline("past the deadline");
  };
  assert.throws(
    () => new WebAssembly.Instance(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), { "weft:meter": { tick } }),
    Deadline,
  );
});

test("calls, indirect calls, every element segment form, exports, start, ref.func and globals survive the index shift", () => {
  const env = { env: { base: () => 100, g: new WebAssembly.Global({ value: "i32", mutable: false }, 7) } };
  const bytes = handmade.indices();
  const original = plain(bytes, env);
  const { exports, host } = instantiate(meter(bytes, LIMIT).bytes, env);
  const expected = [12, 105, 110, 105, 12, 110, 110, 12];
  for (let slot = 0; slot < expected.length; slot++) {
    assert.equal(exports.dispatch(slot, 5), expected[slot], `table slot ${slot}`);
    assert.equal(exports.dispatch(slot, 5), original.dispatch(slot, 5));
    assert.equal(exports.tailIndirect(slot, 5), expected[slot], `return_call_indirect through slot ${slot}`);
  }
  assert.equal(exports.base(), 100, "an exported import keeps its index");
  assert.equal(exports.seven(1), 8);
  assert.equal(exports.started(), 42, "the start function ran");
  assert.equal((exports.getRef() as (x: number) => number)(5), 105, "ref.func in code");
  assert.equal((exports.globalRef() as (x: number) => number)(5), 12, "ref.func in a global initializer");
  const table = exports.table as unknown as WebAssembly.Table;
  assert.equal((table.get(3) as (x: number) => number)(5), 105);

  (exports.weft_fuel as unknown as WebAssembly.Global).value = 1;
  exports.seven(1);
  assert.equal(host.ticks, 1, "the metered functions call tick");
});

test("AssemblyScript calls, function pointers, strings and a start function give the unmetered results", () => {
  const abort = () => {
    throw new Error("abort");
  };
  const original = plain(calls, { env: { abort } });
  const { exports, host } = instantiate(meter(calls, LIMIT).bytes, { env: { abort } }, 50);
  (exports.weft_fuel as unknown as WebAssembly.Global).value = 50;
  for (const n of [0, 1, 7, 100]) assert.equal(exports.run(n), original.run(n), `run(${n})`);
  assert.equal(exports.textLength(500), original.textLength(500));
  assert.ok(host.ticks > 10, `${host.ticks} ticks`);
});

test("SIMD, bulk memory and table instructions, multi-value blocks, br_table, typed select and multi-memory memargs are stepped over", () => {
  for (const multiMemory of [false, true]) {
    const bytes = handmade.features({ multiMemory });
    const metered = meter(bytes, LIMIT).bytes;
    // Fresh instances: bulk drops its data segment and grows its table.
    for (const name of ["simd", "bulk", "control", "memarg"]) {
      for (const x of [1, 2, 3, 77, 1000]) assert.equal(instantiate(metered).exports[name](x), plain(bytes)[name](x), `${name}(${x})`);
    }
    const { exports, host } = instantiate(metered, {}, 10);
    (exports.weft_fuel as unknown as WebAssembly.Global).value = 10;
    exports.control(100); // a loop typed by a type index, 100 iterations
    assert.ok(host.ticks >= 10, `${host.ticks} ticks`);
  }
});

test("memory gets the limit as its maximum: memory.grow past it returns -1, and weft_grow holds the last grow's result", () => {
  const grow = (bytes: Uint8Array) => instantiate(meter(bytes, { maxMemoryPages: 4 }).bytes).exports.grow as (pages: number) => number;
  const unbounded = grow(loop); // AssemblyScript, no maximum
  const pages = unbounded(0);
  assert.equal(unbounded(4 - pages), pages);
  assert.equal(unbounded(1), -1);
  const own = instantiate(meter(handmade.memory(1, 2), { maxMemoryPages: 4 }).bytes).exports; // its own maximum is lower: kept
  const lastGrow = own.weft_grow as unknown as WebAssembly.Global;
  assert.equal(lastGrow.value, 0);
  assert.equal((own.grow as (pages: number) => number)(2), -1);
  assert.equal(lastGrow.value, -1);
  assert.equal((own.grow as (pages: number) => number)(1), 1);
  assert.equal(lastGrow.value, 1);
  const larger = grow(handmade.memory(1, 100));
  assert.equal(larger(3), 1);
  assert.equal(larger(1), -1);
});

test("refuses memories weft cannot limit: too large at start, imported, 64-bit", () => {
  refused(
    handmade.memory(20),
    /^filter needs 20 pages \(1\.25 MiB\) of memory at start, its limit is 16 pages \(1 MiB\); raise limits\.memoryMiB/,
  );
  refused(handmade.importedMemory(), /imports its memory \("env" "memory"\); weft filters define and export their own memory/);
  refused(handmade.memory(1, undefined, 0x04), /filter uses a 64-bit memory \(memory64\)/);
});

test("refuses what is not a module, a truncated one, and components, saying so", () => {
  const random = Uint8Array.from({ length: 256 }, (_, i) => (i * 151 + 89) & 0xff);
  refused(random, /^not a WebAssembly module \(file starts with ([0-9a-f]{2} ){7}[0-9a-f]{2}, "/);
  refused(
    new TextEncoder().encode("(module (func))"),
    /^not a WebAssembly module \(file starts with 28 6d 6f 64 75 6c 65 20, "\(module "\)/,
  );
  refused(new Uint8Array(0), /^not a WebAssembly module \(the file is empty\)/);
  refused(
    calls.subarray(0, Math.floor(calls.length * 0.6)),
    /^the module is truncated: section \d+ \(\w+\) at offset 0x[0-9a-f]+ declares \d+ bytes but only \d+ remain/,
  );
  refused(calls.subarray(0, 6), /^the module is truncated: it is 6 bytes long/);
  refused(Uint8Array.of(0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00), /WebAssembly component .* transpile the component/);
});

test("refuses instructions it cannot meter with the instruction, the function and the offset", () => {
  // (func (result i32) (try (do nop)) (i32.const 1)): legacy exception handling
  refused(
    handmade.oneFunction([0x06, 0x40, 0x01, 0x0b, 0x41, 0x01]),
    /^filter uses instruction 0x06 \(exception handling\) at function 0, offset 0x21, which weft cannot meter; build without that feature$/,
  );
  // (func (result i32) (try_table) (i32.const 1)): exception handling as standardized
  refused(handmade.oneFunction([0x1f, 0x40, 0x00, 0x0b, 0x41, 0x01]), /instruction 0x1f \(exception handling\) at function 0/);
  // (i32.atomic.load (i32.const 0))
  refused(handmade.oneFunction([0x41, 0x00, 0xfe, 0x10, 0x02, 0x00]), /instruction 0xfe \(threads\) at function 0/);
  // (struct.new 0): GC
  refused(handmade.oneFunction([0xfb, 0x00, 0x00]), /instruction 0xfb \(typed function references or GC\)/);
  // an unassigned SIMD opcode and an unassigned one-byte opcode
  refused(handmade.oneFunction([0xfd, 0x9a, 0x01]), /instruction 0xfd 0x9a \(not an instruction weft knows\) at function 0, offset 0x21/);
  refused(handmade.oneFunction([0x27]), /instruction 0x27 \(not an instruction weft knows\)/);
});

test('custom sections other than "name" are kept byte for byte; the name section follows the shift', () => {
  const manifest = new TextEncoder().encode(JSON.stringify({ name: "example", version: "1.0.0" }));
  const bytes = handmade.named(manifest);
  const metered = meter(bytes, LIMIT).bytes;
  const module = new WebAssembly.Module(metered as Uint8Array<ArrayBuffer>);
  const sections = WebAssembly.Module.customSections(module, "weft.manifest");
  assert.equal(sections.length, 2);
  for (const s of sections) assert.deepEqual(new Uint8Array(s), manifest);
  const contains = (haystack: Uint8Array, needle: Uint8Array) => Buffer.from(haystack).indexOf(Buffer.from(needle)) >= 0;
  assert.ok(contains(metered, Uint8Array.from(handmade.custom("weft.manifest", manifest))));
  assert.ok(contains(metered, Uint8Array.from(handmade.custom("between", [1, 2, 3]))));
  // tick is function 0 now, so "other" and "boom" moved from 0 and 1 to 1 and 2.
  assert.deepEqual(names(module), { module: "example", functions: { 1: "other", 2: "boom" }, locals: { 2: ["why"] } });

  // A malformed name section (a subsection longer than the section) is dropped, not refused.
  const broken = meter(Uint8Array.from([...handmade.oneFunction([0x41, 0x01]), ...handmade.custom("name", [1, 5, 9])]), LIMIT).bytes;
  assert.equal(WebAssembly.Module.customSections(new WebAssembly.Module(broken as Uint8Array<ArrayBuffer>), "name").length, 0);
  assert.equal(instantiate(broken).exports.run(), 1);
});

/** The module, function and local names of a module's name section. */
function names(module: WebAssembly.Module) {
  const bytes = new Uint8Array(WebAssembly.Module.customSections(module, "name")[0]);
  let pos = 0;
  const u32 = () => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const b = bytes[pos++];
      value |= (b & 0x7f) << shift;
      if (b < 0x80) return value >>> 0;
    }
  };
  const name = () => {
    const length = u32();
    pos += length;
    return new TextDecoder().decode(bytes.subarray(pos - length, pos));
  };
  const found = { module: "", functions: {} as Record<number, string>, locals: {} as Record<number, string[]> };
  while (pos < bytes.length) {
    const id = bytes[pos++];
    const end = u32() + pos;
    if (id === 0) found.module = name();
    for (let n = id === 1 || id === 2 ? u32() : 0; n > 0; n--) {
      const index = u32();
      if (id === 1) found.functions[index] = name();
      else found.locals[index] = Array.from({ length: u32() }, () => (u32(), name()));
    }
    pos = end;
  }
  return found;
}

test("damaged modules are refused with a MeterError, never another exception", () => {
  let seed = 7;
  const random = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  let metered = 0;
  for (let i = 0; i < 400; i++) {
    const bytes = new Uint8Array(calls); // a copy (calls may be a Buffer, whose slice is a view)
    for (let j = 0; j < 3; j++) bytes[8 + random(bytes.length - 8)] = random(256);
    try {
      meter(bytes, LIMIT);
      metered++;
    } catch (e) {
      assert.ok(e instanceof MeterError, `${(e as Error).name}: ${(e as Error).message}`);
    }
  }
  assert.ok(metered > 0);
});

test("a module cannot reach the fuel global", () => {
  // (func (result i32) (global.set 0 (i32.const 0x7fffffff)) (i32.const 1)) with no globals:
  // global 0 would be the fuel once metered, refilled by the filter itself.
  refused(
    handmade.oneFunction([0x41, 0xff, 0xff, 0xff, 0xff, 0x07, 0x24, 0x00, 0x41, 0x01]),
    /refers to global 0, which does not exist, at function 0/,
  );
  refused(handmade.oneFunction([0x23, 0x00]), /refers to global 0, which does not exist/);
});

test("an empty module gets the sections metering needs", () => {
  const metered = meter(handmade.wasm(), LIMIT).bytes;
  const { exports } = instantiate(metered);
  assert.ok(exports.weft_fuel instanceof WebAssembly.Global);
});

test("reserved names and a bad limit are refused", () => {
  assert.throws(() => meter(meter(loop, LIMIT).bytes, LIMIT), /imports from "weft:meter"/);
  assert.throws(() => meter(loop, { maxMemoryPages: 1.5 }), RangeError);
});

test("the meter reports each function import with its signature, as docs/filter-abi.md writes them", () => {
  const found = meter(importing("extism:host/user", "weft_metric", [I32, I64, F64], []), LIMIT).functionImports;
  assert.deepEqual(found, [{ module: "extism:host/user", name: "weft_metric", signature: "(i32, i64, f64)" }]);
  const multi = meter(importing("extism:host/env", "alloc", [I64], [I64, I32]), LIMIT).functionImports;
  assert.deepEqual(multi, [{ module: "extism:host/env", name: "alloc", signature: "(i64) -> i64, i32" }]);
  assert.deepEqual(meter(importing("env", "seed", [], [F64]), LIMIT).functionImports, [
    { module: "env", name: "seed", signature: "() -> f64" },
  ]);
});

test("every import weft provides has a signature, with as many parameters as its host function takes", () => {
  const provided = buildImports({ blocks: new Blocks(1 << 16) } as InstanceHost) as Record<
    string,
    Record<string, (...args: never[]) => unknown>
  >;
  assert.deepEqual(Object.keys(provided).sort(), [...IMPORT_SIGNATURES.keys()].sort());
  for (const [module, functions] of Object.entries(provided)) {
    const signatures = IMPORT_SIGNATURES.get(module)!;
    assert.deepEqual(Object.keys(functions).sort(), [...signatures.keys()].sort(), module);
    for (const [name, fn] of Object.entries(functions)) {
      const params = /^\(([^)]*)\)/.exec(signatures.get(name)!)![1];
      // A host function may ignore trailing parameters it does not use (output_set), never take more.
      assert.ok(
        fn.length <= (params ? params.split(", ").length : 0),
        `${module} ${name} takes ${fn.length} parameters, its signature ${signatures.get(name)}`,
      );
    }
  }
});
