// runtimes: node deno bun
// Load balancing, outlier ejection, timeouts, retries and circuit breaking against real
// upstream servers, some of them slow, failing or gone.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { startUpstream, deadPort, type Upstream } from "./support/upstream.ts";
import { startProxy, simpleConfig, type RunningProxy } from "./support/proxy.ts";
import { request } from "./support/client.ts";

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function upstreams(n: number): Promise<Upstream[]> {
  const list: Upstream[] = [];
  for (let i = 0; i < n; i++) list.push(await startUpstream(`u${i}`));
  cleanups.push(async () => {
    for (const u of list) await u.close();
  });
  return list;
}

async function proxyFor(
  ports: number[],
  cluster: Record<string, unknown> = {},
  route: Record<string, unknown> = {},
): Promise<RunningProxy> {
  const config = simpleConfig(ports, {}, route);
  Object.assign((config.clusters as Record<string, unknown>[])[0], cluster);
  const proxy = await startProxy(config);
  cleanups.push(() => proxy.stop());
  return proxy;
}

function tally(replies: { headers: Record<string, unknown> }[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of replies) counts[String(r.headers["x-upstream"])] = (counts[String(r.headers["x-upstream"])] ?? 0) + 1;
  return counts;
}

describe("load balancing", () => {
  it("round robin spreads requests evenly", async () => {
    const ups = await upstreams(3);
    const proxy = await proxyFor(ups.map((u) => u.port));
    const replies = [];
    for (let i = 0; i < 30; i++) replies.push(await request(proxy.outbound));
    assert.deepEqual(tally(replies), { u0: 10, u1: 10, u2: 10 });
  });

  it("round robin honours endpoint weights", async () => {
    const ups = await upstreams(2);
    const config = simpleConfig([]);
    (config.clusters as Record<string, unknown>[])[0].endpoints = [
      { address: "127.0.0.1", port: ups[0].port, weight: 3 },
      { address: "127.0.0.1", port: ups[1].port, weight: 1 },
    ];
    const proxy = await startProxy(config);
    cleanups.push(() => proxy.stop());
    const replies = [];
    for (let i = 0; i < 40; i++) replies.push(await request(proxy.outbound));
    assert.deepEqual(tally(replies), { u0: 30, u1: 10 });
  });

  it("least-request avoids the endpoint that is busy", async () => {
    const ups = await upstreams(2);
    const proxy = await proxyFor(
      ups.map((u) => u.port),
      { loadBalancer: { policy: "LeastRequest" } },
    );
    // Occupy one endpoint with a slow request, then send fast ones: power-of-two-choices
    // over two endpoints always compares both, so every fast request goes to the idle one.
    const slow = [request(proxy.outbound, { path: "/delay/400" })];
    await new Promise((r) => setTimeout(r, 100));
    const busy = ups.find((u) => u.received.filter((x) => x.url.startsWith("/delay")).length > 0)!;
    const fast = [];
    for (let i = 0; i < 10; i++) fast.push(await request(proxy.outbound));
    const counts = tally(fast);
    assert.equal(counts[busy.name] ?? 0, 0, `fast requests went to the busy endpoint: ${JSON.stringify(counts)}`);
    await Promise.all(slow);
  });

  it("consistent hash sends the same header value to the same endpoint", async () => {
    const ups = await upstreams(4);
    const proxy = await proxyFor(
      ups.map((u) => u.port),
      { loadBalancer: { policy: "ConsistentHash", header: "x-user" } },
    );
    const owners = new Set<string>();
    for (let user = 0; user < 20; user++) {
      const seen = new Set<string>();
      for (let i = 0; i < 5; i++)
        seen.add(String((await request(proxy.outbound, { headers: { "x-user": `user-${user}` } })).headers["x-upstream"]));
      assert.equal(seen.size, 1, `user-${user} went to ${[...seen]}`);
      owners.add([...seen][0]);
    }
    assert.ok(owners.size >= 3, `20 users landed on only ${owners.size} endpoints`);
  });
});

describe("outlier detection", () => {
  it("ejects an endpoint after consecutive 5xx and brings it back later", async () => {
    const ups = await upstreams(2);
    ups[0].failWith = 500;
    const proxy = await proxyFor(
      ups.map((u) => u.port),
      { outlierDetection: { consecutive5xx: 3, baseEjectionMs: 500, maxEjectionPercent: 50 } },
    );
    const statuses = [];
    for (let i = 0; i < 20; i++) statuses.push((await request(proxy.outbound)).status);
    // u0 answers 500 three times (round robin alternates), then is ejected.
    assert.equal(statuses.filter((s) => s === 500).length, 3, `statuses: ${statuses}`);
    assert.deepEqual(statuses.slice(-10), Array(10).fill(200));
    const metrics = await (await fetch(`http://127.0.0.1:${proxy.admin}/metrics`)).text();
    assert.match(metrics, /^weft_outlier_ejections_total\{cluster="app",reason="consecutive_5xx"\} 1$/m);
    ups[0].failWith = null;
    await new Promise((r) => setTimeout(r, 600));
    const after = [];
    for (let i = 0; i < 10; i++) after.push(await request(proxy.outbound));
    assert.ok((tally(after).u0 ?? 0) > 0, "the endpoint came back after its ejection time");
  });

  it("ejects an endpoint that refuses connections", async () => {
    const ups = await upstreams(1);
    const dead = await deadPort();
    const proxy = await proxyFor([ups[0].port, dead], { outlierDetection: { consecutiveConnectFailures: 1, baseEjectionMs: 30000 } });
    const statuses = [];
    for (let i = 0; i < 10; i++) statuses.push((await request(proxy.outbound)).status);
    assert.equal(statuses.filter((s) => s === 503).length, 1, `statuses: ${statuses}`);
    const metrics = await (await fetch(`http://127.0.0.1:${proxy.admin}/metrics`)).text();
    assert.match(metrics, /^weft_outlier_ejections_total\{cluster="app",reason="consecutive_connect_failures"\} 1$/m);
  });
});

describe("timeouts and retries", () => {
  it("answers 504 when the route timeout passes", async () => {
    const ups = await upstreams(1);
    const proxy = await proxyFor([ups[0].port], {}, { timeoutMs: 100 });
    const reply = await request(proxy.outbound, { path: "/delay/1000" });
    assert.equal(reply.status, 504);
    assert.match(String(reply.headers["x-weft-error"]), /route timeout of 100 ms/);
  });

  it("retries a connect failure on another endpoint", async () => {
    const ups = await upstreams(1);
    const dead = await deadPort();
    const proxy = await proxyFor([dead, ups[0].port], {}, { retry: { attempts: 2 } });
    for (let i = 0; i < 6; i++) assert.equal((await request(proxy.outbound)).status, 200);
  });

  it("retries 5xx when asked, and reports exhaustion", async () => {
    const ups = await upstreams(2);
    ups[0].failWith = 503;
    const proxy = await proxyFor(
      ups.map((u) => u.port),
      {},
      { retry: { attempts: 1, retryOn: ["5xx"] } },
    );
    for (let i = 0; i < 6; i++) assert.equal((await request(proxy.outbound)).status, 200);
    ups[1].failWith = 503;
    const reply = await request(proxy.outbound);
    assert.equal(reply.status, 503, "with every endpoint failing the last answer is passed on");
  });

  it("retries a connection reset on another endpoint", async () => {
    const ups = await upstreams(2);
    ups[0].resetAll = true;
    const proxy = await proxyFor(
      ups.map((u) => u.port),
      {},
      { retry: { attempts: 1, retryOn: ["reset"] } },
    );
    for (let i = 0; i < 6; i++) {
      const reply = await request(proxy.outbound);
      assert.equal(reply.status, 200);
      assert.equal(reply.headers["x-upstream"], "u1");
    }
    const without = await proxyFor(ups.map((u) => u.port));
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await request(without.outbound)).status);
    assert.ok(statuses.includes(502), `without a retry policy the reset reaches the client: ${statuses}`);
  });

  it("stops retrying when the retry budget is spent", async () => {
    const ups = await upstreams(2);
    ups[0].failWith = 503;
    // A budget of 0 % with no floor allows no retry at all: the 503s come through.
    const proxy = await proxyFor(
      ups.map((u) => u.port),
      {},
      { retry: { attempts: 1, retryOn: ["5xx"], budgetPercent: 0, minRetryConcurrency: 0 } },
    );
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await request(proxy.outbound)).status);
    assert.equal(statuses.filter((s) => s === 503).length, 3, `statuses: ${statuses}`);
  });

  it("does not retry a POST unless the route allows it", async () => {
    const ups = await upstreams(2);
    ups[0].failWith = 503;
    const strict = await proxyFor(
      ups.map((u) => u.port),
      {},
      { retry: { attempts: 1, retryOn: ["5xx"] } },
    );
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await request(strict.outbound, { method: "POST", body: "x" })).status);
    assert.ok(statuses.includes(503), `POSTs were retried: ${statuses}`);
    const lenient = await proxyFor(
      ups.map((u) => u.port),
      {},
      { retry: { attempts: 1, retryOn: ["5xx"], retryNonIdempotent: true } },
    );
    for (let i = 0; i < 4; i++) {
      const reply = await request(lenient.outbound, { method: "POST", path: "/echo", body: "payload" });
      assert.equal(reply.status, 200);
      assert.equal(JSON.parse(reply.body).body, "payload", "the body was replayed whole");
    }
  });

  it("gives up a slow try after the per-try timeout and retries elsewhere", async () => {
    const ups = await upstreams(2);
    const proxy = await proxyFor(
      ups.map((u) => u.port),
      {},
      { retry: { attempts: 1, perTryTimeoutMs: 100, retryOn: ["gateway-error"] } },
    );
    // /delay/300 is slow on both: the retry also times out, and the answer is 504 after 2 tries.
    const reply = await request(proxy.outbound, { path: "/delay/300" });
    assert.equal(reply.status, 504);
    assert.match(String(reply.headers["x-weft-error"]), /after 2 attempts/);
  });
});

describe("circuit breaking", () => {
  it("answers 503 with a reason when maxRequests is reached", async () => {
    const ups = await upstreams(1);
    const proxy = await proxyFor([ups[0].port], { circuitBreaker: { maxRequests: 2 } });
    const slow = [request(proxy.outbound, { path: "/delay/300" }), request(proxy.outbound, { path: "/delay/300" })];
    await new Promise((r) => setTimeout(r, 50));
    const overflow = await request(proxy.outbound);
    assert.equal(overflow.status, 503);
    assert.match(String(overflow.headers["x-weft-error"]), /circuit breaker: .*maxRequests/);
    for (const r of await Promise.all(slow)) assert.equal(r.status, 200);
  });

  it("queues up to maxPendingRequests when maxConnections is reached", async () => {
    const ups = await upstreams(1);
    const proxy = await proxyFor([ups[0].port], { circuitBreaker: { maxConnections: 1, maxPendingRequests: 1 } });
    const results = await Promise.all([0, 1, 2].map(() => request(proxy.outbound, { path: "/delay/200" })));
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 503], "one in flight, one pending, one refused");
    assert.match(String(results.find((r) => r.status === 503)!.headers["x-weft-error"]), /maxPendingRequests/);
  });
});
