// The functions a filter may import (docs/filter-abi.md): Extism's kernel functions over
// memory blocks, weft's host functions, and AssemblyScript's env.abort/env.seed. Each call
// works on the instance's current phase call (`InstanceHost`).
import type { Blocks } from "./blocks.ts";
import { FilterFault } from "./fault.ts";
import type { FilterMessage } from "./message.ts";
import { isResponsePhase } from "./message.ts";
import type { FilterState } from "./state.ts";
import { verifySignature } from "./verify.ts";
import { getHeader, serializeHeaders, parseHeaderLines, checkHeader, checkHeaderName, headerBytes, MAX_HEADER_BYTES } from "./headers.ts";
import { removeHeader } from "../http/headers.ts";
import type { FunctionImport } from "./meter.ts";

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error"] as const;
export type FilterLogLevelName = (typeof LOG_LEVELS)[number];

/** What the imports need from the instance and its filter. */
export interface InstanceHost {
  readonly blocks: Blocks;
  /** The message of the call in progress (null between calls). */
  readonly message: FilterMessage | null;
  readonly state: FilterState;
  readonly configJson: string;
  readonly config: Readonly<Record<string, unknown>>;
  readonly filterId: string;
  readonly logLevel: number;
  log(level: FilterLogLevelName, message: string): void;
  metric(kind: number, name: string, value: number): void;
  /** The module's own memory (for weft_read/weft_write and abort messages). */
  memory(): WebAssembly.Memory;
  setError(message: string): void;
  /** Moves the call's deadline on by time the host spent on the filter's behalf. */
  extendDeadline(ms: number): void;
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

function current(host: InstanceHost, fn: string): FilterMessage {
  const message = host.message;
  if (!message) throw new FilterFault("trap", `${fn} was called outside a phase call`);
  return message;
}

/**
 * The header list a name refers to: `request.x` is the request's header x and `response.x`
 * the response's (response phases) in any phase; a bare name is the current phase's message.
 * Request headers cannot change once the request has been sent (response phases).
 */
function headerTarget(message: FilterMessage, fn: string, name: string, writing: boolean): { headers: string[] | null; name: string } {
  const responsePhase = isResponsePhase(message.phase);
  let side: "request" | "response" = responsePhase ? "response" : "request";
  if (name.startsWith("request.")) {
    side = "request";
    name = name.slice(8);
  } else if (name.startsWith("response.")) {
    side = "response";
    name = name.slice(9);
  }
  if (side === "request") {
    if (writing && responsePhase)
      throw new FilterFault("trap", `${fn}: request headers cannot change in a response phase (the request has been sent)`);
    return { headers: message.request.headers, name };
  }
  if (!message.response && writing) throw new FilterFault("trap", `${fn}: there is no response yet in a request phase`);
  return { headers: message.response?.headers ?? null, name };
}

/** The value weft_get returns for a name, or null. */
function lookUp(message: FilterMessage, name: string, filterId: string): string | null {
  const request = message.request;
  switch (name) {
    case ":method":
      return request.method;
    case ":path":
      return request.path;
    case ":authority":
      return request.authority;
    case ":scheme":
      return request.scheme;
    case ":status":
      return message.response ? String(message.response.status) : null;
    case "weft.direction":
      return message.attributes.direction;
    case "weft.source.address":
      return message.attributes.sourceAddress;
    case "weft.source.principal":
      return message.attributes.sourcePrincipal || null;
    case "weft.request_id":
      return message.attributes.requestId || null;
    case "weft.filter":
      return filterId;
  }
  const { headers, name: header } = headerTarget(message, "weft_get", name, false);
  return headers ? getHeader(headers, header) : null;
}

function assign(message: FilterMessage, name: string, value: string, add: boolean): void {
  const responsePhase = isResponsePhase(message.phase);
  if (name.startsWith(":")) {
    if (add) throw new FilterFault("trap", `weft_add: "${name}" is a pseudo-header; use weft_set`);
    if (responsePhase) {
      if (name !== ":status" || !message.response)
        throw new FilterFault("trap", `weft_set: only :status can be set in a response phase, not "${name}"`);
      const status = Number(value);
      if (!Number.isInteger(status) || status < 200 || status > 599)
        throw new FilterFault("trap", `weft_set: ":status" must be 200-599, not "${value}"`);
      // The proxy frames the client's response by the upstream's status: one that has no body
      // (204, 304) cannot become one that has, nor the other way round, or the client would
      // read a body as the next response (or the next response as a body).
      if (BODYLESS.has(status) !== BODYLESS.has(message.response.status)) {
        throw new FilterFault(
          "trap",
          `weft_set: ":status" cannot change from ${message.response.status} to ${status}: one of them has no body (204, 304); answer with weft_respond instead`,
        );
      }
      message.response.status = status;
      return;
    }
    if (name === ":path") {
      // A request target is visible ASCII (RFC 9112 section 3.2): a character past U+007F
      // would go on the wire as a raw byte (past U+00FF truncated, possibly to CR or LF).
      if (!PATH.test(value))
        throw new FilterFault(
          "trap",
          `weft_set: ":path" must start with "/" and hold only visible ASCII (percent-encode the rest), not ${JSON.stringify(value)}`,
        );
      message.request.path = value;
    } else if (name === ":authority") {
      if (!/^[A-Za-z0-9.\-:[\]_]+$/.test(value))
        throw new FilterFault("trap", `weft_set: ":authority" must be a host[:port], not "${value}"`);
      message.request.authority = value.toLowerCase();
    } else if (name === ":method") {
      if (!/^[A-Z]+$/.test(value)) throw new FilterFault("trap", `weft_set: ":method" must be an upper-case method, not "${value}"`);
      // The response to HEAD has no body, and the client's response is framed by the method
      // the client sent: a GET sent upstream for a HEAD would put a body where none belongs.
      if ((value === "HEAD") !== (message.request.method === "HEAD")) {
        throw new FilterFault(
          "trap",
          `weft_set: ":method" cannot change from ${message.request.method} to ${value}: the response to HEAD has no body; answer with weft_respond instead`,
        );
      }
      message.request.method = value;
    } else throw new FilterFault("trap", `weft_set: "${name}" cannot be set`);
    return;
  }
  const fn = add ? "weft_add" : "weft_set";
  const { headers, name: header } = headerTarget(message, fn, name, true);
  const problem = checkHeader(header, value);
  if (problem) throw new FilterFault("trap", `${fn}: ${problem}`);
  const before = headerBytes(headers!);
  if (!add) removeHeader(headers!, header);
  headers!.push(header, value);
  // A failed call's changes are dropped (FailOpen, FailReload) or the request answered (FailClose).
  const after = headerBytes(headers!);
  if (after > MAX_HEADER_BYTES && after > before)
    throw new FilterFault(
      "trap",
      `${fn}: the headers would take ${after} bytes, over the ${MAX_HEADER_BYTES} a filter may leave on a message`,
    );
}

const PATH = /^\/[\x21-\x7e]*$/;
const BODYLESS = new Set([204, 304]);

export function buildImports(host: InstanceHost): WebAssembly.Imports {
  const blocks = host.blocks;
  const str = (offset: bigint) => blocks.readString(Number(offset));
  const put = (value: string | null) => (value === null ? 0n : big(blocks.writeString(value)));
  const logAt = (level: FilterLogLevelName) => (offset: bigint) => {
    if (LOG_LEVELS.indexOf(level) >= host.logLevel) host.log(level, str(offset));
  };
  return {
    "extism:host/env": {
      alloc: (length: bigint) => big(blocks.alloc(Number(length))),
      length: (offset: bigint) => big(blocks.length(Number(offset))),
      length_unsafe: (offset: bigint) => big(blocks.length(Number(offset))),
      free: (offset: bigint) => blocks.free(Number(offset)),
      load_u8: (offset: bigint) => blocks.loadU8(Number(offset)),
      load_u64: (offset: bigint) => blocks.loadU64(Number(offset)),
      store_u8: (offset: bigint, value: number) => blocks.storeU8(Number(offset), value),
      store_u64: (offset: bigint, value: bigint) => blocks.storeU64(Number(offset), value),
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
        return put(typeof value === "string" ? value : JSON.stringify(value));
      },
      var_get: (offset: bigint) => {
        const value = host.state.getVariable(str(offset));
        return value ? big(blocks.write(value)) : 0n;
      },
      var_set: (key: bigint, value: bigint) => host.state.setVariable(str(key), value === 0n ? null : blocks.read(Number(value))),
      log_trace: logAt("trace"),
      log_debug: logAt("debug"),
      log_info: logAt("info"),
      log_warn: logAt("warn"),
      log_error: logAt("error"),
      get_log_level: () => host.logLevel,
      http_request: () => {
        throw new FilterFault("trap", "a filter has no network access: http_request is not available in weft");
      },
      http_status_code: () => 0,
    },
    "extism:host/user": {
      weft_get: (name: bigint) => {
        const message = current(host, "weft_get");
        return put(lookUp(message, str(name).toLowerCase(), host.filterId));
      },
      weft_set: (name: bigint, value: bigint) => assign(current(host, "weft_set"), str(name).toLowerCase(), str(value), false),
      weft_add: (name: bigint, value: bigint) => assign(current(host, "weft_add"), str(name).toLowerCase(), str(value), true),
      weft_remove: (name: bigint) => {
        const message = current(host, "weft_remove");
        const lower = str(name).toLowerCase();
        if (lower.startsWith(":")) throw new FilterFault("trap", `weft_remove: "${lower}" is a pseudo-header and cannot be removed`);
        const { headers, name: header } = headerTarget(message, "weft_remove", lower, true);
        const problem = checkHeaderName(header);
        if (problem) throw new FilterFault("trap", `weft_remove: ${problem}`);
        removeHeader(headers!, header);
      },
      weft_headers: () => {
        const message = current(host, "weft_headers");
        return put(
          serializeHeaders(isResponsePhase(message.phase) && message.response ? message.response.headers : message.request.headers),
        );
      },
      weft_body: () => {
        const body = current(host, "weft_body").body;
        return body ? big(blocks.write(body)) : 0n;
      },
      weft_set_body: (offset: bigint) => {
        const message = current(host, "weft_set_body");
        if (!message.body) throw new FilterFault("trap", "weft_set_body: only a body phase can replace the body");
        message.body = offset === 0n ? new Uint8Array(0) : blocks.read(Number(offset)).slice();
      },
      weft_respond: (status: number, headers: bigint, body: bigint) => {
        const message = current(host, "weft_respond");
        if (!Number.isInteger(status) || status < 200 || status > 599)
          throw new FilterFault("trap", `weft_respond: status ${status} is not 200-599`);
        const parsed = headers === 0n ? [] : parseHeaderLines(str(headers));
        if (typeof parsed === "string") throw new FilterFault("trap", `weft_respond: ${parsed}`);
        const bytes = headerBytes(parsed);
        if (bytes > MAX_HEADER_BYTES)
          throw new FilterFault(
            "trap",
            `weft_respond: the headers would take ${bytes} bytes, over the ${MAX_HEADER_BYTES} a filter may leave on a message`,
          );
        message.reply = { status, headers: parsed, body: body === 0n ? new Uint8Array(0) : blocks.read(Number(body)).slice() };
      },
      weft_config: () => put(host.configJson),
      weft_now_ms: () => BigInt(Date.now()),
      weft_counter_add: (key: bigint, delta: bigint) => BigInt(host.state.addToCounter(str(key), Number(delta))),
      weft_metric: (kind: number, name: bigint, value: number) => host.metric(kind, str(name), value),
      weft_verify: (alg: bigint, key: bigint, data: bigint, signature: bigint) => {
        const algorithm = str(alg);
        const bytes = (offset: bigint) => (offset === 0n ? new Uint8Array(0) : blocks.read(Number(offset)));
        // A key's first use (parsing and importing it) and the signature check are the host's
        // work, not the filter's: they do not count against the filter's deadline.
        const started = performance.now();
        const { result, problem } = verifySignature(algorithm, str(key), bytes(data), bytes(signature));
        host.extendDeadline(performance.now() - started);
        if (problem) host.log("warn", `weft_verify: ${problem}`);
        return result;
      },
      weft_read: (offset: bigint, pointer: number) => {
        const bytes = blocks.read(Number(offset));
        const memory = new Uint8Array(host.memory().buffer);
        if (pointer < 0 || pointer + bytes.length > memory.length)
          throw new FilterFault("trap", `weft_read: ${bytes.length} bytes at ${pointer} do not fit the filter's memory`);
        memory.set(bytes, pointer);
      },
      weft_write: (pointer: number, length: number) => {
        const memory = new Uint8Array(host.memory().buffer);
        if (pointer < 0 || length < 0 || pointer + length > memory.length)
          throw new FilterFault("trap", `weft_write: ${length} bytes at ${pointer} are outside the filter's memory`);
        return big(blocks.write(memory.subarray(pointer, pointer + length)));
      },
    },
    env: {
      abort: (message: number, file: number, line: number, column: number) => {
        const memory = host.memory();
        throw new FilterFault("abort", `${readUtf16(memory, message) || "abort"} at ${readUtf16(memory, file) || "?"}:${line}:${column}`);
      },
      seed: () => Date.now() * Math.random(),
    },
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
