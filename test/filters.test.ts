// runtimes: node deno bun
// WebAssembly filters in a running proxy, with real HTTP clients and upstreams: the ABI's
// host functions, chain order, per-route attachment, body phases, hot swap, and what a
// broken filter does (and does not) take down. Fixtures are written against the raw ABI
// (test/fixtures/filters/abi.ts), one with plain @extism/as-pdk.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { copyFile, mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startUpstream, type Upstream } from "./support/upstream.ts";
import { startProxy, simpleConfig, type RunningProxy } from "./support/proxy.ts";
import type { ProxyConfigInput } from "../proxy/config/schema.ts";
import { request } from "./support/client.ts";
import { compileAssemblyScript } from "./support/asc.ts";
import { sha256Hex } from "../proxy/filters/module.ts";
import { QUARANTINE_POLICY } from "../proxy/filters/quarantine.ts";
import { HOSTILE, hostileIn, op, type Code } from "./hostile/wasm-modules.ts";

const fixtures = join(dirname(fileURLToPath(import.meta.url)), "fixtures", "filters");
type Built = { path: string; sha256: string; wasm: Uint8Array };
const built: Record<string, Built> = {};
let upstream: Upstream;
let scratch: string;
const cleanups: (() => Promise<void>)[] = [];

// Traps on the first call it gets in a proxy (its counter is shared by the filter's instances
// and survives a trap), and tells the upstream how many calls its instance has had: FailReload's
// retry must succeed, and on a fresh instance. Written out beside a copy of the ABI; a fixed
// folder, so that the compiled module is cached like the fixtures'.
const TRAP_ONCE = `import { counter, set } from "./abi";
let calls = 0;
export function on_request_headers(): i32 {
  calls++;
  if (counter("calls", 1) == 1) unreachable();
  set("x-instance-calls", calls.toString());
  return 0;
}
`;

before(async () => {
  for (const name of ["basic", "body", "no-phase", "foreign-import", "as-pdk"])
    built[name] = await compileAssemblyScript(join(fixtures, `${name}.ts`));
  const generated = join(tmpdir(), "weft-filters-generated");
  await mkdir(generated, { recursive: true });
  await copyFile(join(fixtures, "abi.ts"), join(generated, "abi.ts"));
  await writeFile(join(generated, "trap-once.ts"), TRAP_ONCE);
  built["trap-once"] = await compileAssemblyScript(join(generated, "trap-once.ts"));
  upstream = await startUpstream("app");
  scratch = await mkdtemp(join(tmpdir(), "weft-filters-"));
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
  await upstream.close();
});

const I32_DIV_S = 0x6d;
const I32_REM_S = 0x6f;

type FilterInput = NonNullable<ProxyConfigInput["filters"]>[number];

function filter(name: string, module: Built, extra: Partial<FilterInput> = {}): FilterInput {
  return { name, namespace: "test", module: { path: module.path, sha256: module.sha256 }, ...extra };
}

async function proxyWith(filters: FilterInput[]): Promise<RunningProxy> {
  const proxy = await startProxy(simpleConfig([upstream.port], { filters }));
  cleanups.push(() => proxy.stop());
  return proxy;
}

async function echo(proxy: RunningProxy, path = "/echo", headers: Record<string, string> = {}) {
  const reply = await request(proxy.outbound, { path, headers });
  return {
    reply,
    seen:
      reply.status === 200 && reply.headers["content-type"] === "application/json"
        ? (JSON.parse(reply.body) as { url: string; headers: Record<string, string>; body: string })
        : null,
  };
}

async function configDump(proxy: RunningProxy): Promise<{
  version: string;
  filterStatus: {
    filter: string;
    ready: boolean;
    reason?: string;
    quarantine?: { remainingMs: number; backoffMs: number; reason: string };
  }[];
}> {
  return (await (await fetch(`http://127.0.0.1:${proxy.admin}/config_dump`)).json()) as never;
}

describe("filter host functions", () => {
  it("reads config and attributes, changes request and response headers, counts, and exports metrics", async () => {
    const proxy = await proxyWith([filter("basic", built.basic!, { config: { tag: "blue" } })]);
    const first = await echo(proxy);
    assert.equal(first.reply.status, 200);
    assert.equal(first.seen!.headers["x-filter-tag"], "blue");
    assert.equal(first.seen!.headers["x-filter-chain"], "test/basic");
    assert.equal(first.seen!.headers["x-filter-count"], "1");
    assert.equal(first.reply.headers["x-filter-response"], "test/basic");
    const second = await echo(proxy);
    assert.equal(second.seen!.headers["x-filter-count"], "2", "the shared counter keeps counting across calls");
    const metrics = await (await fetch(`http://127.0.0.1:${proxy.admin}/metrics`)).text();
    assert.match(metrics, /weft_filter_fixture_requests\{filter="test\/basic"\} 2/);
  });

  it("answers locally with the filter's status, headers and body; the upstream never sees it", async () => {
    const proxy = await proxyWith([filter("gate", built.basic!)]);
    const before = upstream.received.length;
    const reply = await request(proxy.outbound, { path: "/deny/me" });
    assert.equal(reply.status, 403);
    assert.equal(reply.headers["x-denied-by"], "test/gate");
    assert.equal(reply.body, "denied by test/gate\n");
    assert.ok(reply.headers["x-request-id"], "a local reply still carries the request id");
    assert.equal(upstream.received.length, before);
  });

  it("rewrites the path before routing, and sets the response status", async () => {
    const proxy = await proxyWith([filter("rewrite", built.basic!)]);
    const { seen } = await echo(proxy, "/rewrite/this");
    assert.equal(seen!.url, "/echo/rewritten");
    const teapot = await request(proxy.outbound, { path: "/echo", headers: { "x-teapot": "1" } });
    assert.equal(teapot.status, 418);
  });

  it("runs a filter built with plain @extism/as-pdk: config_get, var_get/var_set, weft_get, weft_respond", async () => {
    const proxy = await proxyWith([filter("api-key", built["as-pdk"]!, { config: { key: "s3cret" } })]);
    const refused = await request(proxy.outbound, { path: "/echo" });
    assert.equal(refused.status, 401);
    assert.equal(refused.headers["www-authenticate"], "ApiKey");
    const ok1 = await echo(proxy, "/echo", { "x-api-key": "s3cret" });
    const ok2 = await echo(proxy, "/echo", { "x-api-key": "s3cret" });
    assert.equal(ok1.seen!.headers["x-seen"], "1");
    assert.equal(ok2.seen!.headers["x-seen"], "2", "Extism variables persist across calls");
  });
});

describe("filter chain", () => {
  it("orders by phase, then priority (higher first), then namespace/name; responses in reverse", async () => {
    const proxy = await proxyWith([
      filter("d-unset", built.basic!),
      filter("c-stats", built.basic!, { phase: "Stats" }),
      filter("b-authz-low", built.basic!, { phase: "Authz", priority: 1 }),
      filter("a-authz-high", built.basic!, { phase: "Authz", priority: 10 }),
      filter("z-authn", built.basic!, { phase: "Authn" }),
      filter("a-authn", built.basic!, { phase: "Authn" }),
    ]);
    const { reply, seen } = await echo(proxy);
    const order = ["test/a-authn", "test/z-authn", "test/a-authz-high", "test/b-authz-low", "test/c-stats", "test/d-unset"];
    assert.equal(seen!.headers["x-filter-chain"], order.join(", "));
    assert.equal(reply.headers["x-filter-response"], order.slice().reverse().join(", "));
  });

  it("attaches a filter only to the requests its match selects (path prefix, method, direction)", async () => {
    const proxy = await proxyWith([
      filter("api-only", built.basic!, { match: [{ pathPrefixes: ["/echo/api"] }] }),
      filter("posts-only", built.basic!, { match: [{ methods: ["POST"] }] }),
      filter("inbound-only", built.basic!, { match: [{ direction: "Inbound" }] }),
    ]);
    assert.equal((await echo(proxy, "/echo/api/x")).seen!.headers["x-filter-chain"], "test/api-only");
    assert.equal((await echo(proxy, "/echo/other")).seen!.headers["x-filter-chain"], undefined);
    const post = await request(proxy.outbound, { method: "POST", path: "/echo", body: "x" });
    assert.equal((JSON.parse(post.body) as { headers: Record<string, string> }).headers["x-filter-chain"], "test/posts-only");
  });

  it("attaches by the port the request was for: outbound the Service's (the authority's), inbound the app's, never the listener's", async () => {
    const chain = (reply: { status: number; body: string }) => {
      assert.equal(reply.status, 200, reply.body);
      return (JSON.parse(reply.body) as { headers: Record<string, string> }).headers["x-filter-chain"];
    };
    const proxy = await startProxy(
      simpleConfig([upstream.port], {
        listeners: [
          {
            name: "outbound",
            direction: "Outbound",
            address: "127.0.0.1",
            port: 0,
            virtualHosts: [{ name: "all", domains: ["*"], routes: [{ backends: [{ cluster: "app" }] }] }],
          },
          // as the control plane writes an injected pod's: one route, to the app's port
          {
            name: "inbound",
            direction: "Inbound",
            address: "127.0.0.1",
            port: 0,
            virtualHosts: [{ name: "inbound", domains: ["*"], routes: [{ backends: [{ cluster: "inbound-app" }] }] }],
          },
        ],
        clusters: [
          { name: "app", endpoints: [{ address: "127.0.0.1", port: upstream.port }] },
          { name: "inbound-app", endpoints: [{ address: "127.0.0.1", port: upstream.port }] },
        ],
        filters: [
          filter("service-80", built.basic!, { match: [{ ports: [80] }] }),
          filter("service-8080", built.basic!, { match: [{ ports: [8080] }] }),
          filter("app-port", built.basic!, { match: [{ direction: "Inbound", ports: [upstream.port] }] }),
        ],
      }),
    );
    cleanups.push(() => proxy.stop());
    const listeners = await startProxy(
      simpleConfig([upstream.port], {
        filters: [filter("listener-port", built.basic!, { match: [{ ports: [proxy.outbound, proxy.inbound] }] })],
      }),
    );
    cleanups.push(() => listeners.stop());

    // outbound: the port in Host, 80 when it has none
    assert.equal(chain(await request(proxy.outbound, { path: "/echo", host: "orders.shop:8080" })), "test/service-8080");
    assert.equal(chain(await request(proxy.outbound, { path: "/echo", host: "orders.shop" })), "test/service-80");
    assert.equal(chain(await request(proxy.outbound, { path: "/echo", host: "[fd00::1]:8080" })), "test/service-8080");
    // inbound: the app's port, whatever Service port the caller named in Host
    for (const host of ["orders.shop:8080", "orders.shop", `127.0.0.1:${proxy.inbound}`]) {
      assert.equal(chain(await request(proxy.inbound, { path: "/echo", host })), "test/app-port", host);
    }
    // the listener's own port means nothing to match.ports
    assert.equal(chain(await request(listeners.outbound, { path: "/echo", host: "orders.shop:8080" })), undefined);
  });

  it("a local reply stops the chain: later filters do not run", async () => {
    const proxy = await proxyWith([filter("first", built.basic!, { priority: 5 }), filter("second", built.basic!)]);
    const reply = await request(proxy.outbound, { path: "/deny" });
    assert.equal(reply.headers["x-denied-by"], "test/first");
  });
});

describe("body phases", () => {
  it("buffers the request body for on_request_body and the response for on_response_body", async () => {
    const proxy = await proxyWith([filter("shout", built.body!)]);
    const reply = await request(proxy.outbound, { method: "POST", path: "/echo", body: "quiet words", chunked: true });
    assert.equal(reply.status, 200);
    const [json, suffix] = reply.body.split("+filtered by ");
    assert.equal((JSON.parse(json!) as { body: string }).body, "QUIET WORDS");
    assert.equal(suffix, "test/shout");
    assert.equal(reply.headers["content-length"], String(Buffer.byteLength(reply.body)));
  });

  it("refuses a body over limits.bodyBytes with 413, and a body phase can answer locally", async () => {
    const proxy = await proxyWith([filter("shout", built.body!, { limits: { bodyBytes: 16 } })]);
    assert.equal((await request(proxy.outbound, { method: "POST", path: "/echo", body: "x".repeat(17) })).status, 413);
    const refused = await request(proxy.outbound, { method: "POST", path: "/echo", body: "forbidden" });
    assert.equal(refused.status, 400);
    assert.equal(refused.body, "body refused\n");
  });
});

describe("failing filters", () => {
  // Each proxy's filter fails at most 4 times in a way quarantine counts: a 5th within 10 s (a
  // tenth of its calls or more) would quarantine it, and the next request would not get a fresh
  // instance but the quarantine's 500.
  const failClosedCases: [string, RegExp][][] = [
    [
      ["/trap", /^filter test\/fragile failed: the filter trapped: unreachable\n$/],
      ["/fail", /refused by the fixture/],
      ["/loop", /deadline of 20 ms/],
      ["/bomb", /memory/],
      ["/huge", /memory limit/],
    ],
    [
      ["/abort", /asked to abort at .*basic\.ts/],
      ["/bad-header", /"transfer-encoding" is managed by the proxy/],
      ["/bad-value", /the value of "x-user" holds a control character or one past U\+00FF/],
      ["/bad-path", /":path" must start with "\/" and hold only visible ASCII/],
    ],
  ];
  for (const [group, cases] of failClosedCases.entries()) {
    it(`FailClose answers 500 naming the filter and the fault, for ${cases.map(([path]) => path.slice(1)).join(", ")}`, async () => {
      const proxy = await proxyWith([filter("fragile", built.basic!, { limits: { callTimeoutMs: 20, memoryMiB: 4 } })]);
      for (const [path, message] of cases) {
        const reply = await request(proxy.outbound, { path });
        assert.equal(reply.status, 500, path);
        assert.match(reply.body, message, path);
        // The proxy keeps serving, with a fresh instance of the same filter.
        const after = await echo(proxy);
        assert.equal(after.reply.status, 200, `after ${path}`);
      }
      if (group > 0) return;
      const metrics = await (await fetch(`http://127.0.0.1:${proxy.admin}/metrics`)).text();
      assert.match(metrics, /weft_filter_failures_total\{filter="test\/fragile",phase="on_request_headers",kind="deadline"\} 1/);
      assert.match(metrics, /weft_filter_failures_total\{filter="test\/fragile",phase="on_request_headers",kind="memory"\} 2/);
    });
  }

  it("a trap says the same on Node, Deno and Bun: the engine's words become the WebAssembly spec's, without JavaScriptCore's (evaluating ...)", async () => {
    const traps: [string, Code, string][] = [
      ["unreachable", op.unreachable, "the filter trapped: unreachable"],
      ["load", [...op.i32(-1), ...op.i32Load, ...op.drop], "the filter trapped: out of bounds memory access"],
      ["div", [...op.i32(1), ...op.i32(0), I32_DIV_S, ...op.drop], "the filter trapped: integer divide by zero"],
      ["rem", [...op.i32(1), ...op.i32(0), I32_REM_S, ...op.drop], "the filter trapped: integer divide by zero"],
      ["overflow", [...op.i32(-0x80000000), ...op.i32(-1), I32_DIV_S, ...op.drop], "the filter trapped: integer overflow"],
      ["recursion", op.call("recurse"), "the filter exhausted the call stack"],
    ];
    const filters: FilterInput[] = [];
    for (const [name, code] of traps) {
      const bytes = hostileIn("on_request_headers", code, { funcs: [{ name: "recurse", body: op.call("recurse") }] });
      const path = join(scratch, `trap-${name}.wasm`);
      await writeFile(path, bytes);
      filters.push(filter(name, { path, sha256: sha256Hex(bytes), wasm: bytes }, { match: [{ pathPrefixes: [`/${name}`] }] }));
    }
    const proxy = await proxyWith(filters);
    for (const [name, , message] of traps) {
      const reply = await request(proxy.outbound, { path: `/${name}`, headers: { [HOSTILE]: "1" } });
      assert.equal(reply.status, 500, name);
      assert.equal(reply.headers["x-weft-error"], `filter test/${name} failed: ${message}`, name);
    }
  });

  // Filter calls run on the proxy's one thread: the requests behind a looping call wait for its
  // deadline (a filter that keeps looping is quarantined, below, so that they need not for long).
  it("an endless loop is cut off at its deadline with a 500, and the requests queued behind it are served after it", async () => {
    const proxy = await proxyWith([filter("looper", built.basic!, { limits: { callTimeoutMs: 200 } })]);
    const [loop, ...others] = await Promise.all([
      request(proxy.outbound, { path: "/loop" }),
      ...Array.from({ length: 5 }, () => echo(proxy)),
    ]);
    assert.equal(loop.status, 500);
    assert.match(String(loop.headers["x-weft-error"]), /200 ms|deadline/);
    for (const o of others) assert.equal(o.reply.status, 200);
  });

  it("FailOpen skips the failed filter and drops its partial changes", async () => {
    const proxy = await proxyWith([filter("optional", built.basic!, { failStrategy: "FailOpen" })]);
    const reply = await request(proxy.outbound, { path: "/trap", headers: { "x-request-id": "fail-open" } });
    assert.equal(reply.status, 200);
    const seen = upstream.received.find((r) => r.headers["x-request-id"] === "fail-open")!;
    assert.equal(seen.headers["x-filter-tag"], undefined);
  });

  it("FailReload calls a fresh instance once more: a filter that trapped once serves the request from a new instance", async () => {
    const proxy = await proxyWith([filter("once", built["trap-once"]!, { failStrategy: "FailReload" })]);
    const first = await echo(proxy);
    assert.equal(first.reply.status, 200, `the call after the trap was not made, or failed: ${first.reply.body}`);
    assert.equal(first.seen!.headers["x-instance-calls"], "1", "the second call ran on a fresh instance, not on the one that trapped");
    const metrics = await (await fetch(`http://127.0.0.1:${proxy.admin}/metrics`)).text();
    assert.doesNotMatch(metrics, /weft_filter_failures_total\{filter="test\/once"/, "a retry that succeeds is no failure");
    const second = await echo(proxy);
    assert.equal(second.seen!.headers["x-instance-calls"], "2", "the fresh instance is kept");
  });

  it("FailReload calls a fresh instance once more, then fails closed", async () => {
    const proxy = await proxyWith([filter("reloading", built.basic!, { failStrategy: "FailReload" })]);
    const reply = await request(proxy.outbound, { path: "/trap" });
    assert.equal(reply.status, 500);
    const metrics = await (await fetch(`http://127.0.0.1:${proxy.admin}/metrics`)).text();
    assert.match(metrics, /weft_filter_failures_total\{filter="test\/reloading",phase="on_request_headers",kind="trap"\} 1/);
    assert.equal((await echo(proxy)).reply.status, 200);
  });
});

describe("quarantine", () => {
  const { failures: TRIP, firstBackoffMs } = QUARANTINE_POLICY;
  const BURST = 30;

  async function quarantineOf(proxy: RunningProxy, id: string) {
    return (await configDump(proxy)).filterStatus.find((s) => s.filter === id)?.quarantine;
  }

  async function metricValue(proxy: RunningProxy, line: string): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${proxy.admin}/metrics`)).text();
    const found = text.split("\n").find((l) => l.startsWith(`${line} `));
    return found ? Number(found.slice(line.length + 1)) : 0;
  }

  for (const failStrategy of ["FailClose", "FailOpen"] as const) {
    it(`${failStrategy}: a filter that traps on a burst of requests is quarantined, answered by its failStrategy without running, and runs again after the back-off`, async () => {
      const proxy = await proxyWith([filter("storm", built.basic!, { failStrategy })]);
      const id = "test/storm";
      const sent = upstream.received.length;
      const replies = await Promise.all(Array.from({ length: BURST }, (_, i) => request(proxy.outbound, { path: `/trap/${i}` })));

      // Calls are made one at a time: the first TRIP trap, the rest are answered without the filter
      // (unless the machine is so slow that the 1 s back-off ends within the burst: then the call
      // after it traps again, and the counts below still hold).
      const failures = (kind: string) =>
        metricValue(proxy, `weft_filter_failures_total{filter="${id}",phase="on_request_headers",kind="${kind}"}`);
      const trapped = await failures("trap");
      const quarantined = await failures("quarantined");
      assert.ok(trapped >= TRIP && quarantined > 0, `${trapped} calls trapped and ${quarantined} were quarantined`);
      assert.equal(trapped + quarantined, BURST, "every request either ran the filter or was answered by the quarantine");
      const quarantines = await metricValue(proxy, `weft_filter_quarantines_total{filter="${id}"}`);
      assert.ok(quarantines >= 1 && quarantines <= trapped - TRIP + 1, `${quarantines} quarantines`);
      if (failStrategy === "FailClose") {
        const said = (re: RegExp) => replies.filter((r) => r.status === 500 && re.test(String(r.headers["x-weft-error"]))).length;
        assert.equal(said(/^filter test\/storm failed: the filter trapped: unreachable$/), trapped);
        assert.equal(
          said(
            /^filter test\/storm is quarantined for \d+ ms \(\d+ ms left\): it failed (\d+ times (?:in \d+ calls )?within (?:1|10) s|again within 10 s of a quarantine of \d+ ms) \(the last: the filter trapped: unreachable\); it is not run until then$/,
          ),
          quarantined,
        );
        assert.equal(upstream.received.length, sent, "no request of the burst reached the upstream");
      } else {
        for (const r of replies) assert.equal(r.status, 200, "FailOpen: the request goes on without the filter");
      }

      // Still quarantined: a request the filter would serve is answered without it.
      const state = await quarantineOf(proxy, id);
      assert.ok(state, "/config_dump shows the quarantine");
      assert.match(state.reason, /the last: the filter trapped: unreachable/);
      assert.ok(state.remainingMs > 0 && state.remainingMs <= state.backoffMs && state.backoffMs >= firstBackoffMs, JSON.stringify(state));
      assert.equal(await metricValue(proxy, `weft_filter_quarantined{filter="${id}"}`), 1);
      const held = await echo(proxy);
      assert.equal(held.reply.status, failStrategy === "FailClose" ? 500 : 200);
      if (held.seen) assert.equal(held.seen.headers["x-filter-chain"], undefined, "the quarantined filter did not run");
      assert.equal(await failures("quarantined"), quarantined + 1);

      // The back-off ends with or without requests; the next request runs the filter, and its success ends the quarantine.
      for (let waited = 0; (await quarantineOf(proxy, id)) !== undefined; waited += 50) {
        assert.ok(waited < 120_000, "the quarantine never ended");
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(await metricValue(proxy, `weft_filter_quarantined{filter="${id}"}`), 0);
      const ran = await echo(proxy);
      assert.equal(ran.reply.status, 200);
      assert.equal(ran.seen!.headers["x-filter-chain"], id, "the filter runs again after the back-off");
      assert.equal(await failures("trap"), trapped);
    });
  }
});

describe("loading filters", () => {
  it("a filter that cannot load is reported and gets its failStrategy; traffic it is not attached to is served", async () => {
    const garbage = join(scratch, "garbage.wasm");
    await writeFile(garbage, "this is not wasm");
    const { createHash } = await import("node:crypto");
    const garbageSha = createHash("sha256").update("this is not wasm").digest("hex");
    const proxy = await proxyWith([
      filter("wrong-digest", built.basic!, {
        module: { path: built.basic!.path, sha256: "0".repeat(64) },
        match: [{ pathPrefixes: ["/a"] }],
      }),
      filter("not-wasm", built.basic!, { module: { path: garbage, sha256: garbageSha }, match: [{ pathPrefixes: ["/b"] }] }),
      filter("no-phase", built["no-phase"]!, { match: [{ pathPrefixes: ["/c"] }] }),
      filter("foreign", built["foreign-import"]!, { match: [{ pathPrefixes: ["/d"] }] }),
      filter("missing", built.basic!, {
        module: { path: join(scratch, "nope.wasm"), sha256: built.basic!.sha256 },
        match: [{ pathPrefixes: ["/e"] }],
        failStrategy: "FailOpen",
      }),
    ]);
    const status = (await configDump(proxy)).filterStatus;
    const reason = (name: string) => status.find((s) => s.filter === `test/${name}`)!.reason ?? "";
    assert.match(reason("wrong-digest"), /sha256 is [0-9a-f]{64} but the configuration expects 0{64}; it was not loaded/);
    assert.match(reason("not-wasm"), /not a WebAssembly module/i);
    assert.match(reason("no-phase"), /exports none of the phase functions/);
    assert.match(reason("foreign"), /imports function "wasi_snapshot_preview1" "fd_write", which weft does not provide/);
    assert.match(reason("missing"), /cannot read the module/);
    for (const path of ["/a", "/b", "/c", "/d"]) {
      const reply = await request(proxy.outbound, { path });
      assert.equal(reply.status, 500, path);
      assert.match(reply.body, /failed:/);
    }
    assert.equal((await request(proxy.outbound, { path: "/e" })).status, 200, "FailOpen: served without the filter");
    assert.equal((await echo(proxy, "/echo")).reply.status, 200, "unattached traffic is served");
  });

  it("hot-swaps a filter version without dropping requests in flight", async () => {
    const proxy = await proxyWith([filter("swap", built.basic!, { config: { tag: "v1" } })]);
    const inFlight = request(proxy.outbound, { path: "/delay/400" });
    await new Promise((r) => setTimeout(r, 100));
    const next = simpleConfig([upstream.port], { version: "test-2", filters: [filter("swap", built.basic!, { config: { tag: "v2" } })] });
    const put = await fetch(`http://127.0.0.1:${proxy.admin}/config`, { method: "PUT", body: JSON.stringify(next) });
    assert.equal(put.status, 200, await put.text());
    assert.equal((await inFlight).status, 200);
    const { seen } = await echo(proxy);
    assert.equal(seen!.headers["x-filter-tag"], "v2");
    assert.equal(seen!.headers["x-filter-count"], "2", "state carries over to the new version");
  });
});
