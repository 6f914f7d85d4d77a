// runtimes: node deno bun
// Route matching, weighted splits, header edits, fault injection and mirroring.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startUpstream, type Upstream } from "./support/upstream.ts";
import { startProxy, type RunningProxy } from "./support/proxy.ts";
import { request, rawExchange } from "./support/client.ts";

const cluster = (name: string, port: number) => ({
  name,
  service: `${name}.test.svc.cluster.local`,
  endpoints: [{ address: "127.0.0.1", port }],
});

describe("routing", () => {
  const up: Record<string, Upstream> = {};
  let proxy: RunningProxy;

  before(async () => {
    for (const name of ["exact", "prefix", "regex", "header", "method", "v1", "v2", "fallback", "shadow", "other"])
      up[name] = await startUpstream(name);
    proxy = await startProxy({
      version: "routing-1",
      listeners: [
        {
          name: "outbound",
          direction: "Outbound",
          address: "127.0.0.1",
          port: 0,
          virtualHosts: [
            {
              name: "shop",
              domains: ["shop", "shop.test.svc.cluster.local"],
              routes: [
                { name: "exact", match: { path: { type: "Exact", value: "/exact" } }, backends: [{ cluster: "exact" }] },
                { name: "regex", match: { path: { type: "RegularExpression", value: "/items/[0-9]+" } }, backends: [{ cluster: "regex" }] },
                { name: "header", match: { headers: [{ name: "x-canary", value: "yes" }] }, backends: [{ cluster: "header" }] },
                { name: "method", match: { method: "DELETE" }, backends: [{ cluster: "method" }] },
                {
                  name: "split",
                  match: { path: { type: "PathPrefix", value: "/split" } },
                  backends: [
                    { cluster: "v1", weight: 80 },
                    { cluster: "v2", weight: 20 },
                  ],
                },
                {
                  name: "edits",
                  match: { path: { type: "PathPrefix", value: "/edits" } },
                  backends: [{ cluster: "fallback" }],
                  requestHeaders: { set: [{ name: "x-set", value: "s" }], add: [{ name: "x-add", value: "a" }], remove: ["x-drop"] },
                  responseHeaders: { set: [{ name: "x-served-by", value: "weft" }], remove: ["x-upstream"] },
                },
                {
                  name: "abort",
                  match: { path: { type: "PathPrefix", value: "/abort" } },
                  backends: [{ cluster: "fallback" }],
                  fault: { abort: { percent: 100, status: 418 } },
                },
                {
                  name: "delay",
                  match: { path: { type: "PathPrefix", value: "/delay" } },
                  backends: [{ cluster: "fallback" }],
                  fault: { delay: { percent: 100, ms: 150 } },
                },
                {
                  name: "mirror",
                  match: { path: { type: "PathPrefix", value: "/mirror" } },
                  backends: [{ cluster: "fallback" }],
                  mirror: { cluster: "shadow" },
                },
                { name: "prefix", match: { path: { type: "PathPrefix", value: "/api" } }, backends: [{ cluster: "prefix" }] },
                { name: "rest", backends: [{ cluster: "fallback" }] },
              ],
            },
            { name: "wild", domains: ["*.other.test"], routes: [{ backends: [{ cluster: "other" }] }] },
          ],
        },
      ],
      clusters: Object.entries(up).map(([name, u]) => cluster(name, u.port)),
    });
  });
  after(async () => {
    await proxy.stop();
    for (const u of Object.values(up)) await u.close();
  });

  const via = async (path: string, options: { host?: string; method?: string; headers?: Record<string, string> } = {}) =>
    request(proxy.outbound, { path, host: options.host ?? "shop", method: options.method, headers: options.headers });

  it("matches exact paths, prefixes by whole segments, regular expressions, headers and methods", async () => {
    assert.equal((await via("/exact")).headers["x-upstream"], "exact");
    assert.equal((await via("/exact/more")).headers["x-upstream"], "fallback");
    assert.equal((await via("/api")).headers["x-upstream"], "prefix");
    assert.equal((await via("/api/v1/x?y=1")).headers["x-upstream"], "prefix");
    assert.equal((await via("/apix")).headers["x-upstream"], "fallback");
    assert.equal((await via("/items/42")).headers["x-upstream"], "regex");
    assert.equal((await via("/items/abc")).headers["x-upstream"], "fallback");
    assert.equal((await via("/x", { headers: { "x-canary": "yes" } })).headers["x-upstream"], "header");
    assert.equal((await via("/x", { method: "DELETE" })).headers["x-upstream"], "method");
  });

  it("matches hosts with a port, the full service name and wildcards; 404 with a reason otherwise", async () => {
    assert.equal((await via("/exact", { host: "shop:8080" })).headers["x-upstream"], "exact");
    assert.equal((await via("/exact", { host: "SHOP.test.svc.cluster.local" })).headers["x-upstream"], "exact");
    assert.equal((await via("/", { host: "a.other.test" })).headers["x-upstream"], "other");
    const miss = await via("/", { host: "nowhere" });
    assert.equal(miss.status, 404);
    assert.match(String(miss.headers["x-weft-error"]), /no route for host "nowhere"/);
  });

  it("routes an absolute-form request (explicit HTTP proxy) by the target's authority, not by Host, and sends that authority upstream", async () => {
    const reply = await rawExchange(
      proxy.outbound,
      "GET http://a.other.test:8080/echo HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n",
    );
    assert.match(reply, /^HTTP\/1\.1 200 /);
    assert.match(reply, /\r\nx-upstream: other\r\n/i, "routed by the Host field instead of the target's authority");
    assert.match(reply, /"host":"a\.other\.test:8080"/);
    const byHost = await rawExchange(proxy.outbound, "GET http://shop/exact HTTP/1.1\r\nHost: a.other.test\r\nConnection: close\r\n\r\n");
    assert.match(byHost, /\r\nx-upstream: exact\r\n/i);
  });

  it("splits traffic by weight within statistical bounds", async () => {
    const counts: Record<string, number> = { v1: 0, v2: 0 };
    const n = 1000;
    for (let i = 0; i < n; i++) counts[String((await via("/split")).headers["x-upstream"])]++;
    // Binomial(1000, 0.2): sd ~ 12.6; 5 sd either side of 200.
    assert.ok(counts.v2 > 137 && counts.v2 < 263, `v2 got ${counts.v2} of ${n}`);
    assert.equal(counts.v1 + counts.v2, n);
  });

  it("edits request and response headers", async () => {
    const reply = await via("/edits/echo", { headers: { "x-set": "old", "x-add": "first", "x-drop": "gone" } });
    const headers = up.fallback.received.at(-1)!.headers;
    assert.equal(headers["x-set"], "s");
    assert.equal(headers["x-add"], "first, a");
    assert.equal(headers["x-drop"], undefined);
    assert.equal(reply.headers["x-served-by"], "weft");
    assert.equal(reply.headers["x-upstream"], undefined);
  });

  it("injects aborts and delays", async () => {
    const before = up.fallback.received.length;
    const aborted = await via("/abort");
    assert.equal(aborted.status, 418);
    assert.equal(up.fallback.received.length, before, "an aborted request must not reach the upstream");
    const started = Date.now();
    const delayed = await via("/delay");
    assert.equal(delayed.status, 200);
    assert.ok(Date.now() - started >= 140, "the delay fault was applied");
  });

  it("mirrors requests to a second cluster with a -shadow host and ignores its answer", async () => {
    const reply = await via("/mirror/echo", { method: "POST" });
    assert.equal(reply.headers["x-upstream"], "fallback");
    for (let i = 0; i < 50 && up.shadow.received.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(up.shadow.received.length, 1);
    assert.equal(up.shadow.received[0].headers.host, "shop-shadow");
    assert.equal(up.shadow.received[0].url, "/mirror/echo");
  });
});
