// The functions a filter may import (docs/filter-abi.md): Extism's kernel functions over
// memory blocks, weft's host functions, and AssemblyScript's env.abort/env.seed. Each call
// works on the instance's current phase call (`InstanceHost`).
import type { Blocks } from "./blocks.ts";
import { FilterFault } from "./fault.ts";
import type { FilterMessage } from "./message.ts";
import { assign, headersText, lookUp, remove, respond, setBody } from "./message-ops.ts";
import type { FilterState } from "./state.ts";
import { verifySignature } from "./verify.ts";
import type { FunctionImport } from "./meter.ts";

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error"] as const;
export type FilterLogLevelName = (typeof LOG_LEVELS)[number];

/** What the imports need from the instance and its filter. */
export interface InstanceHost extends UserHost {
  readonly blocks: Blocks;
  readonly config: Readonly<Record<string, unknown>>;
  readonly logLevel: number;
  setError(message: string): void;
}

function big(n: number): bigint {
  return BigInt(n);
}

const UTF16 = new TextDecoder("utf-16le");

function readUtf16(memory: WebAssembly.Memory, pointer: number): string {
  if (pointer === 0) return "";
  const bytes = new Uint8Array(memory.buffer);
  if (pointer < 4 || pointer > bytes.length) return "?";
  // AssemblyScript strings: UTF-16, byte length in the object header just before them.
  const length = new DataView(memory.buffer).getUint32(pointer - 4, true);
  if (pointer + length > bytes.length) return "?";
  return UTF16.decode(new Uint8Array(memory.buffer, pointer, length & ~1));
}

/**
 * How a host moves the weft functions' arguments and results across: block offsets in, block
 * offsets out (0 for none). The proxy's blocks are `Blocks`; the reference host's are Extism's.
 */
export interface BlockIO {
  readString(offset: bigint): string;
  /** A block's bytes; a view that is valid until the next write. */
  read(offset: bigint): Uint8Array;
  write(bytes: Uint8Array): bigint;
  writeString(text: string): bigint;
}

/** What the weft functions (`extism:host/user`) need from their host. */
export interface UserHost {
  /** The message of the call in progress (null between calls). */
  readonly message: FilterMessage | null;
  readonly state: FilterState;
  readonly configJson: string;
  readonly filterId: string;
  metric(kind: number, name: string, value: number): void;
  log(level: FilterLogLevelName, message: string): void;
  /** The module's own memory (for weft_read/weft_write). */
  memory(): WebAssembly.Memory;
  /** Moves the call's deadline on by time the host spent on the filter's behalf. */
  extendDeadline(ms: number): void;
}

function current(host: UserHost, fn: string): FilterMessage {
  const message = host.message;
  if (!message) throw new FilterFault("trap", `${fn} was called outside a phase call`);
  return message;
}

/** The weft host functions, over any host's blocks. */
export function userImports(host: UserHost, io: BlockIO): WebAssembly.ModuleImports {
  const str = (offset: bigint) => io.readString(offset);
  const put = (value: string | null) => (value === null ? 0n : io.writeString(value));
  const bytes = (offset: bigint) => (offset === 0n ? EMPTY : io.read(offset));
  // The module's memory as bytes, made again only after a grow detached the last view.
  let guestView = EMPTY;
  const guest = () => {
    if (guestView.byteLength === 0) guestView = new Uint8Array(host.memory().buffer);
    return guestView;
  };
  return {
    weft_get: (name: bigint) => put(lookUp(current(host, "weft_get"), str(name).toLowerCase(), host.filterId)),
    weft_set: (name: bigint, value: bigint) => assign(current(host, "weft_set"), str(name).toLowerCase(), str(value), false),
    weft_add: (name: bigint, value: bigint) => assign(current(host, "weft_add"), str(name).toLowerCase(), str(value), true),
    weft_remove: (name: bigint) => remove(current(host, "weft_remove"), str(name).toLowerCase()),
    weft_headers: () => put(headersText(current(host, "weft_headers"))),
    weft_body: () => {
      const body = current(host, "weft_body").body;
      return body ? io.write(body) : 0n;
    },
    weft_set_body: (offset: bigint) => setBody(current(host, "weft_set_body"), bytes(offset)),
    weft_respond: (status: number, headers: bigint, body: bigint) =>
      respond(current(host, "weft_respond"), status, headers === 0n ? "" : str(headers), bytes(body)),
    weft_config: () => put(host.configJson),
    weft_now_ms: () => BigInt(Date.now()),
    weft_counter_add: (key: bigint, delta: bigint) => BigInt(host.state.addToCounter(str(key), Number(delta))),
    weft_metric: (kind: number, name: bigint, value: number) => host.metric(kind, str(name), value),
    weft_verify: (alg: bigint, key: bigint, data: bigint, signature: bigint) => {
      // A key's first use (parsing and importing it) and the signature check are the host's
      // work, not the filter's: they do not count against the filter's deadline.
      const started = performance.now();
      const { result, problem } = verifySignature(str(alg), str(key), bytes(data), bytes(signature));
      host.extendDeadline(performance.now() - started);
      if (problem) host.log("warn", `weft_verify: ${problem}`);
      return result;
    },
    weft_read: (offset: bigint, pointer: number) => {
      const block = io.read(offset);
      const memory = guest();
      if (pointer < 0 || pointer + block.length > memory.length)
        throw new FilterFault("trap", `weft_read: ${block.length} bytes at ${pointer} do not fit the filter's memory`);
      memory.set(block, pointer);
    },
    weft_write: (pointer: number, length: number) => {
      const memory = guest();
      if (pointer < 0 || length < 0 || pointer + length > memory.length)
        throw new FilterFault("trap", `weft_write: ${length} bytes at ${pointer} are outside the filter's memory`);
      return io.write(memory.subarray(pointer, pointer + length));
    },
  };
}

const EMPTY = new Uint8Array(0);

/** AssemblyScript's runtime imports (`env`): abort as a failure with its message and place, and a seed. */
export function assemblyScriptImports(memory: () => WebAssembly.Memory): WebAssembly.ModuleImports {
  return {
    abort: (message: number, file: number, line: number, column: number) => {
      const m = memory();
      throw new FilterFault("abort", `${readUtf16(m, message) || "abort"} at ${readUtf16(m, file) || "?"}:${line}:${column}`);
    },
    seed: () => Date.now() * Math.random(),
  };
}

/** Everything a filter may import in the proxy: Extism's kernel over `Blocks`, weft's functions, AssemblyScript's env. */
export function buildImports(host: InstanceHost): WebAssembly.Imports {
  const blocks = host.blocks;
  const io: BlockIO = {
    readString: (offset) => blocks.readString(Number(offset)),
    read: (offset) => blocks.read(Number(offset)),
    write: (bytes) => big(blocks.write(bytes)),
    writeString: (text) => big(blocks.writeString(text)),
  };
  const str = io.readString;
  const logAt = (level: FilterLogLevelName) => (offset: bigint) => {
    if (LOG_LEVELS.indexOf(level) >= host.logLevel) host.log(level, str(offset));
  };
  return {
    "extism:host/env": {
      // Served by the kernel module, wasm-to-wasm (blocks.ts).
      ...blocks.kernelFunctions,
      input_offset: () => 0n,
      input_length: () => 0n,
      input_load_u8: () => {
        throw new FilterFault("trap", "a weft filter has no call input: read the request with weft_get (docs/filter-abi.md)");
      },
      input_load_u64: () => {
        throw new FilterFault("trap", "a weft filter has no call input: read the request with weft_get (docs/filter-abi.md)");
      },
      output_set: () => {},
      error_set: (offset: bigint) => host.setError(str(offset)),
      config_get: (offset: bigint) => {
        const value = host.config[str(offset)];
        if (value === undefined || value === null) return 0n;
        return io.writeString(typeof value === "string" ? value : JSON.stringify(value));
      },
      var_get: (offset: bigint) => {
        const value = host.state.getVariable(str(offset));
        return value ? io.write(value) : 0n;
      },
      var_set: (key: bigint, value: bigint) => host.state.setVariable(str(key), value === 0n ? null : io.read(value)),
      log_trace: logAt("trace"),
      log_debug: logAt("debug"),
      log_info: logAt("info"),
      log_warn: logAt("warn"),
      log_error: logAt("error"),
      get_log_level: () => host.logLevel,
      http_request: () => {
        throw new FilterFault("trap", "a filter has no network access: http_request is not available in weft");
      },
      // What a PDK's HTTP client reads after http_request, which traps before it: never a
      // response here, so no status (0) and no headers block (0).
      http_status_code: () => 0,
      http_headers: () => 0n,
    },
    "extism:host/user": userImports(host, io),
    env: assemblyScriptImports(() => host.memory()),
  };
}

/**
 * Every import a filter may name, by module, with the signature it must be imported with (as the
 * meter spells it), checked when a filter loads: a function imported with other types would get
 * values of the wrong type from the host. Extism's kernel functions have Extism's own signatures,
 * so modules built with any Extism PDK link. test/filter-meter.test.ts checks this against buildImports.
 */
export const IMPORT_SIGNATURES: ReadonlyMap<string, ReadonlyMap<string, string>> = new Map(
  Object.entries({
    "extism:host/env": {
      alloc: "(i64) -> i64",
      length: "(i64) -> i64",
      length_unsafe: "(i64) -> i64",
      free: "(i64)",
      load_u8: "(i64) -> i32",
      load_u64: "(i64) -> i64",
      store_u8: "(i64, i32)",
      store_u64: "(i64, i64)",
      input_offset: "() -> i64",
      input_length: "() -> i64",
      input_load_u8: "(i64) -> i32",
      input_load_u64: "(i64) -> i64",
      output_set: "(i64, i64)",
      error_set: "(i64)",
      config_get: "(i64) -> i64",
      var_get: "(i64) -> i64",
      var_set: "(i64, i64)",
      log_trace: "(i64)",
      log_debug: "(i64)",
      log_info: "(i64)",
      log_warn: "(i64)",
      log_error: "(i64)",
      get_log_level: "() -> i32",
      http_request: "(i64, i64) -> i64",
      http_status_code: "() -> i32",
      http_headers: "() -> i64",
    },
    "extism:host/user": {
      weft_get: "(i64) -> i64",
      weft_set: "(i64, i64)",
      weft_add: "(i64, i64)",
      weft_remove: "(i64)",
      weft_headers: "() -> i64",
      weft_body: "() -> i64",
      weft_set_body: "(i64)",
      weft_respond: "(i32, i64, i64)",
      weft_config: "() -> i64",
      weft_now_ms: "() -> i64",
      weft_counter_add: "(i64, i64) -> i64",
      weft_metric: "(i32, i64, f64)",
      weft_verify: "(i64, i64, i64, i64) -> i32",
      weft_read: "(i64, i32)",
      weft_write: "(i32, i32) -> i64",
    },
    // AssemblyScript's runtime imports.
    env: {
      abort: "(i32, i32, i32, i32)",
      seed: "() -> f64",
    },
  }).map(([module, fns]) => [module, new Map(Object.entries(fns))]),
);

const ABI_DOCS = "docs/filter-abi.md lists what a filter may import";

/**
 * What is wrong with a module's imports, one line each: anything weft does not provide, and any
 * function imported with another signature than weft's. `others` are its imports that are not
 * functions (weft provides only functions).
 */
export function importProblems(
  functions: readonly FunctionImport[],
  others: readonly { module: string; name: string; kind: string }[],
): string[] {
  const problems: string[] = [];
  for (const f of functions) {
    const wanted = IMPORT_SIGNATURES.get(f.module)?.get(f.name);
    if (wanted === undefined)
      problems.push(`the module imports function "${f.module}" "${f.name}", which weft does not provide (${ABI_DOCS})`);
    else if (f.signature !== wanted)
      problems.push(
        `the module imports "${f.module}" "${f.name}" as ${f.signature}, but weft provides it as ${wanted}: declare it with that signature (docs/filter-abi.md)`,
      );
  }
  for (const i of others)
    problems.push(`the module imports ${i.kind} "${i.module}" "${i.name}", which weft does not provide (${ABI_DOCS})`);
  return problems;
}
