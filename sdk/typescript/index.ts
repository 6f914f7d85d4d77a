// The weft filter SDK for full TypeScript (the manifest's "engine": "typescript"). Filters import
// it as "@weft/sdk-ts" and export phase functions; `weft filter build` bundles it with the
// filter and its npm packages and runs them in weft's QuickJS engine (docs/filter-sdk.md). The
// names are the AssemblyScript SDK's (sdk/assemblyscript) where they mean the same thing.
//
// Code at the top level of a filter runs once, when the filter is built, and its result is what
// every instance starts from: there is no request, config or clock then. Anything computed on
// first use (the parsed config below) is computed per instance.
import { native } from "./native.ts";

/** What a phase returns to go on (or to send the reply given with respond()). */
export const Continue = 0;

/** Records why the call failed and returns the failure code: `return fail("no key configured")`. */
export function fail(message: string): number {
  native.fail(message);
  return 1;
}

export class Header {
  name: string;
  value: string;
  constructor(name: string, value: string) {
    this.name = name;
    this.value = value;
  }
}

function parseHeaderLines(text: string | null): Header[] {
  const headers: Header[] = [];
  for (const line of (text ?? "").split("\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.push(new Header(line.slice(0, colon), line.slice(colon + 1).trim()));
  }
  return headers;
}

function headerLines(headers: readonly Header[] | Readonly<Record<string, string>>): string {
  const list = Array.isArray(headers)
    ? (headers as readonly Header[])
    : Object.entries(headers).map(([name, value]) => new Header(name, value));
  return list.map((h) => `${h.name}: ${h.value}\n`).join("");
}

/** Response phases are the ones with a response status. */
function inResponsePhase(): boolean {
  return native.get(":status") !== null;
}

function decoded(bytes: Uint8Array | null): string | null {
  return bytes === null ? null : native.decode(bytes);
}

// A bare name means the current phase's message to the proxy, so names carry "request." or
// "response.": a read is one host call in any phase, and a change in the wrong phase is refused
// by the proxy instead of landing on the other message.
export class Request {
  /** A request header (several values joined with ", "), or null. Works in every phase. */
  header(name: string): string | null {
    return native.get(`request.${name}`);
  }

  /** Every request header, in order (request phases: the proxy lists the current message's). */
  headers(): Header[] {
    if (inResponsePhase())
      throw new Error(
        "request.headers(): the list of request headers is only available in request phases; read one with request.header(name)",
      );
    return parseHeaderLines(native.headers());
  }

  setHeader(name: string, value: string): void {
    native.set(`request.${name}`, String(value));
  }

  addHeader(name: string, value: string): void {
    native.add(`request.${name}`, String(value));
  }

  removeHeader(name: string): void {
    native.remove(`request.${name}`);
  }

  get method(): string {
    return native.get(":method")!;
  }

  set method(value: string) {
    native.set(":method", value);
  }

  /** The path with its query string. */
  get path(): string {
    return native.get(":path")!;
  }

  set path(value: string) {
    native.set(":path", value);
  }

  get authority(): string {
    return native.get(":authority")!;
  }

  set authority(value: string) {
    native.set(":authority", value);
  }

  get scheme(): string {
    return native.get(":scheme")!;
  }

  /** The whole request body as text in on_request_body; null in other phases. */
  body(): string | null {
    return decoded(this.bodyBytes());
  }

  bodyBytes(): Uint8Array | null {
    return inResponsePhase() ? null : native.body();
  }

  /** Replaces the request body (on_request_body only). */
  setBody(body: string | Uint8Array): void {
    if (inResponsePhase()) throw new Error("request.setBody: the request can only be changed in on_request_headers and on_request_body");
    native.setBody(body);
  }
}

export class Response {
  /** The response status, or 0 in a request phase. */
  get status(): number {
    const status = native.get(":status");
    return status === null ? 0 : Number(status);
  }

  set status(value: number) {
    native.set(":status", String(value));
  }

  /** A response header, or null (always null in a request phase). */
  header(name: string): string | null {
    return native.get(`response.${name}`);
  }

  headers(): Header[] {
    return inResponsePhase() ? parseHeaderLines(native.headers()) : [];
  }

  setHeader(name: string, value: string): void {
    native.set(`response.${name}`, String(value));
  }

  addHeader(name: string, value: string): void {
    native.add(`response.${name}`, String(value));
  }

  removeHeader(name: string): void {
    native.remove(`response.${name}`);
  }

  /** The whole response body as text in on_response_body; null in other phases. */
  body(): string | null {
    return decoded(this.bodyBytes());
  }

  bodyBytes(): Uint8Array | null {
    return inResponsePhase() ? native.body() : null;
  }

  /** Replaces the response body (on_response_body only). */
  setBody(body: string | Uint8Array): void {
    if (!inResponsePhase()) throw new Error("response.setBody: there is no response in a request phase (use respond() to answer locally)");
    native.setBody(body);
  }
}

export const request = new Request();
export const response = new Response();

/**
 * A request attribute by its name without the "weft." prefix: "direction", "source.address",
 * "source.principal", "request_id", "filter". Null when absent (no mTLS peer, ...).
 */
export function attribute(name: string): string | null {
  return native.get(`weft.${name}`);
}

/** Answers locally (in a response phase: replaces the upstream's response) once the phase returns Continue. */
export function respond(
  status: number,
  body: string | Uint8Array = "",
  headers: readonly Header[] | Readonly<Record<string, string>> = [],
): void {
  const lines = headerLines(headers);
  native.respond(status, lines || null, body.length > 0 ? body : null);
}

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

let parsedConfig: unknown;

/** The whole config as JSON text. */
export function configJson(): string {
  return native.config();
}

/**
 * The WasmFilter's config, parsed once per instance (a new config gets a new instance). Give it
 * the type the filter's configSchema promises: `config<{ greeting?: string }>()`.
 */
export function config<T = { [key: string]: Json }>(): T {
  parsedConfig ??= JSON.parse(native.config());
  return parsedConfig as T;
}

/** Log lines with the filter's name, kept at or above the WasmFilter's logLevel. */
export const log = {
  TRACE: 0,
  DEBUG: 1,
  INFO: 2,
  WARN: 3,
  ERROR: 4,
  /** Whether a line at `level` is kept: check before building an expensive message. */
  enabled: (level: number): boolean => level >= native.logLevel(),
  trace: (message: string): void => native.log(0, message),
  debug: (message: string): void => native.log(1, message),
  info: (message: string): void => native.log(2, message),
  warn: (message: string): void => native.log(3, message),
  error: (message: string): void => native.log(4, message),
};

/** Variables that outlive calls, instances and versions of this filter in this proxy (the oldest are dropped past 1 MiB). */
export const state = {
  get: (key: string): string | null => decoded(native.varGet(key)),
  set: (key: string, value: string): void => native.varSet(key, value),
  getBytes: (key: string): Uint8Array | null => native.varGet(key),
  setBytes: (key: string, value: Uint8Array): void => native.varSet(key, value),
  delete: (key: string): void => native.varSet(key, null),
};

/** Counters shared by every instance of this filter in this proxy. */
export const counter = {
  /** Adds `delta` (an integer) and returns the new value. */
  add: (key: string, delta = 1): number => native.counterAdd(key, delta),
  get: (key: string): number => native.counterAdd(key, 0),
};

/** Exported on :15000/metrics as weft_filter_<name>{filter="ns/name"}; names are [a-z0-9_], at most 32. */
export const metrics = {
  counter: (name: string, delta = 1): void => native.metric(0, name, delta),
  gauge: (name: string, value: number): void => native.metric(1, name, value),
};

/** Wall-clock milliseconds since the Unix epoch (Date.now() is the same clock). */
export function now(): number {
  return native.now();
}

/** A compact JWS split into its parts; `header` and `payload` are JSON objects. */
export interface Jws {
  header: { [key: string]: Json };
  payload: { [key: string]: Json };
  /** The header's "alg", or "". */
  alg: string;
  /** The header's "kid", or null. */
  kid: string | null;
  /** The signed text: "<header>.<payload>" as it appeared in the token. */
  signingInput: string;
  signature: Uint8Array;
}

function decodeBase64Url(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return null;
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function jsonObject(bytes: Uint8Array | null): { [key: string]: Json } | null {
  if (bytes === null) return null;
  try {
    const value = JSON.parse(native.decode(bytes)) as Json;
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

/** JSON Web Token helpers; the proxy does the cryptography (weft_verify). */
export const jwt = {
  VALID: 1,
  INVALID: 0,
  UNUSABLE_KEY: -1,
  /** Decodes unpadded base64url (RFC 7515); null if `text` is not base64url. */
  decodeBase64Url,
  /** Splits and decodes a compact JWS ("header.payload.signature"); null if malformed. */
  split(token: string): Jws | null {
    const parts = token.split(".");
    if (parts.length !== 3) return null;
    const header = jsonObject(decodeBase64Url(parts[0]!));
    const payload = jsonObject(decodeBase64Url(parts[1]!));
    const signature = decodeBase64Url(parts[2]!);
    if (header === null || payload === null || signature === null) return null;
    const alg = typeof header.alg === "string" ? header.alg : "";
    const kid = typeof header.kid === "string" ? header.kid : null;
    return { header, payload, alg, kid, signingInput: `${parts[0]}.${parts[1]}`, signature };
  },
  /**
   * Checks `signature` over `signingInput` with `key` (a JWK as JSON, or PEM) for RS256, ES256,
   * HS256 or EdDSA: jwt.VALID, jwt.INVALID, or jwt.UNUSABLE_KEY when the key or algorithm cannot be used.
   */
  verify: (alg: string, key: string, signingInput: string, signature: Uint8Array): number =>
    native.verify(alg, key, signingInput, signature),
};
