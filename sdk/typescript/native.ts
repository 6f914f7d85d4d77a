// The engine's native object, `globalThis.__weft` (sdk/typescript/engine/src/lib.rs): one
// function per host function of the filter ABI (docs/filter-abi.md), taking and giving
// JavaScript strings and Uint8Arrays instead of memory blocks. Only the SDK and its polyfills
// use it; a filter uses the SDK.
export interface WeftNative {
  /** weft_get: a header, pseudo-header or attribute; null when absent. */
  get(name: string): string | null;
  set(name: string, value: string): void;
  add(name: string, value: string): void;
  remove(name: string): void;
  /** weft_headers: the current message's headers, one "name: value\n" line each. */
  headers(): string | null;
  body(): Uint8Array | null;
  setBody(body: string | Uint8Array): void;
  respond(status: number, headers: string | null, body: string | Uint8Array | null): void;
  /** weft_config: the config as JSON ("{}" without one). */
  config(): string;
  now(): number;
  counterAdd(key: string, delta: number): number;
  metric(kind: number, name: string, value: number): void;
  varGet(key: string): Uint8Array | null;
  /** null deletes. */
  varSet(key: string, value: string | Uint8Array | null): void;
  /** level: 0 trace, 1 debug, 2 info, 3 warn, 4 error. */
  log(level: number, message: string): void;
  logLevel(): number;
  verify(alg: string, key: string, data: string | Uint8Array, signature: Uint8Array): number;
  /** error_set: the message of the failure the phase is about to return. */
  fail(message: string): void;
  /** UTF-8, for the TextEncoder and TextDecoder polyfills. */
  encode(text: string): Uint8Array;
  decode(bytes: Uint8Array): string;
}

export const native = (globalThis as unknown as { __weft: WeftNative }).__weft;
