// runtimes: node deno bun
// needs: ts-engine
// Full-TypeScript filters (filter.json's "engine": "typescript"; sdk/typescript): the fixture
// test/fixtures/ts-filter, which bundles an npm package (cookie), built once (cached like the
// AssemblyScript builds) and run through a running proxy with real HTTP clients; what a
// misbehaving one gets; the scaffold; and the build's refusals.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { startUpstream, type Upstream } from "./support/upstream.ts";
import { startProxy, simpleConfig, type RunningProxy } from "./support/proxy.ts";
import type { ProxyConfigInput } from "../proxy/config/schema.ts";
import { request } from "./support/client.ts";
import { builtFilter } from "../sdk/build/cache.ts";
import { buildFilter } from "../sdk/build/build.ts";
import { BuildError } from "../sdk/build/error.ts";
import { scaffoldFilter } from "../sdk/cli/new.ts";
import { loadFixtures } from "../sdk/cli/fixtures.ts";
import { testFilter } from "../sdk/cli/filter-test.ts";
import { engineWasm } from "../sdk/typescript/engine.ts";
import { compileFilter } from "../proxy/filters/module.ts";
import { FilterInstance } from "../proxy/filters/instance.ts";
import { FilterState } from "../proxy/filters/state.ts";
import type { FilterMessage } from "../proxy/filters/message.ts";
import { createLogger } from "../shared/log.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..");
const fixture = path.join(root, "test", "fixtures", "ts-filter");
type Built = { path: string; sha256: string; wasm: Uint8Array };
let built: Built;
let upstream: Upstream;
let scratch: string;
const cleanups: (() => Promise<void>)[] = [];

before(async () => {
  built = await builtFilter(fixture);
  upstream = await startUpstream("app");
  scratch = await mkdtemp(path.join(tmpdir(), "weft-ts-filters-"));
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
  await upstream.close();
  await rm(scratch, { recursive: true, force: true });
});

type FilterInput = NonNullable<ProxyConfigInput["filters"]>[number];

async function proxyWith(extra: Partial<FilterInput> = {}): Promise<RunningProxy> {
  const filter: FilterInput = { name: "ts-gate", namespace: "test", module: { path: built.path, sha256: built.sha256 }, ...extra };
  const proxy = await startProxy(simpleConfig([upstream.port], { filters: [filter] }));
  cleanups.push(() => proxy.stop());
  return proxy;
}

async function echo(proxy: RunningProxy, headers: Record<string, string> = {}) {
  const reply = await request(proxy.outbound, { path: "/echo", headers });
  return { reply, seen: reply.status === 200 ? (JSON.parse(reply.body) as { headers: Record<string, string> }) : null };
}

const base64url = (data: string | Buffer) => Buffer.from(data).toString("base64url");

function hs256(secret: string, claims: Record<string, unknown>): string {
  const input = `${base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }))}.${base64url(JSON.stringify(claims))}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

describe("a full-TypeScript filter in a proxy", () => {
  it("serves its first request under the default 5 ms deadline", async () => {
    // The first test of the suite, so that the module is compiled for the first time in this
    // process. The call burns ~26,000 units of fuel, so the deadline is checked once, at 20,000
    // (proxy/filters/instance.ts). Lazy compilation of a 1 MB engine takes 15-50 ms on V8: the
    // warm-up in proxy/filters/filter.ts and a phase's longer first deadline (instance.ts)
    // keep that from failing the request.
    const proxy = await proxyWith({ limits: { callTimeoutMs: 5 } });
    const first = await echo(proxy, { "x-work": "40" });
    assert.equal(first.reply.status, 200, first.reply.body);
    assert.equal(first.seen!.headers["x-work-done"], "911");
  });

  it("changes request and response headers with an npm package, its config, state, counters and a JWT", async () => {
    const jwtKey = JSON.stringify({ kty: "oct", k: base64url("s3cret") });
    const proxy = await proxyWith({ config: { greeting: "hi from TypeScript", jwtKey } });
    const first = await echo(proxy, { cookie: "theme=dark; session=abc123", authorization: `Bearer ${hs256("s3cret", { sub: "alice" })}` });
    assert.equal(first.reply.status, 200, first.reply.body);
    const h = first.seen!.headers;
    assert.equal(h["x-greeting"], "hi from TypeScript", "the config");
    assert.equal(h["x-session"], "abc123", "the cookie package, bundled");
    assert.equal(h["x-count"], "1");
    assert.equal(h["x-previous-path"], "none");
    assert.equal(h["x-utf8"], "10 true", "TextEncoder and TextDecoder, UTF-8");
    assert.equal(h["x-absent"], "true", "an absent header is null");
    assert.equal(h["x-jwt-sub"], "alice", "jwt.split and jwt.verify (the proxy's weft_verify)");
    assert.equal(first.reply.headers["x-filter-response"], "200 for /echo", "a response phase");
    const second = await echo(proxy, { authorization: `Bearer ${hs256("wrong", { sub: "mallory" })}` });
    assert.equal(second.seen!.headers["x-count"], "2", "the shared counter keeps counting");
    assert.equal(second.seen!.headers["x-previous-path"], "/echo", "state outlives the call");
    assert.equal(second.seen!.headers["x-jwt-sub"], "invalid");
    assert.equal(second.seen!.headers["x-session"], "none");
    const settled = await echo(proxy, { "x-do": "async" });
    assert.equal(settled.seen!.headers["x-async"], "settled", "an async phase is settled within the call");
  });

  it("answers locally; the upstream never sees the request", async () => {
    const proxy = await proxyWith({ config: { denyPrefix: "/admin" } });
    const before = upstream.received.length;
    const reply = await request(proxy.outbound, { path: "/admin/users" });
    assert.equal(reply.status, 403);
    assert.equal(reply.body, "/admin/users is denied\n");
    assert.equal(reply.headers["x-denied-by"], "ts-gate");
    assert.equal(upstream.received.length, before);
  });
});

describe("a misbehaving full-TypeScript filter", () => {
  it("FailClose answers 500 with the message for a throw, a failure, an endless loop and a memory bomb; the proxy keeps serving", async () => {
    // A deadline well above the bomb's run time, so that a loaded machine still runs it out of memory first.
    const proxy = await proxyWith({ limits: { callTimeoutMs: 1000, memoryMiB: 8 } });
    const cases: [string, RegExp][] = [
      ["throw", /filter test\/ts-gate failed: on_request_headers failed: TypeError: asked to throw\n\s+at on_request_headers/],
      ["fail", /on_request_headers failed: asked to fail/],
      ["loop", /ran past its deadline of 1000 ms/],
      ["bomb", /ran out of memory: it asked for more than its limit of 8 MiB/],
    ];
    for (const [what, message] of cases) {
      const reply = await request(proxy.outbound, { path: "/echo", headers: { "x-do": what } });
      assert.equal(reply.status, 500, what);
      assert.match(reply.body, message, what);
      const after = await echo(proxy);
      assert.equal(after.reply.status, 200, `after ${what}`);
    }
    const metrics = await (await fetch(`http://127.0.0.1:${proxy.admin}/metrics`)).text();
    for (const kind of ["error", "deadline", "memory"])
      assert.match(metrics, new RegExp(`weft_filter_failures_total\\{filter="test/ts-gate",phase="on_request_headers",kind="${kind}"\\}`));
  });

  // Filter calls run on the proxy's one thread: the requests behind a looping call wait for its deadline.
  it("an endless loop is cut off at its deadline with a 500, and the requests queued behind it are served after it", async () => {
    const proxy = await proxyWith({ limits: { callTimeoutMs: 200 } });
    const [loop, ...others] = await Promise.all([
      request(proxy.outbound, { path: "/echo", headers: { "x-do": "loop" } }),
      ...Array.from({ length: 5 }, () => echo(proxy)),
    ]);
    assert.equal(loop.status, 500);
    assert.match(String(loop.headers["x-weft-error"]), /200 ms|deadline/);
    for (const o of others) assert.equal(o.reply.status, 200);
  });
});

describe("instances of a full-TypeScript filter", () => {
  it("draw their own Math.random, and console.log is the filter's log", async () => {
    const compiled = await compileFilter(built.wasm, built.sha256, 256, "ts-gate");
    const lines: string[] = [];
    const services = {
      filterId: "test/ts-gate",
      state: new FilterState(),
      config: {},
      configJson: "{}",
      logLevel: "info" as const,
      callTimeoutMs: 1000,
      log: (level: string, m: string) => void lines.push(`${level} ${m}`),
      metric() {},
    };
    const draw = () => {
      const message: FilterMessage = {
        phase: "on_request_headers",
        request: { method: "GET", path: "/a", authority: "app", scheme: "http", headers: [] },
        response: null,
        body: null,
        attributes: { direction: "inbound", sourceAddress: "127.0.0.1", sourcePrincipal: "", requestId: "r" },
        reply: null,
      };
      new FilterInstance(compiled, services).call("on_request_headers", message);
      return message.request.headers[message.request.headers.indexOf("x-random") + 1];
    };
    assert.notEqual(draw(), draw(), "the snapshot's generator state is not shared");
    assert.deepEqual(lines, ['info passed {"path":"/a","greeting":"hello"}', 'info passed {"path":"/a","greeting":"hello"}']);
  });
});

describe("weft filter new --engine typescript, build and test", () => {
  it("scaffolds a full-TypeScript filter whose samples pass", async () => {
    const dir = path.join(scratch, "my-ts");
    const files = await scaffoldFilter(dir, "my-ts", "typescript");
    assert.deepEqual(files.map((f) => path.relative(dir, f)).sort(), [
      "README.md",
      "filter.json",
      "filter.ts",
      "package.json",
      path.join("test", "requests.json"),
      "tsconfig.json",
    ]);
    const filter = await buildFilter(dir);
    assert.equal(filter.manifest.engine, "typescript");
    const results = await testFilter(filter.wasm, await loadFixtures(path.join(dir, "test", "requests.json")), createLogger({}, "error"));
    assert.deepEqual(
      results.map((r) => r.problems),
      [[], [], []],
    );
  });

  it("builds the same bytes again (from the cache when another runtime built it already)", async () => {
    const again = await buildFilter(fixture);
    assert.equal(again.sha256, built.sha256);
    const exports = WebAssembly.Module.exports(new WebAssembly.Module(again.wasm as Uint8Array<ArrayBuffer>))
      .map((e) => e.name)
      .sort();
    assert.deepEqual(exports, ["memory", "on_request_headers", "on_response_headers"], "only the phases the filter defines");
  });

  it("refuses, naming the file and what to do: a Node built-in, top-level code that needs a request, no phase, a throw at load", async () => {
    const cases: [string, string, RegExp][] = [
      [
        "node-builtin",
        'import { readFileSync } from "node:fs";\nexport function on_request_headers() { return readFileSync("/etc/passwd").length; }\n',
        /filter\.ts:1:\d+: error: Could not resolve "node:fs".*Node's built-in modules do not exist in a filter/,
      ],
      [
        "top-level",
        'import { request } from "@weft/sdk-ts";\nconst ua = request.header("user-agent");\nexport function on_request_headers() { return ua ? 0 : 1; }\n',
        /the top-level code called weft_get, .*runs once, when the filter is built/,
      ],
      [
        "camel-case",
        "export function onRequestHeaders() { return 0; }\n",
        /exports none of the phase functions on_request_headers, .* \(it exports onRequestHeaders\)/,
      ],
      [
        "throws",
        'throw new RangeError("bad table");\nexport function on_request_headers() { return 0; }\n',
        /top-level code failed when it was evaluated[\s\S]*filter\.ts: RangeError: bad table/,
      ],
    ];
    for (const [name, code, message] of cases) {
      const dir = path.join(scratch, name);
      await mkdir(dir, { recursive: true });
      await writeFile(
        path.join(dir, "filter.json"),
        JSON.stringify({ name, version: "0.1.0", description: "a test filter", abi: 1, engine: "typescript" }),
      );
      await writeFile(path.join(dir, "filter.ts"), code);
      const error = await buildFilter(dir).then(
        () => null,
        (e: unknown) => e,
      );
      assert.ok(error instanceof BuildError, `${name}: expected a BuildError, got ${String(error)}`);
      assert.match(error.message, message, name);
    }
  });

  it("says how to install the engine's toolchain when it is missing", async () => {
    const empty = path.join(scratch, "no-tools");
    await mkdir(empty, { recursive: true });
    await assert.rejects(
      engineWasm({ cacheDir: empty, env: { PATH: empty, HOME: empty } }),
      /cargo \(Rust\) is not installed\. Install it with rustup:\n {2}curl .*sh\.rustup\.rs/,
    );
  });
});
