// Filter modules assembled byte by byte for the hostile-input corpus (wasm.test.ts): what no
// SDK would emit on purpose (a trap in one chosen phase, a WASI import, a wrong signature, a
// header a filter must not set), small enough to read as text. A body is a list of opcodes
// and symbolic references — a host function to call by name, a string to place in a data
// segment — that `filterModule` resolves into one module. The ABI functions the corpus
// calls are known by name with their signatures; any other import is declared in `imports`.
import { s64, u32, wasm, custom } from "../fixtures/meter/handmade.ts";
import type { FilterMessage, FilterPhaseName } from "../../proxy/filters/message.ts";

export const I32 = 0x7f;
export const I64 = 0x7e;
export const F64 = 0x7c;

/** A reference resolved when the module is assembled. */
type Ref =
  | { call: string } // call a function (an import or one of the module's own) by name
  | { utf8: string } // push i32 pointer and i32 length of these UTF-8 bytes in memory
  | { assemblyScript: string }; // push i32 pointer of an AssemblyScript string (UTF-16, length at pointer - 4)

export type Code = (number | Ref)[];

const name = (s: string) => {
  const bytes = new TextEncoder().encode(s);
  return [...u32(bytes.length), ...bytes];
};
const vec = (items: number[][]) => [...u32(items.length), ...items.flat()];
const section = (id: number, items: number[][]) => {
  const body = vec(items);
  return [id, ...u32(body.length), ...body];
};

/** Opcodes the corpus uses, in the order of the spec's instruction index. */
export const op = {
  unreachable: [0x00],
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  if: [0x04, 0x40],
  else: [0x05],
  end: [0x0b],
  br: (depth: number) => [0x0c, ...u32(depth)],
  brIf: (depth: number) => [0x0d, ...u32(depth)],
  return: [0x0f],
  call: (fn: string): Code => [{ call: fn }],
  drop: [0x1a],
  localGet: (i: number) => [0x20, ...u32(i)],
  localSet: (i: number) => [0x21, ...u32(i)],
  localTee: (i: number) => [0x22, ...u32(i)],
  i32Load: [0x28, 2, 0],
  i32Store: [0x36, 2, 0],
  memoryGrow: [0x40, 0],
  i32: (v: number) => [0x41, ...s64(BigInt(v))],
  i64: (v: number | bigint) => [0x42, ...s64(BigInt(v))],
  i32Ne: [0x47],
  i64Eqz: [0x50],
  i32Add: [0x6a],
  memoryFill: [0xfc, 11, 0],
};

/** The ABI functions (docs/filter-abi.md) the corpus calls, with their signatures. */
const ABI: Record<string, { module: string; params: number[]; results: number[] }> = {};
for (const [fn, params, results] of [
  ["alloc", [I64], [I64]],
  ["load_u8", [I64], [I32]],
  ["store_u8", [I64, I32], []],
  ["error_set", [I64], []],
  ["var_get", [I64], [I64]],
  ["var_set", [I64, I64], []],
  ["http_request", [I64, I64], [I64]],
] as const)
  ABI[fn] = { module: "extism:host/env", params: [...params], results: [...results] };
for (const [fn, params, results] of [
  ["weft_get", [I64], [I64]],
  ["weft_set", [I64, I64], []],
  ["weft_add", [I64, I64], []],
  ["weft_remove", [I64], []],
  ["weft_respond", [I32, I64, I64], []],
  ["weft_read", [I64, I32], []],
  ["weft_write", [I32, I32], [I64]],
] as const)
  ABI[fn] = { module: "extism:host/user", params: [...params], results: [...results] };
ABI.abort = { module: "env", params: [I32, I32, I32, I32], results: [] };

export interface Import {
  module: string;
  name: string;
  kind?: "function" | "global";
  params?: number[];
  results?: number[];
}

export interface Func {
  name: string;
  params?: number[];
  results?: number[];
  locals?: number[];
  body: Code;
  /** Exported under its name. */
  exported?: boolean;
}

/** The locals every phase function has: an i32 counter (for `repeat`) and an i64 to keep a block in. */
const COUNTER = 0;
export const KEPT = 1;

export interface FilterSpec {
  /** Phase functions, each `() -> i32` with the locals COUNTER and KEPT, exported under the phase's name. */
  phases?: Partial<Record<FilterPhaseName, Code>>;
  funcs?: Func[];
  /** Imports beyond the ABI's (which are added when a body calls them). */
  imports?: Import[];
  /** Default: one page, no maximum, exported as "memory". */
  memory?: { min: number; max?: number; exported?: boolean } | "imported";
  /** A function (of `funcs`) to run as the start function. */
  start?: string;
  /** The weft.manifest custom section's text. */
  manifest?: string;
}

// Where the strings of a module's data segment start.
const DATA_BASE = 1024;

/** Assembles a filter module from `spec`. */
export function filterModule(spec: FilterSpec): Uint8Array {
  const funcs: Func[] = [
    ...Object.entries(spec.phases ?? {}).map(([phase, body]) => ({
      name: phase,
      results: [I32],
      locals: [I32, I64],
      body,
      exported: true,
    })),
    ...(spec.funcs ?? []),
  ];
  const imports: Import[] = [...(spec.imports ?? [])];
  const importIndex = (fn: string) => imports.findIndex((i) => i.name === fn && (i.kind ?? "function") === "function");
  for (const f of funcs) {
    for (const item of f.body) {
      if (typeof item === "object" && "call" in item && importIndex(item.call) < 0 && !funcs.some((g) => g.name === item.call)) {
        const known = ABI[item.call];
        if (!known)
          throw new Error(`${f.name} calls ${item.call}, which is neither an ABI function, a declared import nor a function of the module`);
        imports.push({ name: item.call, ...known });
      }
    }
  }
  const importedFuncs = imports.filter((i) => (i.kind ?? "function") === "function");
  const funcIndex = (fn: string) => {
    const imported = importedFuncs.findIndex((i) => i.name === fn);
    if (imported >= 0) return imported;
    const own = funcs.findIndex((g) => g.name === fn);
    if (own < 0) throw new Error(`no function ${fn}`);
    return importedFuncs.length + own;
  };

  const types: string[] = [];
  const typeOf = (params: number[], results: number[]) => {
    const key = `${params.join(",")}>${results.join(",")}`;
    if (!types.includes(key)) types.push(key);
    return types.indexOf(key);
  };

  const data: number[] = [];
  const place = (bytes: number[], align: number) => {
    while ((DATA_BASE + data.length) % align) data.push(0);
    const at = DATA_BASE + data.length;
    data.push(...bytes);
    return at;
  };
  const resolve = (item: number | Ref): number[] => {
    if (typeof item === "number") return [item];
    if ("call" in item) return [0x10, ...u32(funcIndex(item.call))];
    if ("utf8" in item) {
      const bytes = [...new TextEncoder().encode(item.utf8)];
      return [...op.i32(place(bytes, 1)), ...op.i32(bytes.length)];
    }
    const units = [...item.assemblyScript].flatMap((c) => [c.charCodeAt(0) & 0xff, c.charCodeAt(0) >> 8]);
    const length = units.length;
    const header = place([length & 0xff, (length >> 8) & 0xff, 0, 0, ...units], 4);
    return op.i32(header + 4);
  };

  const importEntries = imports.map((i) =>
    i.kind === "global"
      ? [...name(i.module), ...name(i.name), 0x03, I32, 0x00]
      : [...name(i.module), ...name(i.name), 0x00, ...u32(typeOf(i.params ?? [], i.results ?? []))],
  );
  if (spec.memory === "imported") importEntries.push([...name("env"), ...name("memory"), 0x02, 0x00, 1]);
  const funcTypes = funcs.map((f) => [...u32(typeOf(f.params ?? [], f.results ?? []))]);
  const bodies = funcs.map((f) => {
    const locals = (f.locals ?? []).map((t) => [1, t]);
    const body = [...vec(locals), ...f.body.flatMap(resolve), 0x0b];
    return [...u32(body.length), ...body];
  });
  // At least as many pages as the strings need.
  const declared = spec.memory === "imported" ? null : (spec.memory ?? { min: 1 });
  const memory = declared && { ...declared, min: Math.max(declared.min, Math.ceil((DATA_BASE + data.length) / 65536)) };
  const exports = funcs.flatMap((f, i) => (f.exported ? [[...name(f.name), 0x00, ...u32(importedFuncs.length + i)]] : []));
  if (memory && memory.exported !== false) exports.push([...name("memory"), 0x02, 0]);

  const typeEntries = types.map((key) => {
    const [params, results] = key.split(">").map((list) => (list ? list.split(",").map(Number) : []));
    return [0x60, ...vec(params!.map((t) => [t])), ...vec(results!.map((t) => [t]))];
  });
  return wasm(
    section(1, typeEntries),
    importEntries.length ? section(2, importEntries) : [],
    section(3, funcTypes),
    memory
      ? section(5, [[memory.max === undefined ? 0 : 1, ...u32(memory.min), ...(memory.max === undefined ? [] : u32(memory.max))]])
      : [],
    section(7, exports),
    spec.start ? [8, ...u32(u32(funcIndex(spec.start)).length), ...u32(funcIndex(spec.start))] : [],
    section(10, bodies),
    data.length ? section(11, [[0, ...op.i32(DATA_BASE), 0x0b, ...vec(data.map((b) => [b]))]]) : [],
    spec.manifest === undefined ? [] : custom("weft.manifest", [...new TextEncoder().encode(spec.manifest)]),
  );
}

// ---- pieces of filter code ----

/** A memory block holding `text` (i64 on the stack). */
export const block = (text: string): Code => [{ utf8: text }, ...op.call("weft_write")];

/** weft_get(name): a block or 0 (i64 on the stack). */
const get = (header: string): Code => [...block(header), ...op.call("weft_get")];

export const set = (header: string, value: string): Code => [...block(header), ...block(value), ...op.call("weft_set")];
export const add = (header: string, value: string): Code => [...block(header), ...block(value), ...op.call("weft_add")];
export const remove = (header: string): Code => [...block(header), ...op.call("weft_remove")];
export const respond = (status: number, headers: string, body: string): Code => [
  ...op.i32(status),
  ...block(headers),
  ...block(body),
  ...op.call("weft_respond"),
];

/** The request header that tells a filter to misbehave: without it, every filter here is well behaved. */
export const HOSTILE = "x-hostile";

/** A request's on_request_headers message, with the HOSTILE header when `hostile`, for calling a filter directly. */
export function hostileMessage(hostile: boolean): FilterMessage {
  return {
    phase: "on_request_headers",
    request: { method: "GET", path: "/", authority: "app", scheme: "http", headers: hostile ? [HOSTILE, "1"] : [] },
    response: null,
    body: null,
    attributes: { direction: "inbound", sourceAddress: "127.0.0.1", sourcePrincipal: "", requestId: "r" },
    reply: null,
  };
}

/** Runs `code` only for requests that carry the HOSTILE header (request.x reads the request's header in any phase). */
export const whenHostile = (code: Code): Code => [...get(`request.${HOSTILE}`), ...op.i64Eqz, ...op.if, ...op.else, ...code, ...op.end];

/** Runs `code` `times` times (in a phase function: it counts in COUNTER). */
export const repeat = (times: number, code: Code): Code => [
  ...op.i32(times),
  ...op.localSet(COUNTER),
  ...op.loop,
  ...code,
  ...op.localGet(COUNTER),
  ...op.i32(-1),
  ...op.i32Add,
  ...op.localTee(COUNTER),
  ...op.brIf(0),
  ...op.end,
];

/** The phase's return value for "go on". */
export const proceed: Code = op.i32(0);

/** A filter whose `phase` runs `code` for hostile requests (and, in a body phase, buffers that body); other phases are absent. */
export function hostileIn(phase: FilterPhaseName, code: Code, extra: Omit<FilterSpec, "phases"> = {}): Uint8Array {
  return filterModule({ ...extra, phases: { [phase]: [...whenHostile(code), ...proceed] } });
}

/** A module importing `fn` from `module` (with that signature) and calling it in on_request_headers. */
export function importing(module: string, fn: string, params: number[], results: number[]): Uint8Array {
  const args = params.flatMap((t) => (t === I64 ? op.i64(0) : t === F64 ? [0x44, 0, 0, 0, 0, 0, 0, 0, 0] : op.i32(0)));
  const drop = results.flatMap(() => op.drop);
  return filterModule({
    imports: [{ module, name: fn, params, results }],
    phases: { on_request_headers: [...args, ...op.call(fn), ...drop, ...proceed] },
  });
}
