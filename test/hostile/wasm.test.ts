// runtimes: node deno bun
// Hostile WebAssembly filters, one recorded case each: files that are not modules or not weft
// filters, traps, endless loops and memory bombs in every phase, output past the filter's
// limits, headers a filter must not set, and (Security) a filter reaching for a file system,
// a network or a clock it was not given. Each case runs its module (wasm-modules.ts) in a
// fresh sidecar, attached to /hostile only, and asserts the clear error — the load reason in
// /config_dump, or the 500's x-weft-error and weft_filter_failures_total — then that the same
// filter serves a well-behaved request (after a fault) and that a route it is not
// attached to is served. The same ground, checked in passing elsewhere: test/filters.test.ts
// ("failing filters", "loading filters", with AssemblyScript fixtures), test/filter-meter.test.ts
// (the metering on its own), test/plugins.test.ts ("hostile config").
import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash, randomUUID } from "node:crypto";
import { startUpstream, type Upstream } from "../support/upstream.ts";
import { startProxy, simpleConfig, type RunningProxy } from "../support/proxy.ts";
import { request, type Reply } from "../support/client.ts";
import type { ProxyConfigInput } from "../../proxy/config/schema.ts";
import { MAX_FAULT_MESSAGE, type FaultKind } from "../../proxy/filters/fault.ts";
import { MAX_HEADER_BYTES } from "../../proxy/filters/headers.ts";
import { PHASES, isResponsePhase, type FilterPhaseName } from "../../proxy/filters/message.ts";
import { Recorder } from "./record.ts";
import {
  HOSTILE,
  I32,
  I64,
  F64,
  KEPT,
  add,
  block,
  filterModule,
  hostileIn,
  importing,
  op,
  proceed,
  remove,
  repeat,
  respond,
  set,
  type Code,
} from "./wasm-modules.ts";

type FilterInput = NonNullable<ProxyConfigInput["filters"]>[number];

const FILTER = "test/hostile";
const rec = new Recorder("wasm");
let upstream: Upstream;
let scratch: string;

async function moduleFile(bytes: Uint8Array): Promise<{ path: string; sha256: string }> {
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const path = join(scratch, `${sha256}.wasm`);
  await writeFile(path, bytes);
  return { path, sha256 };
}

interface Setup {
  /** Path prefixes the filter is attached to; default /hostile. */
  prefixes?: string[];
  filter?: Partial<FilterInput>;
  /** The sha256 the configuration names, when it is not the module's. */
  sha256?: string;
  /** Filters beside it. */
  more?: FilterInput[];
}

/**
 * A sidecar whose filter test/hostile runs `bytes`; after `body`, a request the filter is not
 * attached to (carrying the same HOSTILE header) must be served.
 */
async function withFilter(bytes: Uint8Array, setup: Setup, body: (proxy: RunningProxy) => Promise<void>): Promise<void> {
  const file = await moduleFile(bytes);
  const filter: FilterInput = {
    name: "hostile",
    namespace: "test",
    module: { path: file.path, sha256: setup.sha256 ?? file.sha256 },
    match: [{ pathPrefixes: setup.prefixes ?? ["/hostile"] }],
    ...setup.filter,
  };
  const proxy = await startProxy(simpleConfig([upstream.port], { filters: [filter, ...(setup.more ?? [])] }));
  try {
    await body(proxy);
    const other = await request(proxy.outbound, { path: "/other", headers: { [HOSTILE]: "1" } });
    assert.equal(other.status, 200, `a request the filter is not attached to: ${other.status} ${other.headers["x-weft-error"] ?? ""}`);
    assert.equal(other.body, "hello from app\n");
  } finally {
    await proxy.stop();
  }
}

/** A request through the filter (POST with a body unless HEAD, so that body phases run); `hostile` asks it to misbehave. */
async function send(proxy: RunningProxy, hostile: boolean, path = "/hostile", method = "POST") {
  const id = randomUUID();
  const headers: Record<string, string> = { "x-request-id": id, ...(hostile ? { [HOSTILE]: "1" } : {}) };
  const reply = await request(proxy.outbound, { method, path, headers, ...(method === "POST" ? { body: "payload" } : {}) });
  return { reply, reachedUpstream: () => upstream.received.some((r) => r.headers["x-request-id"] === id) };
}

function assertFilterError(reply: Reply, error: RegExp): void {
  const header = String(reply.headers["x-weft-error"] ?? "");
  assert.equal(reply.status, 500, `expected the filter's 500, got ${reply.status} ${header}`);
  assert.ok(header.startsWith(`filter ${FILTER} failed: `), header);
  assert.match(header, error);
}

async function failureCount(proxy: RunningProxy, phase: FilterPhaseName, kind: FaultKind): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${proxy.admin}/metrics`)).text();
  const line = new RegExp(`^weft_filter_failures_total\\{filter="${FILTER}",phase="${phase}",kind="${kind}"\\} (\\d+)$`, "m").exec(text);
  return line ? Number(line[1]) : 0;
}

async function filterStatus(proxy: RunningProxy): Promise<{ ready: boolean; reason?: string }> {
  const dump = (await (await fetch(`http://127.0.0.1:${proxy.admin}/config_dump`)).json()) as {
    filterStatus: { filter: string; ready: boolean; reason?: string }[];
  };
  const status = dump.filterStatus.find((s) => s.filter === FILTER);
  assert.ok(status, `no filterStatus for ${FILTER}`);
  return status;
}

// ---- the kinds of case ----

interface Refusal {
  name: string;
  module: Uint8Array;
  reason: RegExp;
  setup?: Setup;
}

/** A module the proxy refuses to load: the reason is in /config_dump, and its route gets FailClose's 500 with it. */
function refusedAtLoad(category: string, r: Refusal): void {
  rec.case("hostile input", category, r.name, () =>
    withFilter(r.module, r.setup ?? {}, async (proxy) => {
      const status = await filterStatus(proxy);
      assert.equal(status.ready, false);
      assert.match(status.reason ?? "", r.reason);
      const { reply, reachedUpstream } = await send(proxy, true);
      assertFilterError(reply, r.reason);
      assert.equal(await failureCount(proxy, "on_request_headers", "unavailable"), 1);
      assert.equal(reachedUpstream(), false, "the request of a filter that did not load must not reach the upstream");
    }),
  );
}

interface Misbehaviour {
  name: string;
  module: Uint8Array;
  phase: FilterPhaseName;
  kind: FaultKind;
  error: RegExp;
  limits?: FilterInput["limits"];
  path?: string;
  method?: string;
  /** What a well-behaved request through the same filter gets; null when every call fails (an instance that cannot start). */
  calm?: number | null;
  /** Further checks of the failed reply. */
  check?: (reply: Reply) => void;
}

/**
 * A filter that fails when asked to (HOSTILE): FailClose's 500 names the fault, the metric counts
 * it, the next request is served (by a fresh instance, or after an error return the same one).
 */
function misbehaves(category: string, m: Misbehaviour): void {
  rec.case("hostile input", category, m.name, () =>
    withFilter(m.module, { prefixes: [m.path ?? "/hostile"], filter: m.limits ? { limits: m.limits } : {} }, async (proxy) => {
      const { reply, reachedUpstream } = await send(proxy, true, m.path, m.method);
      assertFilterError(reply, m.error);
      m.check?.(reply);
      assert.equal(await failureCount(proxy, m.phase, m.kind), 1, `weft_filter_failures_total{phase="${m.phase}",kind="${m.kind}"}`);
      if (!isResponsePhase(m.phase))
        assert.equal(reachedUpstream(), false, "a request whose filter failed before routing must not reach the upstream");
      const calm = m.calm === undefined ? 200 : m.calm;
      if (calm !== null) {
        const { reply: next } = await send(proxy, false, m.path, m.method);
        assert.equal(
          next.status,
          calm,
          `a well-behaved request through the same filter: ${next.status} ${next.headers["x-weft-error"] ?? ""}`,
        );
      }
    }),
  );
}

// ---- modules ----

const fine = filterModule({ phases: { on_request_headers: [...set("x-filtered", "yes"), ...proceed] } });
const spin: Code = [...op.loop, ...op.br(0), ...op.end];
// Grows memory a page at a time until the ceiling refuses, then gives up as an allocator does.
const bomb: Code = [
  ...op.block,
  ...op.loop,
  ...op.i32(1),
  ...op.memoryGrow,
  ...op.i32(-1),
  ...op.i32Ne,
  ...op.brIf(0),
  ...op.end,
  ...op.end,
  ...op.unreachable,
];
const failWith = (code: number, message?: string): Code => [
  ...(message === undefined ? [] : [...block(message), ...op.call("error_set")]),
  ...op.i32(code),
  ...op.return,
];
/** An AssemblyScript-style abort whose message (UTF-16, length before it) fills `bytes` of memory. */
const abortWithFilled = (bytes: number): Code => [
  ...op.i32(8188),
  ...op.i32(bytes),
  ...op.i32Store,
  ...op.i32(8192),
  ...op.i32(0x78),
  ...op.i32(bytes),
  ...op.memoryFill,
  ...op.i32(8192),
  ...op.i32(0),
  ...op.i32(1),
  ...op.i32(1),
  ...op.call("abort"),
];

describe("hostile WebAssembly filters", () => {
  before(async () => {
    upstream = await startUpstream("app");
    scratch = await mkdtemp(join(tmpdir(), "weft-hostile-wasm-"));
  });
  after(async () => {
    await upstream.close();
    await rm(scratch, { recursive: true, force: true });
  });

  describe("not a module", () => {
    const refusals: Refusal[] = [
      {
        name: "bytes that are not WebAssembly",
        module: new TextEncoder().encode("MZ\x90\x00 this is not wasm"),
        reason: /not a WebAssembly module \(file starts with 4d 5a/,
      },
      { name: "an empty file", module: new Uint8Array(0), reason: /not a WebAssembly module \(the file is empty\)/ },
      {
        name: "the text format instead of the binary",
        module: new TextEncoder().encode('(module (func (export "on_request_headers") (result i32) i32.const 0))'),
        reason: /not a WebAssembly module \(file starts with 28 6d 6f 64 75 6c 65 20, "\(module "\)/,
      },
      { name: "a module cut short", module: fine.subarray(0, Math.floor(fine.length * 0.7)), reason: /the module is truncated/ },
      {
        name: "a WebAssembly component",
        module: Uint8Array.of(0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00),
        reason: /WebAssembly component/,
      },
      {
        name: "a module whose sha256 is not the configured one",
        module: fine,
        setup: { sha256: "0".repeat(64) },
        reason: /the module's sha256 is [0-9a-f]{64} but the configuration expects 0{64}; it was not loaded/,
      },
      // (func (export "on_request_headers") (result i32) (i64.const 0)): the engine refuses it.
      {
        name: "a function that does not validate",
        module: filterModule({ phases: { on_request_headers: op.i64(0) } }),
        reason: /type error in fallthru\[0\] \(expected i32, got i64\)|doesn't validate: .*I64 is not a I32/,
      },
    ];
    for (const r of refusals) refusedAtLoad("Wasm", r);
  });

  describe("not the weft ABI", () => {
    const refusals: Refusal[] = [
      {
        name: "a module that keeps its memory to itself",
        module: filterModule({ phases: { on_request_headers: proceed }, memory: { min: 1, exported: false } }),
        reason: /does not export its memory as "memory"/,
      },
      {
        name: "a module that imports its memory",
        module: filterModule({ phases: { on_request_headers: proceed }, memory: "imported" }),
        reason: /imports its memory \("env" "memory"\); weft filters define and export their own memory/,
      },
      {
        name: "a memory larger at start than limits.memoryMiB",
        module: filterModule({ phases: { on_request_headers: proceed }, memory: { min: 100 } }),
        setup: { filter: { limits: { memoryMiB: 4 } } },
        reason: /needs 100 pages \(6\.25 MiB\) of memory at start, its limit is 64 pages \(4 MiB\)/,
      },
      {
        name: "no phase function",
        module: filterModule({ funcs: [{ name: "handle", results: [I32], body: proceed, exported: true }] }),
        reason: /exports none of the phase functions .* \(it exports handle\)/,
      },
      {
        name: "a weft.manifest that is not JSON",
        module: filterModule({ phases: { on_request_headers: proceed }, manifest: "name: not json" }),
        reason: /its weft\.manifest section is not a JSON object/,
      },
      {
        name: "a config its manifest's schema refuses",
        module: filterModule({
          phases: { on_request_headers: proceed },
          manifest: JSON.stringify({
            name: "limited",
            version: "1.0.0",
            abi: 1,
            configSchema: { type: "object", properties: { rate: { type: "number" } }, required: ["rate"] },
          }),
        }),
        setup: { filter: { config: { rate: "fast" } } },
        reason: /its config does not match the filter's schema: .*rate/,
      },
    ];
    for (const r of refusals) refusedAtLoad("Wasm", r);

    const misbehaviours: Misbehaviour[] = [
      {
        name: "a phase function that returns i64",
        module: filterModule({ funcs: [{ name: "on_request_headers", results: [I64], body: op.i64(0), exported: true }] }),
        phase: "on_request_headers",
        kind: "error",
        error: /on_request_headers returned a bigint: a phase function is \(\) -> i32/,
        calm: null,
      },
      {
        name: "a phase function that returns nothing",
        module: filterModule({ funcs: [{ name: "on_request_headers", body: [], exported: true }] }),
        phase: "on_request_headers",
        kind: "error",
        error: /on_request_headers returned no value: a phase function is \(\) -> i32/,
        calm: null,
      },
      {
        name: "a trap in the start function",
        module: filterModule({ funcs: [{ name: "init", body: op.unreachable }], start: "init", phases: { on_request_headers: proceed } }),
        phase: "on_request_headers",
        kind: "trap",
        error: /cannot instantiate the module: unreachable$/,
        calm: null,
      },
      {
        name: "an endless loop in the start function",
        module: filterModule({ funcs: [{ name: "init", body: spin }], start: "init", phases: { on_request_headers: proceed } }),
        phase: "on_request_headers",
        kind: "deadline",
        error: /the call ran past its deadline of 5 ms \(limits\.callTimeoutMs\) and was stopped/,
        calm: null,
      },
    ];
    for (const m of misbehaviours) misbehaves("Wasm", m);
  });

  describe("traps, loops and memory", () => {
    for (const phase of PHASES) {
      misbehaves("Wasm", {
        name: `a trap (unreachable) in ${phase}`,
        module: hostileIn(phase, op.unreachable),
        phase,
        kind: "trap",
        error: /the filter trapped: unreachable$/,
      });
    }
    const misbehaviours: Misbehaviour[] = [
      {
        name: "a load outside the module's memory",
        module: hostileIn("on_request_headers", [...op.i32(-1), ...op.i32Load, ...op.drop]),
        phase: "on_request_headers",
        kind: "trap",
        error: /the filter trapped: out of bounds memory access$/,
      },
      {
        name: "endless recursion",
        module: hostileIn("on_request_headers", op.call("recurse"), { funcs: [{ name: "recurse", body: op.call("recurse") }] }),
        phase: "on_request_headers",
        kind: "trap",
        error: /the filter exhausted the call stack$/,
      },
      {
        name: "an AssemblyScript abort",
        module: hostileIn("on_request_headers", [
          { assemblyScript: "refusing to go on" },
          { assemblyScript: "filter.ts" },
          ...op.i32(3),
          ...op.i32(5),
          ...op.call("abort"),
        ]),
        phase: "on_request_headers",
        kind: "abort",
        error: /refusing to go on at filter\.ts:3:5/,
      },
      {
        name: "a non-zero return with an error message",
        module: hostileIn("on_request_headers", failWith(1, "the request is not welcome")),
        phase: "on_request_headers",
        kind: "error",
        error: /on_request_headers failed: the request is not welcome/,
      },
      {
        name: "a non-zero return without a message",
        module: hostileIn("on_request_body", failWith(7)),
        phase: "on_request_body",
        kind: "error",
        error: /on_request_body returned 7/,
      },
      {
        name: "a host call with an offset that is not a block",
        module: hostileIn("on_request_headers", [...op.i64(12345), ...op.call("weft_get"), ...op.drop]),
        phase: "on_request_headers",
        kind: "trap",
        error: /12345 is not the offset of a memory block/,
      },
      {
        name: "an endless loop in on_request_headers",
        module: hostileIn("on_request_headers", spin),
        phase: "on_request_headers",
        kind: "deadline",
        error: /the call ran past its deadline of \d+ ms \(limits\.callTimeoutMs/,
        limits: { callTimeoutMs: 20 },
      },
      {
        name: "an endless loop in on_response_body",
        module: hostileIn("on_response_body", spin),
        phase: "on_response_body",
        kind: "deadline",
        error: /the call ran past its deadline of \d+ ms \(limits\.callTimeoutMs/,
        limits: { callTimeoutMs: 20 },
      },
      {
        name: "a memory bomb (memory.grow to the ceiling)",
        module: hostileIn("on_request_headers", bomb),
        phase: "on_request_headers",
        kind: "memory",
        error: /the filter ran out of memory: it asked for more than its limit of 4 MiB \(limits\.memoryMiB; it had 4 MiB\)/,
        limits: { memoryMiB: 4 },
      },
      {
        name: "a memory bomb in on_response_headers",
        module: hostileIn("on_response_headers", bomb),
        phase: "on_response_headers",
        kind: "memory",
        error: /the filter ran out of memory/,
        limits: { memoryMiB: 4 },
      },
    ];
    for (const m of misbehaviours) misbehaves("Wasm", m);

    rec.case(
      "hostile input",
      "Wasm",
      "an endless loop does not hold up other requests: they are served while it runs to its deadline",
      () =>
        withFilter(hostileIn("on_request_headers", spin), { filter: { limits: { callTimeoutMs: 200 } } }, async (proxy) => {
          // Sent together with the looping one: three through the same filter (which gets a fresh
          // instance), three on a route without it.
          const [looping, ...others] = await Promise.all([
            send(proxy, true),
            ...Array.from({ length: 3 }, () => send(proxy, false)),
            ...Array.from({ length: 3 }, () => send(proxy, true, "/other")),
          ]);
          assertFilterError(looping!.reply, /ran past its deadline of 200 ms/);
          for (const o of others) assert.equal(o.reply.status, 200, `${o.reply.status} ${o.reply.headers["x-weft-error"] ?? ""}`);
        }),
    );
  });

  describe("output past the limits", () => {
    const misbehaviours: Misbehaviour[] = [
      {
        name: "a 1 GiB block (alloc)",
        module: hostileIn("on_request_headers", [...op.i64(1 << 30), ...op.call("alloc"), ...op.drop]),
        phase: "on_request_headers",
        kind: "memory",
        error: /the filter's blocks would take \d+ bytes in one call, over its memory limit of 4194304 bytes/,
        limits: { memoryMiB: 4 },
      },
      {
        name: "blocks that add up past the memory limit (weft_write)",
        module: hostileIn("on_response_body", repeat(100, [...op.i32(0), ...op.i32(65536), ...op.call("weft_write"), ...op.drop])),
        phase: "on_response_body",
        kind: "memory",
        error: /over its memory limit of 4194304 bytes/,
        limits: { memoryMiB: 4 },
      },
      {
        name: `request headers grown past ${MAX_HEADER_BYTES} bytes (weft_add)`,
        module: hostileIn("on_request_headers", repeat(1000, add("x-many", "v".repeat(100)))),
        phase: "on_request_headers",
        kind: "trap",
        error: new RegExp(`weft_add: the headers would take \\d+ bytes, over the ${MAX_HEADER_BYTES} a filter may leave on a message`),
        limits: { callTimeoutMs: 1000 },
      },
      {
        name: `response headers grown past ${MAX_HEADER_BYTES} bytes (weft_set)`,
        module: hostileIn("on_response_headers", [...set("x-big", "v".repeat(40000)), ...set("x-bigger", "v".repeat(40000))]),
        phase: "on_response_headers",
        kind: "trap",
        error: /weft_set: the headers would take \d+ bytes, over the 65536/,
      },
      {
        name: `a local reply with ${MAX_HEADER_BYTES + 4000} bytes of headers`,
        module: hostileIn("on_request_headers", respond(200, `x-big: ${"v".repeat(MAX_HEADER_BYTES + 4000)}\n`, "")),
        phase: "on_request_headers",
        kind: "trap",
        error: /weft_respond: the headers would take \d+ bytes, over the 65536/,
      },
      {
        name: "a 1 MiB error message (error_set) is cut in x-weft-error",
        module: hostileIn(
          "on_request_headers",
          [
            ...op.i32(0),
            ...op.i32(0x78),
            ...op.i32(1 << 20),
            ...op.memoryFill,
            ...op.i32(0),
            ...op.i32(1 << 20),
            ...op.call("weft_write"),
            ...op.call("error_set"),
            ...op.i32(1),
            ...op.return,
          ],
          { memory: { min: 17 } },
        ),
        phase: "on_request_headers",
        kind: "error",
        error: /on_request_headers failed: x+\.\.\. \(\d+ more characters\)$/,
        check: (reply) => assert.ok(String(reply.headers["x-weft-error"]).length < MAX_FAULT_MESSAGE + 200, "x-weft-error is cut"),
      },
      {
        name: "a 1 MiB AssemblyScript abort message is cut in x-weft-error",
        module: hostileIn("on_request_headers", abortWithFilled(1 << 20), { memory: { min: 18 } }),
        phase: "on_request_headers",
        kind: "abort",
        error: /(\\u7878)+\.\.\. \(\d+ more characters\)$/,
        check: (reply) => assert.ok(String(reply.headers["x-weft-error"]).length < 6 * MAX_FAULT_MESSAGE + 200, "x-weft-error is cut"),
      },
      {
        name: "an error message with a line break does not add a header to the 500",
        module: hostileIn("on_request_headers", failWith(1, "denied\r\nx-injected: 1")),
        phase: "on_request_headers",
        kind: "error",
        error: /on_request_headers failed: denied x-injected: 1/,
        check: (reply) => assert.equal(reply.headers["x-injected"], undefined),
      },
    ];
    for (const m of misbehaviours) misbehaves("Wasm", m);
  });

  describe("headers a filter must not set", () => {
    const refused = (name: string, phase: FilterPhaseName, code: Code, error: RegExp, extra: Partial<Misbehaviour> = {}) =>
      misbehaves("Wasm", { name, module: hostileIn(phase, code), phase, kind: "trap", error, ...extra });

    for (const header of [
      "transfer-encoding",
      "content-length",
      "connection",
      "keep-alive",
      "proxy-connection",
      "te",
      "trailer",
      "upgrade",
      "http2-settings",
    ]) {
      refused(
        `weft_add of ${header}`,
        "on_request_headers",
        add(header, "chunked"),
        new RegExp(`weft_add: "${header}" is managed by the proxy and cannot be set or removed by a filter`),
      );
    }
    refused(
      "weft_set of host",
      "on_request_headers",
      set("host", "admin.internal"),
      /weft_set: "host" is managed by the proxy and cannot be set or removed by a filter \(set ":authority"\)/,
    );
    refused(
      "weft_remove of transfer-encoding",
      "on_request_headers",
      remove("transfer-encoding"),
      /weft_remove: "transfer-encoding" is managed by the proxy/,
    );
    refused(
      "weft_set of transfer-encoding on a response",
      "on_response_headers",
      set("transfer-encoding", "chunked"),
      /weft_set: "transfer-encoding" is managed by the proxy/,
    );
    refused(
      "weft_set of content-length on a response body",
      "on_response_body",
      set("content-length", "1"),
      /weft_set: "content-length" is managed by the proxy/,
    );
    refused(
      "a header value with CR LF",
      "on_request_headers",
      set("x-user", "alice\r\nx-admin: true"),
      /weft_set: the value of "x-user" holds a control character/,
    );
    refused(
      "a header value with U+010A U+010D (truncated to LF CR on the wire)",
      "on_request_headers",
      set("x-user", "alice\u010a\u010dx-admin: true"),
      /the value of "x-user" holds a control character or one past U\+00FF/,
    );
    refused("a header name with a space", "on_request_headers", set("x user", "1"), /weft_set: "x user" is not a valid header name/);
    refused("a header name with a colon", "on_response_headers", add("x-a:b", "1"), /weft_add: "x-a:b" is not a valid header name/);
    refused(
      "a local reply with transfer-encoding",
      "on_request_headers",
      respond(200, "transfer-encoding: chunked\n", "0\r\n\r\n"),
      /weft_respond: "transfer-encoding" is managed by the proxy/,
    );
    refused(
      "a local reply with status 101",
      "on_request_headers",
      respond(101, "upgrade: websocket\n", ""),
      /weft_respond: status 101 is not 200-599/,
    );

    for (const [what, value] of [
      ["a line break", "app\r\nx-admin: true"],
      ["a space", "app evil"],
      ["userinfo", "user@evil.example"],
      ["a path", "evil.example/admin"],
      ["a non-ASCII letter", "\u0430pp"],
      ["nothing", ""],
    ]) {
      refused(`:authority with ${what}`, "on_request_headers", set(":authority", value!), /weft_set: ":authority" must be a host\[:port\]/);
    }
    for (const [what, value] of [
      ["an absolute URL", "http://evil.example/"],
      ["no leading slash", "admin"],
      ["a space", "/a b"],
      ["a line break", "/a\r\nx-admin: true"],
      ["a non-ASCII letter", "/caf\u00e9"],
      ["nothing", ""],
    ]) {
      refused(
        `:path with ${what}`,
        "on_request_headers",
        set(":path", value!),
        /weft_set: ":path" must start with "\/" and hold only visible ASCII/,
      );
    }
    refused(":method in lower case", "on_request_headers", set(":method", "get"), /weft_set: ":method" must be an upper-case method/);
    refused(":method with a space", "on_request_headers", set(":method", "GET /admin"), /weft_set: ":method" must be an upper-case method/);
    refused(
      ":method POST changed to HEAD",
      "on_request_headers",
      set(":method", "HEAD"),
      /weft_set: ":method" cannot change from POST to HEAD/,
    );
    refused(
      ":method HEAD changed to GET",
      "on_request_headers",
      set(":method", "GET"),
      /weft_set: ":method" cannot change from HEAD to GET/,
      { method: "HEAD" },
    );
    refused(":scheme", "on_request_headers", set(":scheme", "https"), /weft_set: ":scheme" cannot be set/);
    refused("weft_add of :path", "on_request_headers", add(":path", "/admin"), /weft_add: ":path" is a pseudo-header; use weft_set/);
    refused(
      "weft_remove of :authority",
      "on_request_headers",
      remove(":authority"),
      /weft_remove: ":authority" is a pseudo-header and cannot be removed/,
    );
    refused(
      ":status 101 in a response phase",
      "on_response_headers",
      set(":status", "101"),
      /weft_set: ":status" must be 200-599, not "101"/,
    );
    refused(":status 600 in a response phase", "on_response_body", set(":status", "600"), /weft_set: ":status" must be 200-599, not "600"/);
    refused(
      ":status 204 on a response with a body",
      "on_response_headers",
      set(":status", "204"),
      /weft_set: ":status" cannot change from 200 to 204/,
    );
    refused(
      ":status 200 on a 204 response",
      "on_response_headers",
      set(":status", "200"),
      /weft_set: ":status" cannot change from 204 to 200/,
      { path: "/status/204", calm: 204 },
    );
    refused(
      ":path in a response phase",
      "on_response_headers",
      set(":path", "/admin"),
      /weft_set: only :status can be set in a response phase, not ":path"/,
    );
    refused(
      "a request header in a response phase",
      "on_response_headers",
      set("request.x-late", "1"),
      /weft_set: request headers cannot change in a response phase/,
    );

    rec.case("hostile input", "Wasm", "weft_remove of content-length (the body would be read upstream as the next request)", () =>
      withFilter(hostileIn("on_request_headers", remove("content-length")), {}, async (proxy) => {
        const inner = "GET /smuggled HTTP/1.1\r\nHost: app\r\n\r\n";
        const id = randomUUID();
        const reply = await request(proxy.outbound, {
          method: "POST",
          path: "/hostile",
          body: inner,
          headers: { [HOSTILE]: "1", "x-request-id": id },
        });
        assertFilterError(reply, /weft_remove: "content-length" is managed by the proxy and cannot be set or removed by a filter/);
        assert.equal(await failureCount(proxy, "on_request_headers", "trap"), 1);
        const calm = await request(proxy.outbound, { method: "POST", path: "/hostile", body: inner });
        assert.equal(calm.status, 200);
        assert.deepEqual(
          upstream.received.filter((r) => r.url === "/smuggled" || r.headers["x-request-id"] === id),
          [],
          "nothing of the refused request reached the upstream",
        );
      }),
    );
  });

  describe("a filter's reach", () => {
    const refusedImports: [string, string, number[], number[]][] = [
      ["wasi_snapshot_preview1", "fd_write", [I32, I32, I32, I32], [I32]],
      ["wasi_snapshot_preview1", "fd_read", [I32, I32, I32, I32], [I32]],
      ["wasi_snapshot_preview1", "path_open", [I32, I32, I32, I32, I32, I64, I64, I32, I32], [I32]],
      ["wasi_snapshot_preview1", "clock_time_get", [I32, I64, I32], [I32]],
      ["wasi_snapshot_preview1", "random_get", [I32, I32], [I32]],
      ["wasi_snapshot_preview1", "environ_get", [I32, I32], [I32]],
      ["wasi_snapshot_preview1", "sock_accept", [I32, I32, I32], [I32]],
      ["wasi_snapshot_preview1", "sock_send", [I32, I32, I32, I32, I32], [I32]],
      ["wasi_snapshot_preview1", "sock_recv", [I32, I32, I32, I32, I32, I32], [I32]],
      ["wasi_snapshot_preview1", "proc_exit", [I32], []],
      ["wasi:http/outgoing-handler@0.2.0", "handle", [I32, I32, I32, I32], []],
      ["wasi:filesystem/preopens@0.2.0", "get-directories", [I32], []],
      ["env", "Date.now", [], [F64]],
      ["env", "fetch", [I32, I32], [I32]],
      ["extism:host/user", "weft_exec", [I64], [I64]],
    ];
    for (const [module, fn, params, results] of refusedImports) {
      refusedAtLoad("Security", {
        name: `an import of ${module} ${fn} is refused at load`,
        module: importing(module, fn, params, results),
        reason: new RegExp(
          `the module imports function "${module.replace(/[/.]/g, "\\$&")}" "${fn.replace(/\./g, "\\.")}", which weft does not provide`,
        ),
      });
    }
    // A provided function imported with other types would get values of the wrong type from the host.
    const misdeclared: [string, string, number[], number[], string][] = [
      ["extism:host/user", "weft_respond", [I64, I64, I64], [], "(i64, i64, i64)"],
      ["extism:host/user", "weft_get", [I32], [I32], "(i32) -> i32"],
      ["extism:host/user", "weft_write", [I32, I32], [I32], "(i32, i32) -> i32"],
      ["extism:host/env", "alloc", [I64], [I64, I64], "(i64) -> i64, i64"],
      // Provided (current PDKs' HTTP clients import it; it gives no block), with Extism's signature only.
      ["extism:host/env", "http_headers", [], [I32], "() -> i32"],
      ["env", "abort", [F64], [], "(f64)"],
    ];
    for (const [module, fn, params, results, signature] of misdeclared) {
      const wanted = {
        weft_respond: "(i32, i64, i64)",
        weft_get: "(i64) -> i64",
        weft_write: "(i32, i32) -> i64",
        alloc: "(i64) -> i64",
        http_headers: "() -> i64",
        abort: "(i32, i32, i32, i32)",
      }[fn]!;
      const escapeRe = (text: string) => text.replace(/[/.()]/g, "\\$&");
      refusedAtLoad("Security", {
        name: `${module} ${fn} imported as ${signature} is refused at load`,
        module: importing(module, fn, params, results),
        reason: new RegExp(
          `the module imports "${escapeRe(module)}" "${fn}" as ${escapeRe(signature)}, but weft provides it as ${escapeRe(wanted)}: declare it with that signature`,
        ),
      });
    }
    refusedAtLoad("Security", {
      name: "a provided function's name imported as a global is refused at load",
      module: filterModule({
        imports: [{ module: "extism:host/user", name: "weft_get", kind: "global" }],
        phases: { on_request_headers: proceed },
      }),
      reason: /the module imports global "extism:host\/user" "weft_get", which weft does not provide/,
    });
    refusedAtLoad("Security", {
      name: "an imported global is refused at load",
      module: filterModule({ imports: [{ module: "env", name: "process_env", kind: "global" }], phases: { on_request_headers: proceed } }),
      reason: /the module imports global "env" "process_env", which weft does not provide/,
    });
    refusedAtLoad("Security", {
      name: "an import from weft's metering namespace (its own clock) is refused at load",
      module: importing("weft:meter", "tick", [], []),
      reason: /imports from "weft:meter" .*a namespace weft reserves for its metering/,
    });
    refusedAtLoad("Security", {
      name: "an export named like the metering's fuel is refused at load",
      module: filterModule({
        funcs: [{ name: "weft_fuel", results: [I32], body: proceed, exported: true }],
        phases: { on_request_headers: proceed },
      }),
      reason: /already exports "weft_fuel" .*a name weft's metering reserves/,
    });

    const misbehaviours: Misbehaviour[] = [
      {
        name: "Extism's http_request fails the call: a filter has no network",
        module: hostileIn("on_request_headers", [
          ...block('{"url":"http://127.0.0.1:1/"}'),
          ...op.i64(0),
          ...op.call("http_request"),
          ...op.drop,
        ]),
        phase: "on_request_headers",
        kind: "trap",
        error: /a filter has no network access: http_request is not available in weft/,
      },
      {
        name: "weft_read to a pointer past the module's memory",
        module: hostileIn("on_request_headers", [...block("x"), ...op.i32(0x7ffffff0), ...op.call("weft_read")]),
        phase: "on_request_headers",
        kind: "trap",
        error: /weft_read: 1 bytes at 2147483632 do not fit the filter's memory/,
      },
      {
        name: "weft_write of more than the module's memory",
        module: hostileIn("on_request_headers", [...op.i32(0), ...op.i32(0x7fffffff), ...op.call("weft_write"), ...op.drop]),
        phase: "on_request_headers",
        kind: "trap",
        error: /weft_write: 2147483647 bytes at 0 are outside the filter's memory/,
      },
      {
        name: "load_u8 outside every block (the host's memory is out of reach)",
        module: hostileIn("on_request_headers", [...op.i64(2 ** 40), ...op.call("load_u8"), ...op.drop]),
        phase: "on_request_headers",
        kind: "trap",
        error: /memory access at 1099511627776 \(1 bytes\) is outside every block/,
      },
      {
        name: "store_u8 outside every block",
        module: hostileIn("on_request_headers", [...op.i64(1 << 20), ...op.i32(1), ...op.call("store_u8")]),
        phase: "on_request_headers",
        kind: "trap",
        error: /memory access at 1048576 \(1 bytes\) is outside every block/,
      },
    ];
    for (const m of misbehaviours) misbehaves("Security", m);

    // The writer reports its own variable (x-own-secret) and then sets it; the reader, a
    // second filter on the same route, reports the variable if it can see it (x-leaked).
    const reportVariable = (header: string): Code => [
      ...block("secret"),
      ...op.call("var_get"),
      ...op.localTee(KEPT),
      ...op.i64Eqz,
      ...op.if,
      ...op.else,
      ...block(header),
      ...op.localGet(KEPT),
      ...op.call("weft_set"),
      ...op.end,
    ];
    const writer = filterModule({
      phases: {
        on_request_headers: [...reportVariable("x-own-secret"), ...block("secret"), ...block("s3cret"), ...op.call("var_set"), ...proceed],
      },
    });
    const reader = filterModule({ phases: { on_request_headers: [...reportVariable("x-leaked"), ...proceed] } });
    rec.case("hostile input", "Security", "a filter cannot read another filter's variables", async () => {
      const readerFile = await moduleFile(reader);
      await withFilter(
        writer,
        {
          filter: { priority: 10 },
          more: [{ name: "reader", namespace: "test", module: readerFile, match: [{ pathPrefixes: ["/hostile"] }] }],
        },
        async (proxy) => {
          await send(proxy, false);
          const { reply } = await send(proxy, false);
          assert.equal(reply.status, 200);
          const seen = upstream.received[upstream.received.length - 1]!;
          assert.equal(seen.headers["x-own-secret"], "s3cret", "the writer reads its own variable back");
          assert.equal(seen.headers["x-leaked"], undefined, "the reader must not see the writer's variable");
        },
      );
    });
  });

  rec.case("hostile input", "Wasm", "a filter refused at load serves once a new configuration fixes it (PUT /config)", () =>
    withFilter(new TextEncoder().encode("not wasm"), {}, async (proxy) => {
      assertFilterError((await send(proxy, true)).reply, /not a WebAssembly module/);
      const file = await moduleFile(fine);
      const next = simpleConfig([upstream.port], {
        version: "test-2",
        filters: [{ name: "hostile", namespace: "test", module: file, match: [{ pathPrefixes: ["/hostile"] }] }],
      });
      const put = await fetch(`http://127.0.0.1:${proxy.admin}/config`, { method: "PUT", body: JSON.stringify(next) });
      assert.equal(put.status, 200, await put.text());
      assert.equal((await filterStatus(proxy)).ready, true);
      const { reply, reachedUpstream } = await send(proxy, true);
      assert.equal(reply.status, 200);
      assert.equal(reachedUpstream(), true);
      assert.equal(upstream.received[upstream.received.length - 1]!.headers["x-filtered"], "yes");
    }),
  );
});
