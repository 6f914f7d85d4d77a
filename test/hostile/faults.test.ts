// runtimes: node deno bun
// Faults under load on the data plane. While an open-loop load (test/support/open-loop.ts)
// runs through real sidecars on loopback, one fault is injected — a filter swapped for
// another module, a storm of configuration pushes, certificates and then the CA rotated on
// both sides of an mTLS hop, an upstream endpoint killed, a filter trapping on a share of the
// requests — and every request is counted. Where the design says none may fail, the count
// must be zero; every case ends by checking that the sidecar still answers /ready and a fresh
// request. The rows (requests sent and failed per fault) go to docs/reliability.md via
// record.ts.
import { before, afterEach } from "node:test";
import assert from "node:assert/strict";
import tls from "node:tls";
import path from "node:path";
import { startUpstream, type Upstream } from "../support/upstream.ts";
import { startProxy, simpleConfig, type RunningProxy } from "../support/proxy.ts";
import { request } from "../support/client.ts";
import { openLoop, expectOk, assertLoad, type LoadReply, type LoadResult, type OpenLoopOptions } from "../support/open-loop.ts";
import { createCa, issueWorkload, type TestCa, type WorkloadCertificate } from "../support/pki.ts";
import { compileAssemblyScript } from "../support/asc.ts";
import { builtFilter } from "../../sdk/build/cache.ts";
import type { ProxyConfigInput } from "../../proxy/config/schema.ts";
import { Recorder } from "./record.ts";

// Bun gives a hook 5 s unless told otherwise, less than compiling the fixture in before() may
// take; node:test and Deno have no default deadline (Recorder.case gives each case its own).
// The specifier is a variable so that the type checker does not look for Bun's types.
if ("Bun" in globalThis) {
  const runner = "bun:test";
  const { setDefaultTimeout } = (await import(runner)) as { setDefaultTimeout(ms: number): void };
  setDefaultTimeout(60_000);
}

/** Each fault runs under COUNT requests at RATE per second: 4 s. */
const RATE = 250;
const COUNT = 1000;
const MAX_IN_FLIGHT = 128;

type FilterInput = NonNullable<ProxyConfigInput["filters"]>[number];
type Identity = NonNullable<ProxyConfigInput["identity"]>;
type Module = { path: string; sha256: string };

const rec = new Recorder("faults");
const cleanups: (() => Promise<void>)[] = [];
const modules = {} as { headerRewrite: Module; basic: Module };

before(async () => {
  const headerRewrite = await builtFilter("header-rewrite");
  const basic = await compileAssemblyScript(path.resolve(import.meta.dirname ?? ".", "..", "fixtures", "filters", "basic.ts"));
  modules.headerRewrite = { path: headerRewrite.path, sha256: headerRewrite.sha256 };
  modules.basic = { path: basic.path, sha256: basic.sha256 };
});
// Each case stops what it started, so that no case runs beside the last one's sidecars.
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function upstream(name: string): Promise<Upstream> {
  const u = await startUpstream(name);
  cleanups.push(() => u.close());
  return u;
}

async function sidecar(config: ProxyConfigInput): Promise<RunningProxy> {
  const proxy = await startProxy(config);
  cleanups.push(() => proxy.stop());
  return proxy;
}

/** Pushes a configuration the way the control plane does: PUT :15000/config. */
async function push(proxy: RunningProxy, config: ProxyConfigInput): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${proxy.admin}/config`, { method: "PUT", body: JSON.stringify(config) });
  const body = await res.text();
  assert.equal(res.status, 200, `push of ${config.version}: ${body}`);
}

/** The sum of the series of `name` that carry all of `labels`. */
async function metric(proxy: RunningProxy, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${proxy.admin}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) || !Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}

async function assertReady(proxy: RunningProxy): Promise<void> {
  const ready = await fetch(`http://127.0.0.1:${proxy.admin}/ready`);
  assert.equal(ready.status, 200, `/ready after the fault: ${await ready.text()}`);
}

/** No proxy crash: the sidecar is ready, and a fresh request on a new connection is served. */
async function assertServing(proxy: RunningProxy, host?: string): Promise<void> {
  await assertReady(proxy);
  const reply = await request(proxy.outbound, { path: "/", ...(host ? { host } : {}) });
  assert.equal(reply.status, 200, `a fresh request after the fault: ${reply.status} ${reply.body}`);
}

/** The load every fault runs under. */
function underLoad(options: Omit<OpenLoopOptions, "rate" | "count" | "maxInFlight">) {
  return openLoop({ rate: RATE, count: COUNT, maxInFlight: MAX_IN_FLIGHT, ...options });
}

/**
 * Dropped requests a case may have (LoadResult.dropped: due while MAX_IN_FLIGHT were in flight,
 * so never sent). A request is dropped only when answers run about half a second (128 requests
 * at 250 per second) behind. In the last full run (docs/reliability.md) no case dropped any on
 * any runtime but the filter failing under load on Bun, which drops none since a filter that
 * keeps failing is quarantined. 100, a tenth of the load, lets a busy machine stall the process
 * for a moment (about 0.9 s behind at most), and fails a fault that keeps the sidecar
 * from answering for longer, or a case that sent too little of its load to show what it claims.
 */
const MAX_DROPPED = 100;

/** What a row reports: the report adds these up per fault. */
function counts(result: LoadResult, extra: Record<string, number> = {}): Record<string, number> {
  return { "requests sent": result.sent, "requests failed": result.failed, "requests dropped": result.dropped, ...extra };
}

/** The request headers as the upstream's /echo saw them, after the filters. */
function echoedHeaders(reply: LoadReply): Record<string, string> {
  return (JSON.parse(reply.body) as { headers: Record<string, string> }).headers;
}

rec.case("fault", "filter hot swap", "a filter swapped 8 times between two modules and configs fails no request", async () => {
  const app = await upstream("app");
  // Even versions: the header-rewrite plugin (built with the SDK), tagging the request and
  // the response with the version; odd: the raw-ABI fixture, tagging the request with the
  // version and the response with the filter's name.
  const version = (v: number): FilterInput => {
    const tag = [{ name: "x-filter-tag", value: `v${v}` }];
    return v % 2 === 0
      ? { name: "swap", namespace: "test", module: modules.headerRewrite, config: { request: { set: tag }, response: { set: tag } } }
      : { name: "swap", namespace: "test", module: modules.basic, config: { tag: `v${v}` } };
  };
  const SWAPS = 8;
  const config = (v: number) => simpleConfig([app.port], { version: `swap-${v}`, filters: [version(v)] });
  const proxy = await sidecar(config(0));
  const served = new Map<string, number>();
  // Odd requests wait 100 ms upstream, so that many are in flight across a swap and run their
  // response phase on the version they started with, after another has replaced it.
  const load = underLoad({
    port: proxy.outbound,
    request: (i) => ({ path: i % 2 === 0 ? "/echo" : "/delay/100" }),
    check: (reply, i) => {
      const wrong = expectOk(reply);
      if (wrong) return wrong;
      const responseTag = reply.headers["x-filter-tag"];
      if (!responseTag && reply.headers["x-filter-response"] !== "test/swap") return "the response went back without the filter";
      if (i % 2 === 1) return undefined;
      const tag = echoedHeaders(reply)["x-filter-tag"];
      if (!tag) return "the request went through without the filter";
      if (responseTag && responseTag !== tag) return `the request was tagged ${tag} and its response ${String(responseTag)}`;
      served.set(tag, (served.get(tag) ?? 0) + 1);
      return undefined;
    },
  });
  for (let v = 1; v <= SWAPS; v++) {
    await load.reached((v * COUNT) / (SWAPS + 1));
    await push(proxy, config(v));
  }
  const result = await load.done;
  assertLoad(result, { maxFailed: 0, maxDropped: MAX_DROPPED });
  const tags = Array.from({ length: SWAPS + 1 }, (_, v) => `v${v}`);
  assert.deepEqual(
    [...served.keys()].sort(),
    tags,
    `every version served requests while it was in force: ${JSON.stringify(Object.fromEntries(served))}`,
  );
  const last = await request(proxy.outbound, { path: "/echo" });
  assert.equal(JSON.parse(last.body).headers["x-filter-tag"], `v${SWAPS}`, "new requests get the last version");
  await assertServing(proxy);
  return counts(result, { "configuration versions": SWAPS });
});

rec.case("fault", "configuration push storm", "60 configuration versions pushed under load fail no request", async () => {
  const [a, b, c] = [await upstream("a"), await upstream("b"), await upstream("c")];
  const local = (u: Upstream, weight = 1) => ({ address: "127.0.0.1", port: u.port, weight });
  // Each version flips the split between two clusters, swaps one endpoint of the first
  // (b leaves while c comes, then back), changes an endpoint weight, and replaces a virtual
  // host and a cluster that the load never uses.
  const config = (v: number): ProxyConfigInput => {
    const odd = v % 2 === 1;
    return {
      version: `storm-${v}`,
      node: { workload: "client", namespace: "test" },
      listeners: [
        {
          name: "outbound",
          direction: "Outbound",
          address: "127.0.0.1",
          port: 0,
          virtualHosts: [
            {
              name: "all",
              domains: ["*"],
              routes: [
                {
                  backends: [
                    { cluster: "primary", weight: odd ? 90 : 10 },
                    { cluster: "secondary", weight: odd ? 10 : 90 },
                  ],
                },
              ],
            },
            { name: `extra-${v}`, domains: [`extra-${v}.test`], routes: [{ backends: [{ cluster: `spare-${v}` }] }] },
          ],
        },
      ],
      clusters: [
        { name: "primary", endpoints: [local(a, 1 + (v % 3)), local(odd ? b : c)] },
        { name: "secondary", endpoints: [local(c)] },
        { name: `spare-${v}`, endpoints: [local(a)] },
      ],
    };
  };
  const VERSIONS = 60;
  const proxy = await sidecar(config(0));
  const load = underLoad({ port: proxy.outbound });
  for (let v = 1; v <= VERSIONS; v++) {
    await load.reached((v * COUNT) / (VERSIONS + 1));
    await push(proxy, config(v));
  }
  const result = await load.done;
  assertLoad(result, { maxFailed: 0, maxDropped: MAX_DROPPED });
  const dump = (await (await fetch(`http://127.0.0.1:${proxy.admin}/config_dump`)).json()) as { version: string };
  assert.equal(dump.version, `storm-${VERSIONS}`);
  for (const u of [a, b, c]) assert.ok(u.received.length > 0, `${u.name} got no request: traffic did not follow the versions`);
  await assertServing(proxy);
  return counts(result, { "configuration versions": VERSIONS });
});

const CLIENT_ID = "spiffe://cluster.local/ns/shop/sa/frontend";
const SERVER_ID = "spiffe://cluster.local/ns/shop/sa/catalog";

function identity(cert: WorkloadCertificate, ...trusted: TestCa[]): Identity {
  return {
    certificateChain: cert.certificateChain,
    privateKey: cert.privateKey,
    trustBundle: trusted.map((ca) => ca.certificate).join(""),
  };
}

/**
 * An mTLS connection to `port` presenting `cert`: the certificate the server presented, and
 * what it answered to a GET (nothing when it refused the client certificate).
 */
function mtlsGet(port: number, cert: WorkloadCertificate, trusted: TestCa): Promise<{ served: Uint8Array | null; answer: string }> {
  return new Promise((resolve) => {
    let served: Uint8Array | null = null;
    let answer = "";
    const socket = tls.connect(
      {
        host: "127.0.0.1",
        port,
        cert: cert.certificateChain,
        key: cert.privateKey,
        ca: trusted.certificate,
        checkServerIdentity: () => undefined,
      },
      () => {
        served = new Uint8Array(socket.getPeerCertificate(true).raw);
        socket.write("GET / HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n");
      },
    );
    socket.on("data", (d) => (answer += d.toString("latin1")));
    // A refused certificate shows as an error on some runtimes and as a plain close on others.
    socket.on("error", () => socket.destroy());
    socket.on("close", () => resolve({ served, answer }));
  });
}

rec.case(
  "fault",
  "certificate rotation",
  "leaf certificates and then the CA rotated on both sides of an mTLS hop fail no request",
  async () => {
    const app = await upstream("catalog-app");
    const [oldCa, newCa] = [await createCa({ commonName: "old mesh CA" }), await createCa({ commonName: "new mesh CA" })];
    const issue = (ca: TestCa, spiffeId: string) => issueWorkload(ca, { spiffeId });
    const server = [
      await issue(oldCa, SERVER_ID),
      await issue(oldCa, SERVER_ID),
      await issue(newCa, SERVER_ID),
      await issue(newCa, SERVER_ID),
    ];
    const client = [
      await issue(oldCa, CLIENT_ID),
      await issue(oldCa, CLIENT_ID),
      await issue(newCa, CLIENT_ID),
      await issue(newCa, CLIENT_ID),
    ];
    const serverConfig = (version: string, id: Identity): ProxyConfigInput => ({
      version,
      node: { workload: "catalog", namespace: "shop", serviceAccount: "catalog", service: "catalog.shop.svc.cluster.local" },
      identity: id,
      listeners: [
        {
          name: "inbound",
          direction: "Inbound",
          address: "127.0.0.1",
          port: 0,
          tls: "STRICT",
          virtualHosts: [{ name: "app", domains: ["*"], routes: [{ backends: [{ cluster: "local-app" }] }] }],
        },
      ],
      clusters: [{ name: "local-app", endpoints: [{ address: "127.0.0.1", port: app.port }] }],
    });
    const serverSide = await sidecar(serverConfig("server-0", identity(server[0], oldCa)));
    // Two clusters to the same server: one keeps its connections across the rotations, the
    // other keeps none, so an eighth of the requests need a new handshake with whatever
    // certificates are in force at that moment.
    const clientConfig = (version: string, id: Identity): ProxyConfigInput => {
      const catalog = {
        service: "catalog.shop.svc.cluster.local",
        namespace: "shop",
        endpoints: [{ address: "127.0.0.1", port: serverSide.inbound }],
        tls: { identities: [SERVER_ID] },
      };
      return {
        version,
        node: { workload: "frontend", namespace: "shop", serviceAccount: "frontend" },
        identity: id,
        listeners: [
          {
            name: "outbound",
            direction: "Outbound",
            address: "127.0.0.1",
            port: 0,
            virtualHosts: [
              {
                name: "catalog",
                domains: ["catalog"],
                routes: [
                  { match: { path: { type: "PathPrefix", value: "/fresh" } }, backends: [{ cluster: "catalog-fresh" }] },
                  { backends: [{ cluster: "catalog" }] },
                ],
              },
            ],
          },
        ],
        clusters: [
          { name: "catalog", ...catalog },
          { name: "catalog-fresh", ...catalog, maxIdleConnectionsPerEndpoint: 0 },
        ],
      };
    };
    const clientSide = await sidecar(clientConfig("client-0", identity(client[0], oldCa)));
    // Renewal, then a CA rotation in the order that never leaves a peer distrusted: both sides
    // trust both CAs, then take certificates from the new one, then drop the old one.
    const rotations: [RunningProxy, (version: string, id: Identity) => ProxyConfigInput, Identity][] = [
      [serverSide, serverConfig, identity(server[1], oldCa)],
      [clientSide, clientConfig, identity(client[1], oldCa)],
      [serverSide, serverConfig, identity(server[1], oldCa, newCa)],
      [clientSide, clientConfig, identity(client[1], oldCa, newCa)],
      [serverSide, serverConfig, identity(server[2], oldCa, newCa)],
      [clientSide, clientConfig, identity(client[2], oldCa, newCa)],
      [serverSide, serverConfig, identity(server[2], newCa)],
      [clientSide, clientConfig, identity(client[2], newCa)],
      [serverSide, serverConfig, identity(server[3], newCa)],
      [clientSide, clientConfig, identity(client[3], newCa)],
    ];
    const handshakesBefore = await metric(serverSide, "istio_tcp_connections_opened_total", { reporter: "destination" });
    let fresh = 0;
    const load = underLoad({
      port: clientSide.outbound,
      request: (i) => ({ path: i % 8 === 0 ? `/fresh/${i}` : `/pooled/${i}`, host: "catalog" }),
      check: (reply, i) => {
        if (i % 8 === 0) fresh++;
        return expectOk(reply);
      },
    });
    // Each side of a handshake takes its material when the handshake reaches it, so one that
    // spans two steps could meet a pair that never existed: a client that trusts only the old
    // CA with a server already on the new one. As a control plane waits until every proxy has
    // taken a step before the next, a step is applied only once the requests sent before the
    // previous one was in force have finished.
    let beforePrevious = 0;
    for (const [i, [proxy, config, id]] of rotations.entries()) {
      await load.reached(((i + 1) * COUNT) / (rotations.length + 1));
      await load.settled(beforePrevious);
      await push(proxy, config(`rotation-${i + 1}`, id));
      beforePrevious = load.due();
    }
    const result = await load.done;
    assertLoad(result, { maxFailed: 0, maxDropped: MAX_DROPPED });
    const handshakes = (await metric(serverSide, "istio_tcp_connections_opened_total", { reporter: "destination" })) - handshakesBefore;
    assert.ok(handshakes >= fresh, `only ${handshakes} new mTLS connections for ${fresh} requests that each needed one`);
    const now = await mtlsGet(serverSide.inbound, client[3], newCa);
    assert.deepEqual(now.served, new Uint8Array(server[3].der), "new handshakes present the last server certificate");
    assert.match(now.answer, /^HTTP\/1\.1 200 /);
    const retired = await mtlsGet(serverSide.inbound, client[1], newCa);
    assert.doesNotMatch(retired.answer, /^HTTP\/1\.1 200 /, "a certificate from the retired CA is refused");
    await assertReady(serverSide);
    await assertServing(clientSide, "catalog");
    return counts(result, { "certificate rotations": rotations.length, "mTLS handshakes": handshakes });
  },
);

/** What killing an endpoint did, as the client, the upstreams and the proxy's metrics saw it. */
interface Kill {
  result: LoadResult;
  /** Requests the victim had received and not answered when it died: all of them had to go elsewhere. */
  killedInFlight: number;
  /** Attempts the kill broke, as the proxy counted them (a reset on a reused connection is re-sent uncounted). */
  connectErrors: number;
  resets: number;
  /** Attempts beyond the first, over all requests (from the access log). */
  retries: number;
}

/**
 * Kills one of three endpoints a third into the load (closing its listening socket and
 * destroying every connection), checks that it ends up ejected and the proxy still serves.
 */
async function killOneOfThree(cluster: Record<string, unknown>, retry: Record<string, unknown>): Promise<Kill> {
  const ups = [await upstream("u0"), await upstream("u1"), await upstream("u2")];
  const victim = ups[1];
  const config = simpleConfig(
    ups.map((u) => u.port),
    { accessLog: "stdout" },
    { retry },
  );
  Object.assign((config.clusters as Record<string, unknown>[])[0], {
    outlierDetection: { consecutiveConnectFailures: 2, consecutive5xx: 3, baseEjectionMs: 60_000 },
    ...cluster,
  });
  const proxy = await sidecar(config);
  let answeredByVictim = 0;
  // 50 ms at the upstream keeps requests in flight on every endpoint.
  const load = underLoad({
    port: proxy.outbound,
    request: () => ({ path: "/delay/50" }),
    check: (reply) => {
      if (reply.headers["x-upstream"] === victim.name) answeredByVictim++;
      return expectOk(reply);
    },
  });
  await load.reached(COUNT / 3);
  // Killed just after a request arrived, so at least that one is in flight on the victim.
  const arrived = victim.received.length;
  while (victim.received.length === arrived) await new Promise((r) => setTimeout(r, 1));
  await victim.close();
  const result = await load.done;
  const killedInFlight = victim.received.length - answeredByVictim;
  assert.ok(killedInFlight >= 1, "the kill caught requests in flight on the victim");
  const upstreamErrors = (reason: string) => metric(proxy, "weft_upstream_errors_total", { cluster: "app", reason });
  const connectErrors = await upstreamErrors("connect");
  // Ejected: with round robin over three, a third of these would try the dead endpoint.
  for (let i = 0; i < 30; i++) assert.equal((await request(proxy.outbound)).status, 200);
  assert.equal(await upstreamErrors("connect"), connectErrors, "the killed endpoint is ejected: no more connection attempts to it");
  const deadline = Date.now() + 5000;
  while (proxy.accessLog.length < result.sent + 30 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const retries = proxy.accessLog.reduce((n, line) => n + (JSON.parse(line) as { attempts: number }).attempts - 1, 0);
  await assertServing(proxy);
  return { result, killedInFlight, connectErrors, resets: await upstreamErrors("reset"), retries };
}

function killCounts(kill: Kill): Record<string, number> {
  return counts(kill.result, {
    "killed in flight": kill.killedInFlight,
    "connect errors": kill.connectErrors,
    resets: kill.resets,
    retries: kill.retries,
  });
}

rec.case(
  "fault",
  "upstream endpoint killed",
  "one of three endpoints killed mid-load, pooled connections: retries and ejection fail no request",
  async () => {
    // The design's promise: a GET whose attempt was reset or refused is tried again on another
    // endpoint while the retry budget allows. Here the budget's floor covers every request the
    // load may have in flight, so all of them may be retried at once.
    const kill = await killOneOfThree({}, { attempts: 2, retryOn: ["connect-failure", "reset"], minRetryConcurrency: MAX_IN_FLIGHT });
    assertLoad(kill.result, { maxFailed: 0, maxDropped: MAX_DROPPED });
    return killCounts(kill);
  },
);

rec.case(
  "fault",
  "upstream endpoint killed",
  "one of three endpoints killed mid-load, a connection per request, default retry budget: failures within the budget's bound",
  async () => {
    // Without pooling every attempt on the victim is on a new connection, so each reset is a
    // counted retry, and the default budget (20 % of active requests, at least 3 at once)
    // applies. A request fails only when a retry is refused, which takes 3 others broken by
    // the kill already waiting for theirs: failed <= broken attempts - 3. Everything else is served.
    const kill = await killOneOfThree({ maxIdleConnectionsPerEndpoint: 0 }, { attempts: 2, retryOn: ["connect-failure", "reset"] });
    const broken = kill.resets + kill.connectErrors;
    assertLoad(kill.result, { maxFailed: Math.max(0, broken - 3), maxDropped: MAX_DROPPED });
    return killCounts(kill);
  },
);

rec.case(
  "fault",
  "filter failing under load",
  "a FailOpen filter that traps or runs past its deadline on a fifth of the requests fails none",
  async () => {
    const app = await upstream("app");
    const proxy = await sidecar(
      simpleConfig([app.port], {
        filters: [{ name: "fragile", namespace: "test", module: modules.basic, config: { tag: "on" }, failStrategy: "FailOpen" }],
      }),
    );
    // The fixture traps on /trap and loops forever on /loop; everything else it tags. A fifth of
    // the requests failing trips the filter's quarantine again and again (5 failures within 10 s,
    // a tenth of the calls or more: proxy/filters/quarantine.ts): while it holds, FailOpen sends
    // every request on untagged.
    const kind = (i: number): "trap" | "loop" | "echo" => (i % 10 === 0 ? "trap" : i % 10 === 5 ? "loop" : "echo");
    const answered = { trap: 0, loop: 0, echo: 0 };
    let tagged = 0;
    const load = underLoad({
      port: proxy.outbound,
      request: (i) => ({ path: `/${kind(i)}/${i}` }),
      check: (reply, i) => {
        answered[kind(i)]++;
        const wrong = expectOk(reply);
        if (!wrong && kind(i) === "echo" && echoedHeaders(reply)["x-filter-tag"] === "on") tagged++;
        return wrong;
      },
    });
    const result = await load.done;
    // Each trap rebuilds the filter's instance on the thread (~17 ms on Bun): before quarantine,
    // Bun fell behind and dropped 167 to 844 of the 1000 requests. Quarantined, the filter fails
    // about 5 times a second at most, and Bun drops none, as Node (3 runs on 2026-12-07).
    assertLoad(result, { maxFailed: 0, maxDropped: MAX_DROPPED });
    const failing = app.received.filter((r) => !r.url.startsWith("/echo"));
    assert.equal(failing.length, answered.trap + answered.loop);
    assert.deepEqual(
      failing.filter((r) => r.headers["x-filter-tag"] !== undefined),
      [],
      "a failed call's changes are dropped",
    );
    const failures = (k: string) =>
      metric(proxy, "weft_filter_failures_total", { filter: "test/fragile", phase: "on_request_headers", kind: k });
    const [traps, deadlines, quarantined] = [await failures("trap"), await failures("deadline"), await failures("quarantined")];
    assert.ok(traps <= answered.trap && deadlines <= answered.loop, `${traps} traps and ${deadlines} deadlines counted`);
    assert.equal(
      tagged + traps + deadlines + quarantined,
      answered.trap + answered.loop + answered.echo,
      "every request ran the filter (a tagged echo, a counted trap or deadline) or was sent on by its quarantine",
    );
    assert.ok(quarantined > 0 && (await metric(proxy, "weft_filter_quarantines_total", { filter: "test/fragile" })) > 0, "quarantined");
    await assertServing(proxy);
    return counts(result, { "filter faults": answered.trap + answered.loop });
  },
);
