// runtimes: node deno bun
// Property tests (fast-check) for the proxy's own parsers and codecs: they round-trip what
// they should, and on arbitrary input they fail only with their own error type, never with a
// crash. Runs are bounded (RUNS) so each runtime gets through the file in seconds; a failure
// prints the seed and the shrunk input to replay it.
import { describe } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import fc from "fast-check";
import type { IncomingHttpHeaders } from "node:http2";
import { ConfigError, parseConfig, parseConfigText } from "../../proxy/config/validate.ts";
import type { ProxyConfigInput } from "../../proxy/config/schema.ts";
import { findHeadEnd, parseFieldLine, parseRequestHead, parseResponseHead, type HeadLimits } from "../../proxy/http1/head.ts";
import { ProtocolError } from "../../proxy/http/protocol-error.ts";
import { encodeRequestHead, encodeResponseHead } from "../../proxy/http1/encode.ts";
import { BodyDecoder, encodeChunk, encodeLastChunk } from "../../proxy/http1/framing.ts";
import { diagnosticHeaderValue, forwardableHeaders, setHeader } from "../../proxy/http/headers.ts";
import { flatten, toHttp2 } from "../../proxy/http2/headers.ts";
import { Blocks } from "../../proxy/filters/blocks.ts";
import { FilterFault } from "../../proxy/filters/fault.ts";
import { FilterState } from "../../proxy/filters/state.ts";
import { buildImports } from "../../proxy/filters/imports.ts";
import { parseHeaderLines } from "../../proxy/filters/headers.ts";
import type { FilterMessage } from "../../proxy/filters/message.ts";
import { Recorder } from "./record.ts";

const RUNS = 200;
const LIMITS: HeadLimits = { maxHeadBytes: 65536, maxHeaderCount: 100 };

const recorder = new Recorder("properties");

/** A property as a test and a report row; `runs` overrides RUNS for costly ones. */
function property<Ts>(category: string, name: string, prop: fc.IProperty<Ts>, runs = RUNS): void {
  recorder.case("property", category, name, () => {
    fc.assert(prop, { numRuns: runs });
    return { runs };
  });
}

/** Runs `f`; an error of `type` is an acceptable outcome, anything else fails the property. */
function onlyThrows(type: new (...args: never[]) => Error, f: () => void): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof type)) throw e;
  }
}

// --- generators ---------------------------------------------------------------------------

const charIn = (...ranges: [number, number][]) =>
  fc.oneof(...ranges.map(([min, max]) => fc.integer({ min, max }))).map((c) => String.fromCharCode(c));
const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const token = fc.string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength: 16 });
const visible = charIn([0x21, 0x7e]);
/** A field value as it goes on the wire: visible ASCII and obs-text, inner SP/HTAB, no edge whitespace. */
const fieldChar = charIn([0x21, 0x7e], [0x80, 0xff]);
const fieldValue = fc.oneof(
  fc.constant(""),
  fieldChar,
  fc
    .tuple(fieldChar, fc.string({ unit: fc.oneof(fieldChar, fc.constantFrom(" ", "\t")), maxLength: 24 }), fieldChar)
    .map((parts) => parts.join("")),
);
const FRAMING = new Set(["host", "content-length", "transfer-encoding"]);
/** Like fieldValue, visible ASCII only. */
const asciiValue = fc.string({ unit: fc.oneof(visible, fc.constant(" ")), maxLength: 24 }).map((v) => v.trim());
const fields = (names = token, values = fieldValue) => fc.array(fc.tuple(names, values), { maxLength: 12 }).map((pairs) => pairs.flat());
const regularFields = fields(token.filter((n) => !FRAMING.has(n.toLowerCase())));
const target = fc.string({ unit: visible, maxLength: 40 }).map((p) => `/${p}`);
/** Any string, CR, LF, NUL and characters past U+00FF included. */
const anyText = fc.string({ unit: "binary", maxLength: 40 });

/** Valid bytes with a few of them replaced: the input a parser is most likely to get wrong. */
const mutated = (valid: fc.Arbitrary<Buffer>) =>
  fc
    .tuple(valid, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
    .map(([original, edits]) => {
      const bytes = Buffer.from(original);
      for (const [at, byte] of edits) bytes[at % bytes.length] = byte;
      return bytes;
    });
const requestHead = fc
  .tuple(token, target, regularFields)
  .map(([method, path, headers]) => encodeRequestHead(method, path, ["Host", "app", ...headers]));
const randomBytes = fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b));

const trailerFields = fields(token.filter((n) => !FRAMING.has(n.toLowerCase()) && n.toLowerCase() !== "trailer"));
const bodyChunks = fc.array(fc.uint8Array({ minLength: 1, maxLength: 64 }), { maxLength: 8 });
const chunkedBody = (chunks: Uint8Array[], trailers: string[]) =>
  Buffer.concat([...chunks.map((c) => encodeChunk(Buffer.from(c))), encodeLastChunk(trailers.length ? trailers : null)]);

// --- HTTP/1.1 heads -----------------------------------------------------------------------

describe("property: HTTP/1.1 heads", () => {
  const category = "HTTP/1.1 heads";
  property(
    category,
    "arbitrary bytes are a request head or a ProtocolError",
    fc.property(fc.oneof(randomBytes, mutated(requestHead)), (buf) => {
      onlyThrows(ProtocolError, () => {
        const end = findHeadEnd(buf, 0, LIMITS);
        if (end !== -1) parseRequestHead(buf, 0, end, LIMITS);
      });
    }),
  );
  property(
    category,
    "arbitrary bytes are a response head or a ProtocolError",
    fc.property(fc.oneof(randomBytes, mutated(requestHead)), (buf) => {
      onlyThrows(ProtocolError, () => {
        const end = findHeadEnd(buf, 0, LIMITS);
        if (end !== -1) parseResponseHead(buf, 0, end, LIMITS);
      });
    }),
  );
  property(
    category,
    "a request head round-trips through encode and parse",
    fc.property(token, target, regularFields, (method, path, headers) => {
      const buf = encodeRequestHead(method, path, ["Host", "app", ...headers]);
      const head = parseRequestHead(buf, 0, findHeadEnd(buf, 0, LIMITS), LIMITS);
      assert.deepEqual([head.method, head.target, head.headers], [method, path, ["Host", "app", ...headers]]);
    }),
  );
  property(
    category,
    "a response head round-trips through encode and parse",
    fc.property(
      fc.integer({ min: 100, max: 599 }),
      fc.string({ unit: visible, minLength: 1, maxLength: 20 }),
      regularFields,
      (status, reason, headers) => {
        const buf = encodeResponseHead(status, reason, headers);
        const head = parseResponseHead(buf, 0, findHeadEnd(buf, 0, LIMITS), LIMITS);
        assert.deepEqual([head.status, head.reason, head.headers], [status, reason, headers]);
      },
    ),
  );
  property(
    category,
    "a head is found exactly when complete, wherever the bytes are cut",
    fc.property(token, target, regularFields, fc.nat(), fc.uint8Array({ maxLength: 20 }), (method, path, headers, cut, after) => {
      const head = encodeRequestHead(method, path, ["Host", "app", ...headers]);
      assert.equal(findHeadEnd(head.subarray(0, cut % head.length), 0, LIMITS), -1);
      assert.equal(findHeadEnd(Buffer.concat([head, after]), 0, LIMITS), head.length);
    }),
  );
  property(
    category,
    "a field line is refused or its value is wire-safe",
    fc.property(anyText, anyText, (name, value) => {
      onlyThrows(ProtocolError, () => {
        const [n, v] = parseFieldLine(`${name}:${value}`);
        assert.match(n, /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/);
        assert.doesNotMatch(v, /^[ \t]|[ \t]$/);
        assert.doesNotMatch(v, /[\0-\x08\x0a-\x1f\x7f]/);
      });
    }),
  );
});

// --- chunked bodies -----------------------------------------------------------------------

/** `bytes` cut at the given points (each taken modulo the length). */
function cutAt(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  return [...points, bytes.length].map((p, i) => bytes.subarray(i === 0 ? 0 : points[i - 1], p)).filter((b) => b.length > 0);
}

describe("property: chunked bodies", () => {
  const category = "chunked bodies";
  property(
    category,
    "chunked framing round-trips however the bytes are cut, and ends exactly at its last byte",
    fc.property(bodyChunks, trailerFields, fc.array(fc.nat(), { maxLength: 6 }), (chunks, trailers, cuts) => {
      const encoded = chunkedBody(chunks, trailers);
      const next = Buffer.from("GET /next HTTP/1.1\r\n");
      const got: Buffer[] = [];
      let ended: string[] | null | undefined;
      const decoder = new BodyDecoder("chunked", -1, { data: (d) => got.push(Buffer.from(d)), end: (t) => (ended = t) });
      const pieces = cutAt(Buffer.concat([encoded, next]), cuts);
      // Every piece is consumed whole until the body ends; the piece it ends in, up to its end.
      let consumed = 0;
      for (const piece of pieces) {
        if (decoder.done) break;
        consumed += decoder.push(piece, 0);
      }
      assert.ok(decoder.done);
      assert.equal(consumed, encoded.length);
      assert.deepEqual(Buffer.concat(got), Buffer.concat(chunks.map((c) => Buffer.from(c))));
      assert.deepEqual(ended, trailers.length ? trailers : null);
    }),
  );
  const hostileBody = fc.oneof(
    randomBytes,
    mutated(fc.tuple(bodyChunks, trailerFields).map(([chunks, trailers]) => chunkedBody(chunks, trailers))),
  );
  property(
    category,
    "arbitrary bytes into a chunked decoder are a body or a ProtocolError, never more bytes than sent",
    fc.property(hostileBody, fc.array(fc.nat(), { maxLength: 4 }), (bytes, cuts) => {
      let delivered = 0;
      const decoder = new BodyDecoder("chunked", -1, { data: (d) => (delivered += d.length), end: () => {} });
      onlyThrows(ProtocolError, () => {
        for (const piece of cutAt(bytes, cuts)) decoder.push(piece, 0);
      });
      assert.ok(delivered <= bytes.length);
    }),
  );
  property(
    category,
    "a Content-Length body ends exactly at its length",
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat({ max: 200 }), (bytes, length) => {
      let delivered = 0;
      const decoder = new BodyDecoder("length", length, { data: (d) => (delivered += d.length), end: () => {} });
      const end = decoder.push(Buffer.from(bytes), 0);
      assert.equal(end, Math.min(length, bytes.length));
      assert.equal(delivered, end);
      assert.equal(decoder.done, bytes.length >= length);
    }),
  );
});

// --- configuration ------------------------------------------------------------------------

const clusterNames = ["c0", "c1", "c2"];
const validConfig: fc.Arbitrary<ProxyConfigInput> = fc.record({
  clusters: fc.constant(clusterNames.map((name) => ({ name, endpoints: [{ address: "127.0.0.1", port: 8080 }] }))),
  listeners: fc
    .array(
      fc.record({
        direction: fc.constantFrom("Inbound" as const, "Outbound" as const),
        http2: fc.boolean(),
        virtualHosts: fc.array(
          fc.record({
            domains: fc.array(fc.constantFrom("*", "app", "*.example.com", "app.test:8080"), { minLength: 1, maxLength: 3 }),
            routes: fc.array(
              fc.record(
                {
                  backends: fc.array(fc.record({ cluster: fc.constantFrom(...clusterNames), weight: fc.integer({ min: 1, max: 100 }) }), {
                    minLength: 1,
                    maxLength: 3,
                  }),
                  match: fc.record(
                    {
                      path: fc.record({ type: fc.constantFrom("Exact" as const, "PathPrefix" as const), value: target }),
                      method: fc.string({ unit: fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZ"), minLength: 1, maxLength: 7 }),
                      headers: fc.array(fc.record({ name: token, value: fieldValue }), { maxLength: 2 }),
                    },
                    { requiredKeys: [] },
                  ),
                  timeoutMs: fc.nat({ max: 60_000 }),
                  retry: fc.record({ attempts: fc.integer({ min: 0, max: 10 }), retryNonIdempotent: fc.boolean() }),
                  requestHeaders: fc.record({
                    set: fc.array(fc.record({ name: token, value: fieldValue }), { maxLength: 2 }),
                    remove: fc.array(token, { maxLength: 2 }),
                  }),
                },
                { requiredKeys: ["backends"] },
              ),
              { maxLength: 3 },
            ),
          }),
          { maxLength: 2 },
        ),
      }),
      { minLength: 1, maxLength: 2 },
    )
    .map((ls) =>
      ls.map((l, i) => ({
        ...l,
        name: `l${i}`,
        address: "127.0.0.1",
        port: 0,
        virtualHosts: l.virtualHosts.map((vh, j) => ({ ...vh, name: `vh${j}` })),
      })),
    ),
  limits: fc.record(
    {
      maxRequestHeadBytes: fc.integer({ min: 256, max: 1 << 20 }),
      maxHeaderCount: fc.integer({ min: 1, max: 1000 }),
      maxRequestBodyBytes: fc.nat(),
      headerTimeoutMs: fc.nat(),
    },
    { requiredKeys: [] },
  ),
});

/** Every path to a value inside `value`, for putting something else there. */
function pathsIn(value: unknown, at: (string | number)[] = []): (string | number)[][] {
  if (value === null || typeof value !== "object") return [at];
  const keys = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value);
  return [at, ...keys.flatMap((k) => pathsIn((value as Record<string | number, unknown>)[k], [...at, k]))];
}

/** A deep copy of `value` with what is at `path` replaced by `replacement`. */
function replaceAt(value: unknown, path: (string | number)[], replacement: unknown): unknown {
  if (path.length === 0) return replacement;
  const copy = structuredClone(value) as Record<string | number, unknown>;
  let node = copy;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, unknown>;
  node[path[path.length - 1]] = replacement;
  return copy;
}

describe("property: configuration", () => {
  const category = "configuration";
  property(
    category,
    "arbitrary text is a configuration or a ConfigError",
    fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
      onlyThrows(ConfigError, () => parseConfigText(text, "property"));
    }),
  );
  property(
    category,
    "a valid configuration with any one value replaced by arbitrary JSON is a configuration or a ConfigError",
    fc.property(validConfig, fc.nat(), fc.jsonValue(), (config, pick, replacement) => {
      const paths = pathsIn(config);
      onlyThrows(ConfigError, () => parseConfig(replaceAt(config, paths[pick % paths.length], replacement), "property"));
    }),
    100,
  );
  property(
    category,
    "a parsed configuration is a fixed point: serialized and parsed again it is the same",
    fc.property(validConfig, (config) => {
      const parsed = parseConfig(config, "property");
      assert.deepEqual(parseConfig(JSON.parse(JSON.stringify(parsed)), "again"), parsed);
    }),
    100,
  );
});

// --- the filter ABI -----------------------------------------------------------------------

/** WebAssembly passes i64 as bigint and i32 as number. */
type HostFunction = (...args: (bigint | number)[]) => unknown;

/** The ABI's host functions over a copy of one request (a filter changes it in place), as a phase call sees them. */
function abi(request: FilterMessage["request"]) {
  const blocks = new Blocks(1 << 20);
  const message: FilterMessage = {
    phase: "on_request_headers",
    request: { ...request, headers: request.headers.slice() },
    response: null,
    body: null,
    attributes: { direction: "outbound", sourceAddress: "127.0.0.1", sourcePrincipal: "", requestId: "r" },
    reply: null,
  };
  const imports = buildImports({
    blocks,
    message,
    state: new FilterState(),
    configJson: "{}",
    config: {},
    filterId: "test/property",
    logLevel: 4,
    log: () => {},
    metric: () => {},
    memory: () => new WebAssembly.Memory({ initial: 1 }),
    setError: () => {},
    extendDeadline: () => {},
  });
  const user = imports["extism:host/user"] as Record<string, HostFunction>;
  const env = imports["extism:host/env"] as Record<string, HostFunction>;
  const str = (s: string) => BigInt(blocks.writeString(s));
  return { blocks, message, user, env, str };
}

/** The request as the proxy would put it on the wire, parsed back by the proxy's own parser. */
function throughTheWire(request: FilterMessage["request"]) {
  const buf = encodeRequestHead(request.method, request.path, ["host", request.authority, ...request.headers]);
  return parseRequestHead(buf, 0, findHeadEnd(buf, 0, LIMITS), LIMITS);
}

const FILTER_MANAGED = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length",
  "host",
  "http2-settings",
]);
// ASCII values: parseHeaderLines trims with String.trim(), which also strips U+00A0 (obs-text
// 0xA0) at a value's edge, so such a value does not come back whole.
const filterFields = fields(
  token.filter((n) => !FILTER_MANAGED.has(n.toLowerCase())).map((n) => n.toLowerCase()),
  asciiValue,
);
const request = fc.record({
  method: fc.constant("GET"),
  path: fc.constant("/"),
  authority: fc.constant("app"),
  scheme: fc.constant("http"),
  headers: filterFields,
});
const abiCall = fc.record({
  fn: fc.constantFrom("weft_set", "weft_add", "weft_remove"),
  name: fc.oneof(
    token,
    fc.constantFrom(":path", ":authority", ":method", ":status", "request.x-a", "response.x-a", "host", "content-length"),
    anyText,
  ),
  // Paths with obs-text too: a byte the request line may not carry, though a header value may.
  value: fc.oneof(
    fieldValue,
    target,
    target.map((p) => `${p}\xe9`),
    anyText,
  ),
});

describe("property: filter ABI", () => {
  const category = "filter ABI";
  property(
    category,
    "a request's headers read through weft_headers parse back to the same list",
    fc.property(request, (req) => {
      const { blocks, user } = abi(req);
      assert.deepEqual(parseHeaderLines(blocks.readString(Number(user.weft_headers()))), req.headers);
    }),
  );
  property(
    category,
    "weft_set then weft_get returns the value set",
    fc.property(request, token, fieldValue, (req, name, value) => {
      const { blocks, user, str } = abi(req);
      fc.pre(!FILTER_MANAGED.has(name.toLowerCase()));
      user.weft_set(str(name), str(value));
      assert.equal(blocks.readString(Number(user.weft_get(str(name)))), value);
    }),
  );
  property(
    category,
    "whatever a filter sets, adds or removes, the request still crosses the wire unchanged or the call faults",
    fc.property(request, fc.array(abiCall, { maxLength: 6 }), (req, calls) => {
      const { message, user, str } = abi(req);
      for (const call of calls) {
        const before = JSON.stringify(message.request);
        try {
          user[call.fn](str(call.name), ...(call.fn === "weft_remove" ? [] : [str(call.value)]));
        } catch (e) {
          if (!(e instanceof FilterFault)) throw e;
          assert.equal(JSON.stringify(message.request), before, "a faulted call changed the request");
        }
      }
      const parsed = throughTheWire(message.request);
      // Same fields and values, but for whitespace at a value's edge, which HTTP/1.1 cannot carry
      // (a filter may set "\t"; the upstream reads "").
      const sent = message.request.headers.map((x, i) => (i % 2 ? x.replace(/^[ \t]+|[ \t]+$/g, "") : x));
      assert.deepEqual(
        [parsed.method, parsed.target, parsed.host, parsed.headers.slice(2)],
        [message.request.method, message.request.path, message.request.authority, sent],
      );
    }),
  );
  property(
    category,
    "weft_respond's header text becomes wire-safe headers or a fault",
    fc.property(
      fc.array(
        fc.oneof(
          fc.tuple(token, fieldValue).map(([n, v]) => `${n}: ${v}`),
          anyText,
        ),
        { maxLength: 5 },
      ),
      (lines) => {
        const { message, user, str } = abi({ method: "GET", path: "/", authority: "app", scheme: "http", headers: [] });
        onlyThrows(FilterFault, () => {
          user.weft_respond(200, str(lines.join("\n")), 0n);
          const headers = message.reply!.headers;
          const buf = encodeResponseHead(200, "OK", headers);
          assert.deepEqual(parseResponseHead(buf, 0, findHeadEnd(buf, 0, LIMITS), LIMITS).headers, headers);
        });
      },
    ),
  );
  property(
    category,
    "memory blocks: arbitrary kernel calls fault or work, and written blocks read back intact",
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }),
      fc.array(
        fc.tuple(
          fc.constantFrom("alloc", "length", "free", "load_u8", "load_u64", "store_u8", "store_u64"),
          fc.bigInt({ min: -(1n << 40n), max: 1n << 40n }),
        ),
        { maxLength: 10 },
      ),
      (written, calls) => {
        const { blocks, env } = abi({ method: "GET", path: "/", authority: "app", scheme: "http", headers: [] });
        const offsets = written.map((w) => blocks.write(w));
        written.forEach((w, i) => assert.deepEqual(blocks.read(offsets[i]), w));
        // store_u8's value is an i32, store_u64's an i64. The kernel's functions trap; what it
        // recorded must explain the trap as a FilterFault, as the instance reports it.
        for (const [fn, arg] of calls)
          onlyThrows(FilterFault, () => {
            try {
              env[fn](arg, fn === "store_u8" ? 7 : 7n);
            } catch (e) {
              throw blocks.explain(e) ?? e;
            }
          });
      },
    ),
  );
});

// --- header handling ----------------------------------------------------------------------

const pairsOf = (list: string[]) => list.flatMap((n, i) => (i % 2 === 0 ? [[n, list[i + 1]] as [string, string]] : []));
const CONNECTION_SPECIFIC = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"];
// Names that are also properties of every object: a header object must not confuse them.
const OBJECT_KEYS = ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"];
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
];
const mixedNames = fc.oneof(token, fc.constantFrom(...HOP_BY_HOP, "Connection", "TE", "Upgrade"));

describe("property: header handling", () => {
  const category = "header handling";
  property(
    category,
    "no hop-by-hop field, nor one Connection names, is forwarded",
    fc.property(
      fields(mixedNames),
      fc.array(
        token.map((t) => t.toLowerCase()),
        { maxLength: 3 },
      ),
      fc.boolean(),
      (headers, tokens, keepUpgrade) => {
        const out = forwardableHeaders(headers, tokens, keepUpgrade);
        for (let i = 0; i < out.length; i += 2) {
          const name = out[i].toLowerCase();
          const kept = (keepUpgrade && name === "upgrade") || (name === "te" && out[i + 1].toLowerCase() === "trailers");
          assert.ok(kept || (!HOP_BY_HOP.includes(name) && !tokens.includes(name)), `forwarded ${name}`);
        }
      },
    ),
  );
  property(
    category,
    "any diagnostic message becomes a valid field value",
    fc.property(fc.string({ unit: "binary", maxLength: 80 }), (message) => {
      const value = diagnosticHeaderValue(message);
      assert.match(value, /^[\t\x20-\x7e]*$/);
      parseFieldLine(`x-weft-error: ${value}`);
    }),
  );
  property(
    category,
    "setHeader leaves one field of the name, with the value, last, and the others in order",
    fc.property(fields(), token, fieldValue, (headers, name, value) => {
      const others = pairsOf(headers).filter(([n]) => n.toLowerCase() !== name.toLowerCase());
      const out = headers.slice();
      setHeader(out, name, value);
      assert.deepEqual(pairsOf(out), [...others, [name, value]]);
    }),
  );
  property(
    category,
    "HTTP/2 header conversion keeps every field HTTP/2 allows, whatever its name",
    fc.property(fields(fc.oneof(mixedNames, fc.constantFrom(...OBJECT_KEYS))), (headers) => {
      const sorted = (list: string[]) =>
        pairsOf(list)
          .map(([n, v]) => `${n.toLowerCase()}: ${v}`)
          .sort();
      const allowed = pairsOf(headers).filter(
        ([n, v]) => !CONNECTION_SPECIFIC.includes(n.toLowerCase()) && (n.toLowerCase() !== "te" || v.toLowerCase() === "trailers"),
      );
      // What the proxy sends as outgoing headers arrives at the peer as incoming ones.
      assert.deepEqual(sorted(flatten(toHttp2(headers) as IncomingHttpHeaders)), sorted(allowed.flat()));
    }),
  );
});
