// Metering a filter module at load time, so that a filter that loops forever can be stopped
// and its memory has a ceiling (docs/design/filter-deadlines.md). JavaScript cannot interrupt
// a synchronous WebAssembly call, so the module is rewritten to interrupt itself: it imports
// `"weft:meter" "tick"`, owns an i32 global exported as `weft_fuel`, and every function entry
// and every loop iteration takes one unit of fuel and calls tick when the fuel runs out. The
// host's tick throws (which unwinds the call) once the deadline has passed, or refills the fuel.
// Every `memory.grow` also leaves its result in a second exported global, `weft_grow`, so that
// when a filter traps the host can tell "a grow was refused at the memory ceiling" (the usual
// way an allocator gives up: AssemblyScript's traps with `unreachable`) from any other trap.
//
// The rewrite decodes only what it must: section framing, the entries that hold function
// indices (imports shift every defined function up by one), memories, and each instruction's
// immediates so that call/ref.func indices and loop heads are found. Everything else is copied
// byte for byte; the engine validates the result when it compiles it. Instructions whose
// control flow the rewrite does not model (exception handling, GC, threads) are refused rather
// than guessed at. The "name" section is kept with its function indices shifted, so stack
// traces keep the filter's function names.

export interface MeterOptions {
  /** Maximum linear memory in 64 KiB pages; the module's own memory gets this as its maximum (lower if it declares a lower one). */
  readonly maxMemoryPages: number;
}

/** A function the module imports, with its type as written in docs/filter-abi.md: "(i64, i64) -> i64", "(i64)", "() -> i32". */
export interface FunctionImport {
  readonly module: string;
  readonly name: string;
  readonly signature: string;
}

export interface MeteredModule {
  readonly bytes: Uint8Array;
  /** The module's own function imports (not weft's metering import), in order: the engines do not reveal their types. */
  readonly functionImports: readonly FunctionImport[];
}

/** The module cannot be metered; the message says what is wrong with it and what to do. */
export class MeterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MeterError";
  }
}

// Fuel the module starts with. Its start function runs during instantiation, before the host
// can reach the fuel to refill it, so this is what a start function may do before its first
// tick: AssemblyScript's take a few hundred units, and a runaway one gets there within a few
// milliseconds.
const START_FUEL = 1_000_000;

const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const FUEL_EXPORT = new TextEncoder().encode("weft_fuel");
const GROW_EXPORT = new TextEncoder().encode("weft_grow");
const TICK_MODULE = new TextEncoder().encode("weft:meter");
const TICK_NAME = new TextEncoder().encode("tick");
const NAME = new TextEncoder().encode("name");

const SECTION_NAMES = [
  "custom",
  "type",
  "import",
  "function",
  "table",
  "memory",
  "global",
  "export",
  "start",
  "element",
  "code",
  "data",
  "data count",
  "tag",
];
// Position of each section id in the order the binary format requires (the tag section sits
// between memory and global, data count between element and code).
const RANK = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 12, 13, 11, 6];
const TYPE_SECTION = 1,
  IMPORT_SECTION = 2,
  GLOBAL_SECTION = 6,
  EXPORT_SECTION = 7;

// Value types and block/heap types of the instruction sets weft meters (MVP, SIMD, reference types).
const VALUE_TYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [0x7f, "i32"],
  [0x7e, "i64"],
  [0x7d, "f32"],
  [0x7c, "f64"],
  [0x7b, "v128"],
  [0x70, "funcref"],
  [0x6f, "externref"],
]);
// The same as signed LEB128 values, which is how block types and heap types are decoded.
const BLOCK_TYPES = new Set([-64, -1, -2, -3, -4, -5, -16, -17]);
const HEAP_TYPES = new Set([-16, -17]);
const GC = "typed function references or GC";

// What follows each one-byte opcode in a function body; 0 marks an opcode weft refuses.
const NONE = 1,
  BLOCK = 2,
  LOOP = 3,
  INDEX = 4,
  INDEX2 = 5,
  BR_TABLE = 6,
  FUNC = 7,
  MEMARG = 8;
const S32 = 9,
  S64 = 10,
  BYTES4 = 11,
  BYTES8 = 12,
  SELECT_T = 13,
  REF_NULL = 14,
  PREFIX_FC = 15,
  PREFIX_FD = 16,
  GLOBAL = 17;
const IMMEDIATES = new Uint8Array(256);
for (const [kind, from, to] of [
  [NONE, 0x00, 0x01],
  [BLOCK, 0x02, 0x02],
  [LOOP, 0x03, 0x03],
  [BLOCK, 0x04, 0x04],
  [NONE, 0x05, 0x05],
  [NONE, 0x0b, 0x0b],
  [INDEX, 0x0c, 0x0d],
  [BR_TABLE, 0x0e, 0x0e],
  [NONE, 0x0f, 0x0f],
  [FUNC, 0x10, 0x10],
  [INDEX2, 0x11, 0x11],
  [FUNC, 0x12, 0x12],
  [INDEX2, 0x13, 0x13], // return_call, return_call_indirect
  [NONE, 0x1a, 0x1b],
  [SELECT_T, 0x1c, 0x1c],
  [INDEX, 0x20, 0x22],
  [GLOBAL, 0x23, 0x24],
  [INDEX, 0x25, 0x26],
  [MEMARG, 0x28, 0x3e],
  [INDEX, 0x3f, 0x40],
  [S32, 0x41, 0x41],
  [S64, 0x42, 0x42],
  [BYTES4, 0x43, 0x43],
  [BYTES8, 0x44, 0x44],
  [NONE, 0x45, 0xc4], // numeric and sign extension
  [REF_NULL, 0xd0, 0xd0],
  [NONE, 0xd1, 0xd1],
  [FUNC, 0xd2, 0xd2],
  [PREFIX_FC, 0xfc, 0xfc],
  [PREFIX_FD, 0xfd, 0xfd],
])
  IMMEDIATES.fill(kind, from, to + 1);

// SIMD opcodes below the last one (0x113, relaxed SIMD) that are not assigned.
const SIMD_GAPS = new Set([
  0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb, 0xc2, 0xc5, 0xc6, 0xcf, 0xd0, 0xd2, 0xd3, 0xd4, 0xe2, 0xee,
]);

/** The proposal a type byte belongs to, for a type weft refuses. */
function typeFeature(t: number): string {
  if (t === 0x69) return "exception handling"; // exnref
  if (t >= 0x63 && t <= 0x74) return GC; // (ref ht), (ref null ht) and the abstract heap types
  return "not a type weft knows";
}

function refusedFeature(op: number): string {
  if ((op >= 0x06 && op <= 0x0a) || op === 0x18 || op === 0x19 || op === 0x1f) return "exception handling";
  if (op === 0x14 || op === 0x15 || (op >= 0xd3 && op <= 0xd6) || op === 0xfb) return GC;
  if (op === 0xfe) return "threads";
  return "not an instruction weft knows";
}

const hex = (n: number) => `0x${n.toString(16)}`;
const opcode = (n: number) => `0x${n.toString(16).padStart(2, "0")}`;

function refuse(what: string, feature: string, where: string, at: number): never {
  throw new MeterError(`filter uses ${what} (${feature}) ${where}, offset ${hex(at)}, which weft cannot meter; build without that feature`);
}

class Reader {
  readonly bytes: Uint8Array;
  pos: number;
  end: number;
  /** What is being read, for the error when it ends too early. */
  what: string;

  constructor(bytes: Uint8Array, pos: number, end: number, what: string) {
    this.bytes = bytes;
    this.pos = pos;
    this.end = end;
    this.what = what;
  }

  overrun(): never {
    throw new MeterError(
      `the module is truncated or malformed: ${this.what} ends in the middle of an item (offset ${hex(this.pos)}); rebuild the filter, or check that the file was copied whole`,
    );
  }

  u8(): number {
    if (this.pos >= this.end) this.overrun();
    return this.bytes[this.pos++];
  }

  skip(n: number): void {
    if (this.pos + n > this.end) this.overrun();
    this.pos += n;
  }

  u32(): number {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const b = this.u8();
      if (shift === 28 && b > 0x0f)
        throw new MeterError(
          `the module is malformed: ${this.what} has an integer that does not fit 32 bits at offset ${hex(this.pos - 1)}`,
        );
      value |= (b & 0x7f) << shift;
      if (b < 0x80) return value >>> 0;
    }
  }

  /** A signed LEB128 of up to 33 bits: block types and heap types (negative) or type indices. */
  s33(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      const b = this.u8();
      value += (b & 0x7f) * scale;
      scale *= 128;
      if (b < 0x80) return b & 0x40 ? value - scale : value;
      if (i === 4) this.tooLong();
    }
  }

  /** Skips a LEB128 integer of at most `maxBytes` bytes (5 for 32 bits, 10 for 64). */
  leb(maxBytes: number): void {
    for (let i = 0; i < maxBytes; i++) if (this.u8() < 0x80) return;
    this.tooLong();
  }

  private tooLong(): never {
    throw new MeterError(`the module is malformed: ${this.what} has an over-long integer (LEB128) ending at offset ${hex(this.pos - 1)}`);
  }

  /** A length-prefixed byte string; returns its start (the bytes end at pos). */
  vecBytes(): number {
    const n = this.u32();
    const start = this.pos;
    this.skip(n);
    return start;
  }

  done(): void {
    if (this.pos !== this.end)
      throw new MeterError(
        `the module is malformed: ${this.what} has ${this.end - this.pos} bytes left over at offset ${hex(this.pos)}; rebuild the filter`,
      );
  }
}

class Writer {
  buf: Uint8Array;
  len = 0;

  constructor(capacity: number) {
    this.buf = new Uint8Array(capacity);
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    grown.set(this.buf.subarray(0, this.len));
    this.buf = grown;
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.len++] = b;
  }

  u32(v: number): void {
    this.room(5);
    do {
      const b = v & 0x7f;
      v >>>= 7;
      this.buf[this.len++] = v ? b | 0x80 : b;
    } while (v);
  }

  s32(v: number): void {
    this.room(5);
    for (;;) {
      const b = v & 0x7f;
      v >>= 7;
      if ((v === 0 && !(b & 0x40)) || (v === -1 && b & 0x40)) {
        this.buf[this.len++] = b;
        return;
      }
      this.buf[this.len++] = b | 0x80;
    }
  }

  bytes(src: Uint8Array, from = 0, to = src.length): void {
    this.room(to - from);
    this.buf.set(src.subarray(from, to), this.len);
    this.len += to - from;
  }

  name(s: Uint8Array): void {
    this.u32(s.length);
    this.bytes(s);
  }

  /** Appends `w`'s contents with their size in front (a section, a body, a subsection). */
  sized(w: Writer): void {
    this.u32(w.len);
    this.bytes(w.buf, 0, w.len);
  }
}

function equalBytes(a: Uint8Array, from: number, to: number, b: Uint8Array): boolean {
  if (to - from !== b.length) return false;
  for (let i = 0; i < b.length; i++) if (a[from + i] !== b[i]) return false;
  return true;
}

function checkHeader(input: Uint8Array): void {
  if (input.length === 0) throw new MeterError("not a WebAssembly module (the file is empty)");
  if (!MAGIC.every((b, i) => input[i] === b)) {
    const head = input.subarray(0, 8);
    const text = String.fromCharCode(...head).replace(/[^\x20-\x7e]/g, ".");
    throw new MeterError(
      `not a WebAssembly module (file starts with ${[...head].map((b) => b.toString(16).padStart(2, "0")).join(" ")}, "${text}"); a WebAssembly binary starts with 00 61 73 6d ("\\0asm"): point the filter at the compiled .wasm file`,
    );
  }
  if (input.length < 8)
    throw new MeterError(`the module is truncated: it is ${input.length} bytes long, shorter than the 8-byte WebAssembly header`);
  const version = input[4] | (input[5] << 8);
  const layer = input[6] | (input[7] << 8);
  if (layer === 1) {
    throw new MeterError(
      `this is a WebAssembly component (component model, version ${hex(version)}), not a core module; weft runs core modules only: transpile the component (e.g. jco transpile) or build the filter as a core module (docs/filter-abi.md)`,
    );
  }
  if (version !== 1 || layer !== 0)
    throw new MeterError(`unsupported WebAssembly binary version ${hex(version)} (layer ${layer}); weft meters version 1 core modules`);
}

export function meter(input: Uint8Array, options: MeterOptions): MeteredModule {
  const limit = options.maxMemoryPages;
  if (!Number.isInteger(limit) || limit < 0 || limit > 65536)
    throw new RangeError(`maxMemoryPages must be an integer from 0 to 65536, got ${limit}`);
  checkHeader(input);
  return new Metering(input, limit).run();
}

/** One rewrite: reads `input` section by section and writes the metered module. */
class Metering {
  private readonly input: Uint8Array;
  private readonly limit: number;
  private readonly out: Writer;
  private readonly section = new Writer(1024);
  private readonly body = new Writer(1024);
  private readonly emitted = new Set<number>();
  private typeCount = 0;
  /** Each type's signature, by type index. */
  private readonly signatures: string[] = [];
  private readonly functionImports: FunctionImport[] = [];
  private importedFuncs = 0;
  private importedGlobals = 0;
  private fuelIndex = 0;
  /** The fuel check inserted at every function entry and loop head. */
  private fuelCode = new Uint8Array(0);

  constructor(input: Uint8Array, limit: number) {
    this.input = input;
    this.limit = limit;
    this.out = new Writer(input.length + (input.length >> 3) + 64);
  }

  run(): MeteredModule {
    const input = this.input;
    this.out.bytes(input, 0, 8);
    const top = new Reader(input, 8, input.length, "the module");
    let lastRank = 0;
    while (top.pos < input.length) {
      const at = top.pos;
      const id = top.u8();
      top.what = `the header of the section at offset ${hex(at)}`;
      const size = top.u32();
      top.what = "the module";
      if (id >= SECTION_NAMES.length)
        throw new MeterError(
          `the module has an unknown section id ${id} at offset ${hex(at)}; it was built for a newer WebAssembly than weft meters`,
        );
      const name = `section ${id} (${SECTION_NAMES[id]})`;
      if (top.pos + size > input.length) {
        throw new MeterError(
          `the module is truncated: ${name} at offset ${hex(at)} declares ${size} bytes but only ${input.length - top.pos} remain; check that the file was copied whole`,
        );
      }
      const r = new Reader(input, top.pos, top.pos + size, name);
      top.pos += size;
      if (id === 0) {
        this.custom(r);
        continue;
      }
      if (RANK[id] <= lastRank) throw new MeterError(`the module is malformed: ${name} at offset ${hex(at)} is out of order or repeated`);
      lastRank = RANK[id];
      this.addMissing(RANK[id]);
      this.emitted.add(id);
      this.rewrite(id, r, at);
    }
    this.addMissing(Infinity);
    return { bytes: this.out.buf.slice(0, this.out.len), functionImports: this.functionImports };
  }

  /** Adds the sections the metering needs that the module does not have, in their place. */
  private addMissing(rank: number): void {
    for (const id of [TYPE_SECTION, IMPORT_SECTION, GLOBAL_SECTION, EXPORT_SECTION]) {
      if (RANK[id] < rank && !this.emitted.has(id)) {
        this.emitted.add(id);
        this.rewrite(id, null, 0);
      }
    }
  }

  /** Rewrites one section (`r` null: the section is absent and only weft's entries go in). */
  private rewrite(id: number, r: Reader | null, at: number): void {
    const w = this.section;
    w.len = 0;
    const start = r ? r.pos : 0;
    switch (id) {
      case 1:
        this.types(r, w);
        break;
      case 2:
        this.imports(r, w);
        break;
      case 4:
        this.tables(r!);
        w.bytes(this.input, start, r!.end);
        break;
      case 5:
        this.memories(r!, w);
        break;
      case 6:
        this.globals(r, w);
        break;
      case 7:
        this.exports(r, w);
        break;
      case 8: // start
        w.u32(this.func(r!.u32()));
        r!.done();
        break;
      case 9:
        this.elements(r!, w);
        break;
      case 10:
        this.code(r!, w);
        break;
      // biome-ignore lint/suspicious/noFallthroughSwitchClause: refuse() throws (it returns never)
      case 13:
        refuse("a tag section", "exception handling", "in the module", at);
      default: // function, data, data count: nothing in them changes
        w.bytes(this.input, start, r!.end);
    }
    this.out.byte(id);
    this.out.sized(w);
  }

  /** The fuel global takes the first index past the module's own: a module must not reach it. */
  private global(index: number, where: string, at: number): void {
    if (index >= this.fuelIndex)
      throw new MeterError(`the module is malformed: it refers to global ${index}, which does not exist, ${where}, offset ${hex(at)}`);
  }

  private func(index: number): number {
    return index < this.importedFuncs ? index : index + 1;
  }

  private valueType(r: Reader, where: string): string {
    const at = r.pos;
    const t = r.u8();
    const name = VALUE_TYPE_NAMES.get(t);
    if (!name) refuse(`value type ${opcode(t)}`, typeFeature(t), where, at);
    return name!;
  }

  private limits(r: Reader, kind: string, where: string): { flags: number; min: number; max: number | null } {
    const at = r.pos;
    const flags = r.u32();
    if (flags & 4) refuse(`a 64-bit ${kind}`, `${kind}64`, where, at);
    if (flags > 3) refuse(`${kind} limits flags ${hex(flags)}`, "not a limit weft knows", where, at);
    const min = r.u32();
    return { flags, min, max: flags & 1 ? r.u32() : null };
  }

  private types(r: Reader | null, w: Writer): void {
    const count = r ? r.u32() : 0;
    const start = r ? r.pos : 0;
    for (let i = 0; i < count; i++) {
      const at = r!.pos;
      const form = r!.u8();
      if (form !== 0x60)
        refuse(`type form ${opcode(form)}`, form >= 0x4e && form <= 0x5f ? GC : "not a type weft knows", "in the type section", at);
      const [params, results] = [0, 1].map(() => Array.from({ length: r!.u32() }, () => this.valueType(r!, "in the type section")));
      this.signatures.push(`(${params.join(", ")})${results.length ? ` -> ${results.join(", ")}` : ""}`);
    }
    r?.done();
    this.typeCount = count;
    w.u32(count + 1);
    if (r) w.bytes(this.input, start, r.end);
    w.bytes(Uint8Array.of(0x60, 0, 0)); // tick: [] -> []
  }

  private imports(r: Reader | null, w: Writer): void {
    const count = r ? r.u32() : 0;
    const start = r ? r.pos : 0;
    for (let i = 0; i < count; i++) {
      const at = r!.pos;
      const moduleStart = r!.vecBytes();
      const moduleEnd = r!.pos;
      if (equalBytes(this.input, moduleStart, moduleEnd, TICK_MODULE)) {
        throw new MeterError(
          `the module imports from "weft:meter" (offset ${hex(at)}), a namespace weft reserves for its metering; rename that import`,
        );
      }
      const nameStart = r!.vecBytes();
      const kindAt = r!.pos;
      const text = (from: number, to: number) => new TextDecoder().decode(this.input.subarray(from, to));
      const field = () => `"${text(moduleStart, moduleEnd)}" "${text(nameStart, kindAt)}"`;
      const kind = r!.u8();
      if (kind === 0) {
        const typeAt = r!.pos;
        const type = r!.u32();
        if (type >= this.signatures.length)
          throw new MeterError(
            `the module is malformed: import ${field()} has type ${type}, which does not exist, at offset ${hex(typeAt)}`,
          );
        this.functionImports.push({
          module: text(moduleStart, moduleEnd),
          name: text(nameStart, kindAt),
          signature: this.signatures[type],
        });
        this.importedFuncs++;
      } else if (kind === 1) {
        this.tableType(r!, "in the import section");
      } else if (kind === 2) {
        throw new MeterError(
          `the module imports its memory (${field()}); weft filters define and export their own memory (docs/filter-abi.md): build without an imported memory (AssemblyScript: drop --importMemory)`,
        );
      } else if (kind === 3) {
        this.valueType(r!, "in the import section");
        r!.u8();
        this.importedGlobals++;
      } else if (kind === 4) {
        refuse(`an imported tag (${field()})`, "exception handling", "in the import section", kindAt);
      } else {
        throw new MeterError(`the module is malformed: import ${field()} has an unknown kind ${kind} at offset ${hex(kindAt)}`);
      }
    }
    r?.done();
    w.u32(count + 1);
    if (r) w.bytes(this.input, start, r.end);
    // Last among the function imports, so tick's index is the number of imported functions.
    w.name(TICK_MODULE);
    w.name(TICK_NAME);
    w.byte(0);
    w.u32(this.typeCount);
  }

  private tableType(r: Reader, where: string): void {
    const at = r.pos;
    const t = r.u8();
    if (t === 0x40) refuse("a table with an initializer", GC, where, at);
    if (!HEAP_TYPES.has(t - 128)) refuse(`table type ${opcode(t)}`, typeFeature(t), where, at);
    this.limits(r, "table", where);
  }

  private tables(r: Reader): void {
    const count = r.u32();
    for (let i = 0; i < count; i++) this.tableType(r, "in the table section");
    r.done();
  }

  private memories(r: Reader, w: Writer): void {
    const count = r.u32();
    if (count > 1)
      throw new MeterError(
        `the module defines ${count} memories; weft limits a filter to one memory (limits.memoryMiB): build without multiple memories`,
      );
    w.u32(count);
    for (let i = 0; i < count; i++) {
      const { flags, min, max } = this.limits(r, "memory", "in the memory section");
      if (min > this.limit) {
        const mib = (pages: number) => `${pages / 16} MiB`;
        throw new MeterError(
          `filter needs ${min} pages (${mib(min)}) of memory at start, its limit is ${this.limit} pages (${mib(this.limit)}); raise limits.memoryMiB or build the filter with a smaller initial memory (AssemblyScript: --initialMemory)`,
        );
      }
      w.byte(flags | 1);
      w.u32(min);
      w.u32(max === null ? this.limit : Math.min(max, this.limit));
    }
    r.done();
  }

  private globals(r: Reader | null, w: Writer): void {
    const count = r ? r.u32() : 0;
    this.fuelIndex = this.importedGlobals + count;
    w.u32(count + 2);
    for (let i = 0; i < count; i++) {
      const where = `in the initializer of global ${this.importedGlobals + i}`;
      const start = r!.pos;
      this.valueType(r!, where);
      r!.u8();
      w.bytes(this.input, start, r!.pos);
      this.instructions(r!, w, where, true);
    }
    r?.done();
    w.bytes(Uint8Array.of(0x7f, 1, 0x41)); // mut i32 = START_FUEL
    w.s32(START_FUEL);
    w.byte(0x0b);
    w.bytes(Uint8Array.of(0x7f, 1, 0x41, 0, 0x0b)); // weft_grow: mut i32 = 0

    const fuel = new Writer(24);
    const tick = this.importedFuncs;
    // fuel -= 1; if (fuel <= 0) tick();
    fuel.byte(0x23), fuel.u32(this.fuelIndex), fuel.bytes(Uint8Array.of(0x41, 1, 0x6b));
    fuel.byte(0x24), fuel.u32(this.fuelIndex);
    fuel.byte(0x23), fuel.u32(this.fuelIndex), fuel.bytes(Uint8Array.of(0x41, 0, 0x4c, 0x04, 0x40));
    fuel.byte(0x10), fuel.u32(tick), fuel.byte(0x0b);
    this.fuelCode = fuel.buf.slice(0, fuel.len);
  }

  private exports(r: Reader | null, w: Writer): void {
    const count = r ? r.u32() : 0;
    w.u32(count + 2);
    for (let i = 0; i < count; i++) {
      const start = r!.pos;
      const nameStart = r!.vecBytes();
      for (const reserved of [FUEL_EXPORT, GROW_EXPORT]) {
        if (equalBytes(this.input, nameStart, r!.pos, reserved)) {
          const name = new TextDecoder().decode(reserved);
          throw new MeterError(
            `the module already exports "${name}" (offset ${hex(start)}), a name weft's metering reserves; rename that export`,
          );
        }
      }
      const kind = r!.u8();
      w.bytes(this.input, start, r!.pos);
      const indexAt = r!.pos;
      const index = r!.u32();
      if (kind === 3) this.global(index, "in the export section", indexAt);
      w.u32(kind === 0 ? this.func(index) : index);
    }
    r?.done();
    w.name(FUEL_EXPORT);
    w.byte(3);
    w.u32(this.fuelIndex);
    w.name(GROW_EXPORT);
    w.byte(3);
    w.u32(this.fuelIndex + 1);
  }

  private elements(r: Reader, w: Writer): void {
    const count = r.u32();
    w.u32(count);
    for (let i = 0; i < count; i++) {
      const where = `in element segment ${i}`;
      const at = r.pos;
      // Bit 0: passive or declarative; bit 1: explicit table (active) or declarative;
      // bit 2: elements are expressions rather than function indices.
      const flags = r.u32();
      if (flags > 7) throw new MeterError(`the module is malformed: element segment ${i} has unknown flags ${flags} at offset ${hex(at)}`);
      w.u32(flags);
      if (!(flags & 1)) {
        if (flags & 2) w.u32(r.u32());
        this.instructions(r, w, where, true);
      }
      if (flags & 3) {
        const kindAt = r.pos;
        const kind = r.u8();
        if (flags & 4 ? !HEAP_TYPES.has(kind - 128) : kind !== 0) refuse(`element type ${opcode(kind)}`, typeFeature(kind), where, kindAt);
        w.byte(kind);
      }
      const n = r.u32();
      w.u32(n);
      for (let j = 0; j < n; j++) {
        if (flags & 4) this.instructions(r, w, where, true);
        else w.u32(this.func(r.u32()));
      }
    }
    r.done();
  }

  private code(r: Reader, w: Writer): void {
    const count = r.u32();
    w.u32(count);
    const body = this.body;
    const sectionEnd = r.end;
    for (let i = 0; i < count; i++) {
      const index = this.importedFuncs + i;
      r.what = `the body of function ${index}`;
      const size = r.u32();
      if (r.pos + size > sectionEnd) r.overrun();
      r.end = r.pos + size;
      const start = r.pos;
      const groups = r.u32();
      for (let j = 0; j < groups; j++) {
        r.leb(5);
        this.valueType(r, `in the locals of function ${index}`);
      }
      body.len = 0;
      body.bytes(this.input, start, r.pos);
      body.bytes(this.fuelCode);
      this.instructions(r, body, `at function ${index}`, false);
      w.sized(body);
      r.end = sectionEnd;
    }
    r.what = "section 10 (code)";
    r.done();
  }

  /**
   * Copies instructions from `r` to `w`, shifting function indices and putting the fuel check
   * after each loop's block type. A constant expression stops after its `end`; a body runs to
   * the reader's end.
   */
  private instructions(r: Reader, w: Writer, where: string, constant: boolean): void {
    const input = this.input;
    let from = r.pos;
    while (constant || r.pos < r.end) {
      const at = r.pos;
      const op = r.u8();
      switch (IMMEDIATES[op]) {
        case NONE:
          if (constant && op === 0x0b) {
            w.bytes(input, from, r.pos);
            return;
          }
          break;
        case BLOCK:
          this.blockType(r, where);
          break;
        case LOOP:
          this.blockType(r, where);
          w.bytes(input, from, r.pos);
          w.bytes(this.fuelCode);
          from = r.pos;
          break;
        case INDEX:
          r.leb(5);
          if (op === 0x40) {
            // memory.grow: keep its result on the stack and in weft_grow.
            w.bytes(input, from, r.pos);
            w.byte(0x24), w.u32(this.fuelIndex + 1), w.byte(0x23), w.u32(this.fuelIndex + 1);
            from = r.pos;
          }
          break;
        case GLOBAL:
          this.global(r.u32(), where, at);
          break;
        case INDEX2:
          r.leb(5);
          r.leb(5);
          break;
        case BR_TABLE:
          for (let n = r.u32(); n >= 0; n--) r.leb(5); // the labels and the default
          break;
        case FUNC:
          w.bytes(input, from, r.pos);
          w.u32(this.func(r.u32()));
          from = r.pos;
          break;
        case MEMARG:
          this.memarg(r);
          break;
        case S32:
          r.leb(5);
          break;
        case S64:
          r.leb(10);
          break;
        case BYTES4:
          r.skip(4);
          break;
        case BYTES8:
          r.skip(8);
          break;
        case SELECT_T:
          for (let n = r.u32(); n > 0; n--) this.valueType(r, where);
          break;
        case REF_NULL: {
          const typeAt = r.pos;
          const t = r.s33();
          if (!HEAP_TYPES.has(t)) refuse(`ref.null of heap type ${opcode(r.bytes[typeAt])}`, typeFeature(r.bytes[typeAt]), where, typeAt);
          break;
        }
        case PREFIX_FC: {
          const sub = r.u32();
          if (sub > 17) refuse(`instruction 0xfc ${opcode(sub)}`, "not an instruction weft knows", where, at);
          // 8..17 are bulk memory and table instructions: one index, two for
          // memory.init, memory.copy, table.init and table.copy (8, 10, 12, 14).
          if (sub >= 8) r.leb(5);
          if (sub >= 8 && sub <= 14 && sub % 2 === 0) r.leb(5);
          break;
        }
        case PREFIX_FD:
          this.simd(r, where, at);
          break;
        default:
          refuse(`instruction ${opcode(op)}`, refusedFeature(op), where, at);
      }
    }
    w.bytes(input, from, r.pos);
  }

  private blockType(r: Reader, where: string): void {
    const at = r.pos;
    const t = r.s33();
    if (t < 0 && !BLOCK_TYPES.has(t)) refuse(`block type ${opcode(r.bytes[at])}`, typeFeature(r.bytes[at]), where, at);
  }

  private memarg(r: Reader): void {
    const align = r.u32();
    if (align & 0x40) r.leb(5); // multi-memory: a memory index follows
    r.leb(10); // the offset (u64 in the memory64 encoding)
  }

  private simd(r: Reader, where: string, at: number): void {
    const sub = r.u32();
    if (sub <= 0x0b || sub === 0x5c || sub === 0x5d)
      this.memarg(r); // loads, stores, load*_zero
    else if (sub === 0x0c || sub === 0x0d)
      r.skip(16); // v128.const, i8x16.shuffle
    else if (sub >= 0x15 && sub <= 0x22)
      r.skip(1); // extract_lane, replace_lane
    else if (sub >= 0x54 && sub <= 0x5b) {
      this.memarg(r); // load*_lane, store*_lane
      r.skip(1);
    } else if (sub > 0x113 || SIMD_GAPS.has(sub)) refuse(`instruction 0xfd ${opcode(sub)}`, "not an instruction weft knows", where, at);
  }

  private custom(r: Reader): void {
    const start = r.pos;
    const nameStart = r.vecBytes();
    const w = this.section;
    w.len = 0;
    if (!equalBytes(this.input, nameStart, r.pos, NAME)) {
      w.bytes(this.input, start, r.end);
    } else {
      // Engines ignore a malformed or misplaced name section (it belongs after the data
      // section), so such a one is dropped rather than refusing the filter; before the
      // import section its indices could not be shifted.
      if (!this.emitted.has(IMPORT_SECTION)) return;
      w.name(NAME);
      try {
        this.names(r, w);
      } catch (e) {
        if (!(e instanceof MeterError)) throw e;
        return;
      }
    }
    this.out.byte(0);
    this.out.sized(w);
  }

  /** The name section with its function indices shifted (subsections 1: functions, 2: locals, 3: labels). */
  private names(r: Reader, w: Writer): void {
    const sub = new Writer(256);
    while (r.pos < r.end) {
      const id = r.u8();
      const size = r.u32();
      const end = r.pos + size;
      if (end > r.end) r.overrun();
      w.byte(id);
      if (id < 1 || id > 3) {
        w.u32(size);
        w.bytes(this.input, r.pos, end);
        r.pos = end;
        continue;
      }
      sub.len = 0;
      const count = r.u32();
      sub.u32(count);
      for (let i = 0; i < count; i++) {
        sub.u32(this.func(r.u32()));
        const start = r.pos;
        if (id === 1) r.vecBytes();
        else {
          for (let n = r.u32(); n > 0; n--) {
            r.u32();
            r.vecBytes();
          }
        }
        sub.bytes(this.input, start, r.pos);
      }
      if (r.pos !== end) r.overrun();
      w.sized(sub);
    }
  }
}
