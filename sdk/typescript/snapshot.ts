// A snapshot of weft's TypeScript engine after it has evaluated a filter: the engine module
// (sdk/typescript/engine) with its memory replaced by the memory the evaluation left, so that
// every instance starts with the filter loaded (what Wizer does for WASI modules).
//
// Only memory is carried over. That is enough because of how the engine is built: its one
// mutable global is the shadow-stack pointer, back at its initial value once
// weft_engine_init has returned, the stack sits at the bottom of memory below the data
// (Rust's wasm32 layout) and is dead then, and the function table is never written.
// `snapshot` checks these rather than trusting them, since a new engine version could change them.
import { leb128 } from "../build/custom-section.ts";

const CUSTOM = 0,
  GLOBAL = 6,
  EXPORT = 7,
  START = 8,
  MEMORY = 5,
  DATA = 11,
  DATA_COUNT = 12;
const I32 = 0x7f,
  I32_CONST = 0x41,
  END = 0x0b;
const PAGE = 65536;
// Zero runs shorter than this stay inside a data segment: a segment's header costs ~6 bytes.
const SEGMENT_GAP = 64;

interface Section {
  id: number;
  body: Uint8Array;
}

class Reader {
  at: number;
  private readonly bytes: Uint8Array;
  constructor(bytes: Uint8Array, at = 0) {
    this.bytes = bytes;
    this.at = at;
  }
  byte(): number {
    return this.bytes[this.at++]!;
  }
  u32(): number {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const b = this.byte();
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
    }
  }
  i32(): number {
    let value = 0,
      shift = 0,
      b: number;
    do {
      b = this.byte();
      value |= (b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    return shift < 32 && b & 0x40 ? value | (-1 << shift) : value;
  }
  name(): string {
    const length = this.u32();
    this.at += length;
    return new TextDecoder().decode(this.bytes.subarray(this.at - length, this.at));
  }
}

function sleb128(value: number): number[] {
  const bytes: number[] = [];
  for (;;) {
    const b = value & 0x7f;
    value >>= 7;
    if ((value === 0 && !(b & 0x40)) || (value === -1 && b & 0x40)) return (bytes.push(b), bytes);
    bytes.push(b | 0x80);
  }
}

function parse(module: Uint8Array): Section[] {
  const sections: Section[] = [];
  const r = new Reader(module, 8);
  while (r.at < module.length) {
    const id = r.byte();
    const size = r.u32();
    sections.push({ id, body: module.subarray(r.at, r.at + size) });
    r.at += size;
  }
  return sections;
}

function assemble(sections: readonly Section[]): Uint8Array {
  const parts: ArrayLike<number>[] = [[0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0]];
  for (const s of sections) parts.push([s.id, ...leb128(s.body.length)], s.body);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The stack pointer's initial value: the top of the stack. Throws if the globals are not the layout described above. */
function stackTop(globals: Uint8Array): number {
  const r = new Reader(globals);
  let top: number | null = null;
  for (let i = r.u32(); i > 0; i--) {
    const type = r.byte();
    const mutable = r.byte() === 1;
    const op = r.byte();
    // Immutable globals (__heap_base, __data_end) cannot have changed; skip their initialiser.
    const value = op === I32_CONST ? r.i32() : NaN;
    if (r.byte() !== END) throw new Error("the engine has a global initialiser the snapshot does not know");
    if (!mutable) continue;
    if (top !== null || type !== I32 || Number.isNaN(value))
      throw new Error("the engine has a mutable global besides its stack pointer, which the snapshot would not carry over");
    top = value;
  }
  if (top === null) throw new Error("the engine has no stack pointer global");
  return top;
}

/** Active data segments, one per run of non-zero bytes. */
function dataSegments(memory: Uint8Array): { body: Uint8Array; count: number } {
  const out: number[] = [];
  let count = 0;
  let i = 0;
  while (i < memory.length) {
    while (i < memory.length && memory[i] === 0) i++;
    if (i === memory.length) break;
    const start = i;
    let end = i;
    for (let zeros = 0; i < memory.length && zeros < SEGMENT_GAP; i++) {
      if (memory[i] === 0) zeros++;
      else {
        zeros = 0;
        end = i + 1;
      }
    }
    out.push(0, I32_CONST, ...sleb128(start), END, ...leb128(end - start));
    for (let k = start; k < end; k++) out.push(memory[k]!);
    count++;
  }
  return { body: new Uint8Array([...leb128(count), ...out]), count };
}

function checkData(body: Uint8Array, stackTop: number): void {
  const r = new Reader(body);
  for (let i = r.u32(); i > 0; i--) {
    if (r.u32() !== 0) throw new Error("the engine has a passive data segment, which replacing its data would break");
    if (r.byte() !== I32_CONST) throw new Error("the engine has a data segment at a computed offset");
    if (r.i32() < stackTop) throw new Error("the engine's data lies below its stack top: the stack is not first in memory");
    r.byte();
    const size = r.u32(); // before the +=, which would read r.at first
    r.at += size;
  }
}

function memorySection(body: Uint8Array, pages: number): Uint8Array {
  const r = new Reader(body);
  if (r.u32() !== 1) throw new Error("the engine must define exactly one memory");
  const flags = r.byte();
  r.u32();
  return new Uint8Array([1, flags, ...leb128(pages), ...(flags & 1 ? leb128(r.u32()) : [])]);
}

function exportSection(body: Uint8Array, keep: ReadonlySet<string>): Uint8Array {
  const r = new Reader(body);
  const kept: number[] = [];
  let count = 0;
  for (let i = r.u32(); i > 0; i--) {
    const start = r.at;
    const name = r.name();
    r.byte();
    r.u32();
    if (keep.has(name)) {
      kept.push(...body.subarray(start, r.at));
      count++;
    }
  }
  return new Uint8Array([...leb128(count), ...kept]);
}

/**
 * `engine` with `memory` as its initial memory, exporting only `memory` and the functions in
 * `exports`. The memory's dead stack is zeroed, so the module carries only live data.
 */
export function snapshot(engine: Uint8Array, memory: Uint8Array, exports: readonly string[]): Uint8Array {
  const sections = parse(engine);
  const section = (id: number) => sections.find((s) => s.id === id);
  if (section(START)) throw new Error("the engine has a start function, which would run again on the snapshot");
  const top = stackTop(section(GLOBAL)?.body ?? new Uint8Array([0]));
  checkData(section(DATA)?.body ?? new Uint8Array([0]), top);
  const image = memory.slice();
  image.fill(0, 0, top);
  const data = dataSegments(image);
  const keep = new Set(["memory", ...exports]);
  const out: Section[] = [];
  for (const s of sections) {
    if (s.id === CUSTOM) {
      // The name section keeps function names in the proxy's trap messages; producers and
      // target_features are linker metadata.
      if (new Reader(s.body).name() === "name") out.push(s);
    } else if (s.id === MEMORY) out.push({ id: MEMORY, body: memorySection(s.body, image.length / PAGE) });
    else if (s.id === EXPORT) out.push({ id: EXPORT, body: exportSection(s.body, keep) });
    else if (s.id === DATA) out.push({ id: DATA, body: data.body });
    else if (s.id === DATA_COUNT) out.push({ id: DATA_COUNT, body: new Uint8Array(leb128(data.count)) });
    else out.push(s);
  }
  return assemble(out);
}
