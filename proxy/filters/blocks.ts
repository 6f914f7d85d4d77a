// Extism's memory blocks: the memory through which a filter and the proxy pass bytes
// (docs/filter-abi.md). They live in the memory of a small WebAssembly kernel
// (kernel/kernel.wat) that serves Extism's kernel functions to the filter wasm-to-wasm; the
// proxy reads and writes the same memory from here. Everything is released at the end of
// each phase call, as Extism does per call.
import { FilterFault } from "./fault.ts";
import { KERNEL_WASM_BASE64 } from "./kernel/kernel-wasm.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
// Up to this many bytes, text is copied byte by byte when it is ASCII: an encoder or decoder
// call costs more than the copy for the short strings (header names and values) filters trade.
const SHORT = 256;
const PAGE = 65536;
// Longer text than this (a body) is encoded on its own first rather than given a block three
// times its length.
const ENCODE_IN_PLACE = 64 * 1024;

/** The bytes as a string when every one is ASCII, else null. */
function asciiText(bytes: Uint8Array): string | null {
  let text = "";
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    if (byte > 0x7f) return null;
    text += String.fromCharCode(byte);
  }
  return text;
}

let kernelModule: WebAssembly.Module | undefined;
function kernel(): WebAssembly.Module {
  kernelModule ??= new WebAssembly.Module(Uint8Array.from(atob(KERNEL_WASM_BASE64), (c) => c.charCodeAt(0)));
  return kernelModule;
}

/** The kernel's exports: Extism's functions (i64 offsets) for the filter, i32 ones for the proxy. */
interface KernelExports {
  readonly alloc32: (length: number) => number;
  readonly length32: (offset: number) => number;
  readonly shrink_last32: (offset: number, length: number) => void;
  readonly reset: () => void;
  readonly fault: () => number;
  readonly fault_at: () => bigint;
  readonly fault_size: () => number;
}

// What the kernel serves of Extism's kernel functions (the rest are the proxy's, imports.ts).
const EXTISM_FUNCTIONS = ["alloc", "length", "length_unsafe", "free", "load_u8", "load_u64", "store_u8", "store_u64"];

// Kernel fault codes (kernel.wat).
const OUT_OF_MEMORY = 1;
const OUTSIDE = 2;

export class Blocks {
  /** Extism's kernel functions, to link the filter to ("extism:host/env"). */
  readonly kernelFunctions: Readonly<Record<string, WebAssembly.ExportValue>>;
  private readonly exports: KernelExports;
  private readonly memory: WebAssembly.Memory;
  private bytes: Uint8Array;
  private readonly ceiling: number;

  constructor(ceilingBytes: number) {
    this.ceiling = ceilingBytes;
    this.memory = new WebAssembly.Memory({ initial: 1, maximum: Math.max(1, Math.floor(ceilingBytes / PAGE)) });
    const instance = new WebAssembly.Instance(kernel(), { "weft:kernel": { memory: this.memory } });
    this.kernelFunctions = Object.fromEntries(EXTISM_FUNCTIONS.map((name) => [name, instance.exports[name]!]));
    this.exports = instance.exports as unknown as KernelExports;
    this.bytes = new Uint8Array(this.memory.buffer);
  }

  /** The memory as bytes; a grow (in the kernel's alloc) replaces the buffer. */
  private view(): Uint8Array {
    if (this.bytes.byteLength === 0) this.bytes = new Uint8Array(this.memory.buffer);
    return this.bytes;
  }

  alloc(length: number): number {
    if (!Number.isSafeInteger(length) || length < 0) throw new FilterFault("trap", `alloc(${length}): not a block length`);
    if (length > this.ceiling) throw this.outOfMemory(length);
    try {
      return this.exports.alloc32(length);
    } catch (e) {
      throw this.explain(e) ?? e;
    }
  }

  private outOfMemory(bytes: number | bigint): FilterFault {
    return new FilterFault(
      "memory",
      `the filter's blocks would take ${bytes} bytes in one call, over its memory limit of ${this.ceiling} bytes`,
    );
  }

  /** The fault a trap in the kernel recorded, as the filter's error; null if the kernel did not trap. */
  explain(error: unknown): FilterFault | null {
    if (!(error instanceof WebAssembly.RuntimeError)) return null;
    const at = this.exports.fault_at();
    switch (this.exports.fault()) {
      case OUT_OF_MEMORY:
        return this.outOfMemory(at);
      case OUTSIDE:
        return new FilterFault(
          "trap",
          `memory access at ${BigInt.asIntN(64, at)} (${this.exports.fault_size()} bytes) is outside every block`,
        );
      default:
        return null;
    }
  }

  /** A view of a block's bytes (valid until the next alloc). */
  read(offset: number): Uint8Array {
    const length = offset > 0 && offset < 0x1_0000_0000 ? this.exports.length32(offset) : -1;
    if (length < 0) throw new FilterFault("trap", `${offset} is not the offset of a memory block`);
    return this.view().subarray(offset, offset + length);
  }

  readString(offset: number): string {
    const bytes = this.read(offset);
    return bytes.length <= SHORT ? (asciiText(bytes) ?? decoder.decode(bytes)) : decoder.decode(bytes);
  }

  write(data: Uint8Array): number {
    const offset = this.alloc(data.length);
    this.view().set(data, offset);
    return offset;
  }

  writeString(text: string): number {
    if (text.length > SHORT) return text.length > ENCODE_IN_PLACE ? this.write(encoder.encode(text)) : this.encodeInPlace(text);
    // Header names and values are short ASCII: copied in place, without an encoder's array.
    const offset = this.alloc(text.length);
    const bytes = this.view();
    for (let i = 0; i < text.length; i++) {
      const unit = text.charCodeAt(i);
      // Anything else is encoded into a block of its own; this one stays unused until the reset.
      if (unit > 0x7f) return this.write(encoder.encode(text));
      bytes[offset + i] = unit;
    }
    return offset;
  }

  /** Text encoded straight into a block sized for its worst case, then trimmed to what it took. */
  private encodeInPlace(text: string): number {
    const offset = this.alloc(text.length * 3);
    const { written } = encoder.encodeInto(text, this.view().subarray(offset, offset + text.length * 3));
    this.exports.shrink_last32(offset, written);
    return offset;
  }

  /** Releases every block; called after each phase call. */
  reset(): void {
    this.exports.reset();
  }
}
