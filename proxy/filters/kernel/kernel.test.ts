// runtimes: node deno bun
// The block kernel: the committed bytes are what kernel.wat assembles to, and the blocks a
// filter and the proxy share behave as Extism's kernel functions promise, bounded by the
// filter's memory limit.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Blocks } from "../blocks.ts";
import { FilterFault } from "../fault.ts";
import { kernelModuleSource } from "./build.ts";

type Fn = (...args: (number | bigint)[]) => number | bigint | undefined;

function kernelOf(blocks: Blocks): Record<string, Fn> {
  return blocks.kernelFunctions as Record<string, Fn>;
}

/** What a kernel call throws, as the instance reports it. */
function faultOf(blocks: Blocks, call: () => unknown): FilterFault {
  try {
    call();
  } catch (e) {
    const fault = blocks.explain(e) ?? e;
    assert.ok(fault instanceof FilterFault, `expected a FilterFault, got ${String(fault)}`);
    return fault;
  }
  assert.fail("the call did not fault");
}

describe("block kernel", () => {
  it("is committed as kernel.wat assembles (node proxy/filters/kernel/build.ts)", () => {
    const committed = readFileSync(fileURLToPath(new URL("kernel-wasm.ts", import.meta.url)), "utf8");
    assert.equal(committed, kernelModuleSource(), "kernel-wasm.ts is stale: run node proxy/filters/kernel/build.ts");
  });

  it("serves blocks to the filter and the proxy alike: alloc, store, length, load", () => {
    const blocks = new Blocks(1 << 20);
    const k = kernelOf(blocks);
    const at = k.alloc!(10n) as bigint;
    assert.ok(at > 0n);
    assert.equal(k.length!(at), 10n);
    assert.equal(k.length_unsafe!(at), 10n);
    k.store_u64!(at, 0x0706050403020100n);
    k.store_u8!(at + 8n, 8);
    k.store_u8!(at + 9n, 0x1ff); // an i32 stores its low byte
    assert.deepEqual([...blocks.read(Number(at))], [0, 1, 2, 3, 4, 5, 6, 7, 8, 0xff]);
    const text = blocks.writeString("x-user: alice");
    assert.equal(k.load_u8!(BigInt(text)), "x".charCodeAt(0));
    assert.equal((k.load_u64!(BigInt(text)) as bigint) & 0xffn, BigInt("x".charCodeAt(0)));
    assert.equal(blocks.readString(text), "x-user: alice");
    assert.equal(blocks.readString(blocks.writeString("héllo ☃")), "héllo ☃");
    const long = "v".repeat(1000) + "é";
    assert.equal(blocks.readString(blocks.writeString(long)), long);
  });

  it("answers 0 for the length of anything that is not a live block, as Extism does", () => {
    const blocks = new Blocks(1 << 20);
    const k = kernelOf(blocks);
    const at = k.alloc!(16n) as bigint;
    for (const offset of [0n, 1n, at + 1n, at + 8n, at + 4096n, -8n, 1n << 40n]) assert.equal(k.length!(offset), 0n, String(offset));
    k.free!(at);
    assert.equal(k.length!(at), 0n);
    assert.throws(() => blocks.read(Number(at)), /is not the offset of a memory block/);
  });

  it("releases every block at reset: an offset from an earlier call is no block, even where a later block's bytes hold its old header", () => {
    const blocks = new Blocks(1 << 20);
    const k = kernelOf(blocks);
    const first = k.alloc!(4n) as bigint;
    const second = k.alloc!(4n) as bigint;
    blocks.reset();
    const big = k.alloc!(64n) as bigint;
    assert.equal(big, first);
    assert.equal(k.length!(second), 0n);
    assert.equal(k.length!(big), 64n);
  });

  it("faults on access outside the blocks, naming the offset", () => {
    const blocks = new Blocks(1 << 20);
    const k = kernelOf(blocks);
    const at = k.alloc!(8n) as bigint;
    k.load_u64!(at);
    assert.match(faultOf(blocks, () => k.load_u64!(at + 1n)).message, /memory access at \d+ \(8 bytes\) is outside every block/);
    assert.match(faultOf(blocks, () => k.load_u8!(-1n)).message, /memory access at -1 \(1 bytes\) is outside every block/);
    assert.match(faultOf(blocks, () => k.store_u8!(0n, 1)).message, /outside every block/);
  });

  it("stops at the filter's memory limit with a memory fault, and grows up to it", () => {
    const blocks = new Blocks(4 * 65536);
    const k = kernelOf(blocks);
    const near = k.alloc!(3n * 65536n) as bigint;
    assert.equal(k.length!(near), 3n * 65536n);
    blocks.write(new Uint8Array(1000).fill(7));
    const fault = faultOf(blocks, () => k.alloc!(2n * 65536n));
    assert.equal(fault.kind, "memory");
    assert.match(fault.message, /over its memory limit of 262144 bytes/);
    assert.equal(faultOf(blocks, () => k.alloc!(1n << 40n)).kind, "memory");
    assert.equal(faultOf(blocks, () => blocks.alloc(1 << 30)).kind, "memory");
  });
});
