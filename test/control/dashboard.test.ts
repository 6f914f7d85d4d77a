// runtimes: node
// The control plane's dashboard: the Prometheus text reader, the p99 computation and the
// traffic graph's counting rules on their own, then the whole dashboard end to end — two real
// sidecar processes (`weft proxy --config`) talking mTLS, one running a marketplace filter,
// known traffic sent through them, the dashboard mounted on the control plane's API server,
// and what headless Chromium shows checked against that traffic.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { startApiServer, ApiError, type ApiServer } from "../../control/api/server.ts";
import { dashboard, type Dashboard } from "../../control/dashboard/app.ts";
import { graphOf } from "../../control/dashboard/graph.ts";
import type { FilterView, ProxyView } from "../../control/dashboard/model.ts";
import { parseExposition } from "../../control/dashboard/prometheus.ts";
import { histogramQuantile } from "../../control/dashboard/quantile.ts";
import { isTrafficMetric, trafficOf } from "../../control/dashboard/traffic.ts";
import { TrafficWindow } from "../../control/dashboard/window.ts";
import { PushHub } from "../../control/push/hub.ts";
import { createLogger } from "../../shared/log.ts";
import { ISTIO_BUCKETS, ProxyMetrics } from "../../proxy/telemetry/metrics.ts";
import { builtFilter } from "../../sdk/build/cache.ts";
import { request } from "../support/client.ts";
import { createCa, issueWorkload, type TestCa, type WorkloadCertificate } from "../support/pki.ts";
import { deadPort, startUpstream, type Upstream } from "../support/upstream.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..", "..");
const CHROMIUM = "/usr/bin/chromium";
const HOUR = 3600_000;

describe("Prometheus text format", () => {
  it("reads samples with escaped label values, +Inf, NaN and timestamps, and skips comments", () => {
    const text = [
      "# HELP istio_requests_total Requests \\\\ with a \\n in help",
      "# TYPE istio_requests_total counter",
      'istio_requests_total{reporter="source",source_workload="a\\"b",path="C:\\\\x",note="two\\nlines",empty=""} 12',
      "",
      'istio_request_duration_milliseconds_bucket{le="+Inf" , reporter="source"} 3 1700000000000',
      "process_start_time_seconds 1.7e9",
      "odd_value{} NaN",
      "negative -Inf",
      'trailing_comma{a="1",} 4.5',
    ].join("\r\n");
    assert.deepEqual(parseExposition(text), [
      {
        name: "istio_requests_total",
        labels: { reporter: "source", source_workload: 'a"b', path: "C:\\x", note: "two\nlines", empty: "" },
        value: 12,
      },
      { name: "istio_request_duration_milliseconds_bucket", labels: { le: "+Inf", reporter: "source" }, value: 3 },
      { name: "process_start_time_seconds", labels: {}, value: 1.7e9 },
      { name: "odd_value", labels: {}, value: NaN },
      { name: "negative", labels: {}, value: -Infinity },
      { name: "trailing_comma", labels: { a: "1" }, value: 4.5 },
    ]);
  });

  it("skips families it is not asked for without reading their labels", () => {
    const text = 'istio_requests_total{reporter="source"} 1\nnodejs_heap{space="new"} 2\n';
    assert.deepEqual(
      parseExposition(text, isTrafficMetric).map((s) => s.name),
      ["istio_requests_total"],
    );
  });

  it("refuses a malformed line, naming the line and the problem", () => {
    assert.throws(() => parseExposition('ok 1\nbad{a="unclosed} 1\n'), /metrics line 2: the value of label a is not closed/);
    assert.throws(() => parseExposition("x{a=1} 1"), /metrics line 1: label a has no ="value"/);
    assert.throws(() => parseExposition('x{a="1"} twelve'), /metrics line 1: "twelve" is not a number/);
    assert.throws(() => parseExposition('x{a="\\t"} 1'), /unknown escape \\t/);
    assert.throws(() => parseExposition("x"), /expected a value/);
  });

  it("reads the sidecar's own exposition into request counts, 5xx counts and latency buckets", async () => {
    const metrics = new ProxyMetrics(
      { id: "p", workload: "frontend", namespace: "shop", serviceAccount: "frontend", trustDomain: "cluster.local", service: "" },
      { defaultMetrics: false },
    );
    const destination = {
      service: "catalog.shop.svc.cluster.local",
      namespace: "shop",
      workload: "catalog",
      principal: "",
      cluster: "catalog",
    };
    const source = { principal: "", workload: "frontend", namespace: "shop" };
    const record = (status: number, durationMs: number) =>
      metrics.request({
        direction: "outbound",
        startTime: 0,
        durationMs,
        method: "GET",
        authority: "catalog",
        path: "/",
        protocol: "HTTP/1.1",
        status,
        requestBytes: 0,
        responseBytes: 0,
        requestId: "",
        traceparent: "",
        userAgent: "",
        route: "",
        source,
        destination,
        upstreamAddress: "",
        attempts: 1,
        responseFlag: "",
        mtls: false,
      });
    for (let i = 0; i < 7; i++) record(200, 3);
    for (let i = 0; i < 3; i++) record(503, 300);
    const traffic = [...trafficOf(parseExposition(await metrics.metricsText(), isTrafficMetric)).values()];
    assert.equal(traffic.length, 1, "the 200 and 503 series are one caller/callee pair");
    const [t] = traffic;
    assert.equal(t!.key.reporter, "source");
    assert.equal(t!.key.destinationWorkload, "catalog");
    assert.equal(t!.counters.requests, 10);
    assert.equal(t!.counters.errors, 3);
    assert.equal(t!.counters.buckets.get(5), 7);
    assert.equal(t!.counters.buckets.get(500), 10);
    assert.equal(t!.counters.buckets.get(Infinity), 10);
  });
});

describe("histogram quantile", () => {
  const b = (pairs: [number, number][]) => pairs.map(([le, count]) => ({ le, count }));
  const near = (actual: number | null, expected: number) =>
    assert.ok(actual !== null && Math.abs(actual - expected) < 1e-9, `${actual} is ${expected}`);
  it("interpolates within the bucket the rank falls in, as Prometheus does", () => {
    const buckets = b([
      [0.5, 0],
      [1, 0],
      [5, 36],
      [100, 36],
      [250, 40],
      [Infinity, 40],
    ]);
    // rank 0.99 * 40 = 39.6: the 4 observations in (100, 250] hold ranks 36..40.
    near(histogramQuantile(0.99, buckets), 235);
    near(histogramQuantile(0.5, buckets), 1 + 4 * (20 / 36));
  });
  it("starts the lowest bucket at 0, answers the highest finite bound past it, and ignores order", () => {
    assert.equal(
      histogramQuantile(
        0.5,
        b([
          [Infinity, 10],
          [10, 10],
        ]),
      ),
      5,
    );
    assert.equal(
      histogramQuantile(
        0.99,
        b([
          [10, 1],
          [Infinity, 10],
        ]),
      ),
      10,
    );
  });
  it("has no answer without observations or without a +Inf bucket", () => {
    assert.equal(
      histogramQuantile(
        0.99,
        b([
          [10, 0],
          [Infinity, 0],
        ]),
      ),
      null,
    );
    assert.equal(
      histogramQuantile(
        0.99,
        b([
          [10, 4],
          [20, 5],
        ]),
      ),
      null,
    );
  });
  it("evens out counts that dip (deltas of live counters)", () => {
    assert.equal(
      histogramQuantile(
        0.5,
        b([
          [10, 4],
          [20, 3],
          [Infinity, 4],
        ]),
      ),
      5,
    );
  });
});

describe("traffic window and graph", () => {
  const FRONTEND = "spiffe://cluster.local/ns/shop/sa/frontend";
  const series = (reporter: string, source: [string, string, string], status: number, count: number) =>
    `istio_requests_total{reporter="${reporter}",source_workload="${source[0]}",source_workload_namespace="${source[1]}",source_principal="${source[2]}",destination_workload="catalog",destination_workload_namespace="shop",destination_service="catalog.shop.svc.cluster.local",destination_service_name="catalog",destination_service_namespace="shop",response_code="${status}"} ${count}\n`;
  const asSource = (n: number) => series("source", ["frontend", "shop", FRONTEND], 200, n);
  const asDestination = (n: number) => series("destination", ["unknown", "shop", FRONTEND], 200, n);
  /** A proxy's window after these scrapes, one a second. */
  const windowOf = (scrapes: string[], windowMs = 60_000) => {
    const w = new TrafficWindow(windowMs);
    scrapes.forEach((text, i) => w.add(i * 1000, trafficOf(parseExposition(text))));
    return w;
  };
  const graph = (windows: TrafficWindow[], workloadOf = new Map<string, { namespace: string; name: string }>()) =>
    graphOf({ windows: windows.map((w) => w.summary(10_000)), workloadOf, sidecars: [] });

  it("counts the window's increase across a proxy restart, and the total since the restart", () => {
    const [e] = graph([windowOf([asSource(10), asSource(30), asSource(5), asSource(8)])]).edges;
    assert.equal(e!.id, "shop/frontend->shop/catalog");
    assert.equal(e!.requestsTotal, 8);
    assert.equal(e!.requestsPerSecond, (20 + 5 + 3) / 3);
    assert.equal(e!.windowSeconds, 3);
  });

  it("folds the scrapes between the ones it keeps without losing a restart, and drops what is older than the window", () => {
    const scrapes = [asSource(0), asSource(50), asSource(100), asSource(4), asSource(10)];
    // A 60 s window keeps one scrape every 5 s: t=1..3 s are folded into t=4 s.
    assert.deepEqual(
      [windowOf(scrapes).summary(4000)].map((w) => [w.seconds, w.series[0]!.increase.requests]),
      [[4, 100 + 4 + 6]],
    );
    // A 2 s window at t=4 s starts at t=2 s (100): then 4 after the restart, then 6 more.
    assert.deepEqual(
      [windowOf(scrapes, 2000).summary(4000)].map((w) => [w.seconds, w.series[0]!.increase.requests]),
      [[2, 4 + 6]],
    );
  });

  it("takes the first scrape as the baseline, counts a series that appears later from 0, and forgets a proxy not scraped for a window", () => {
    const [grown] = graph([windowOf(["", series("source", ["frontend", "shop", FRONTEND], 503, 4)])]).edges;
    assert.equal(grown!.requestsPerSecond, 4);
    assert.equal(grown!.errorRate, 1);
    const [single] = graph([windowOf([asSource(9)])]).edges;
    assert.equal(single!.requestsTotal, 9);
    assert.equal(single!.requestsPerSecond, null);
    assert.equal(single!.errorRate, null);
    assert.deepEqual(windowOf([asSource(9), asSource(12)], 5000).summary(70_000), { seconds: 0, series: [] });
  });

  it("counts a request between two sidecars once, from the caller, and the callee's view of callers that report nothing", () => {
    const caller = windowOf([asSource(0), asSource(40)]);
    const outside = (n: number) => series("destination", ["unknown", "unknown", "unknown"], 200, n);
    const callee = windowOf([asDestination(0) + outside(0), asDestination(40) + outside(5)]);
    const both = graphOf({
      windows: [caller.summary(1000), callee.summary(1000)],
      workloadOf: new Map(),
      sidecars: [
        { namespace: "shop", name: "frontend" },
        { namespace: "shop", name: "catalog" },
      ],
    });
    assert.deepEqual(
      both.edges.map((e) => [e.id, e.requestsTotal, e.reporters.join()]),
      [
        ["shop/frontend->shop/catalog", 40, "source"],
        ["unknown->shop/catalog", 5, "destination"],
      ],
    );
    assert.deepEqual(
      both.nodes.map((n) => [n.id, n.sidecar]),
      [
        ["shop/catalog", true],
        ["shop/frontend", true],
        ["unknown", false],
      ],
    );
    // The caller's sidecar unreachable: the callee's count stands in, named by the SPIFFE ID.
    const calleeOnly = graph([callee], new Map([[FRONTEND, { namespace: "shop", name: "frontend" }]]));
    assert.deepEqual(
      calleeOnly.edges.map((e) => [e.id, e.requestsTotal, e.reporters.join()]),
      [
        ["shop/frontend->shop/catalog", 40, "destination"],
        ["unknown->shop/catalog", 5, "destination"],
      ],
    );
  });
});

describe("scraping", () => {
  const proxy: ProxyView = {
    namespace: "shop",
    pod: "a",
    workload: "a",
    version: "1",
    acked: "1",
    rejected: null,
    filters: [],
    adminUrl: "http://a.invalid:15000",
  };
  it("scrapes only while the state is asked for, and not after stop()", async () => {
    let scrapes = 0;
    const board = dashboard(
      { proxies: () => [proxy], filters: () => [] },
      {
        scrapeIntervalMs: 20,
        idleAfterMs: 150,
        fetch: async () => {
          scrapes++;
          return new Response('istio_requests_total{reporter="source"} 1\n');
        },
      },
    );
    try {
      const state = await (await board.fetch(new Request("http://x/dashboard/api/state"))).json();
      assert.equal(state.proxies[0].scrape.state, "ok", "the first state waits for a scrape");
      assert.equal(state.proxies[0].adminUrl, undefined, "the page is not told where the proxies' admin APIs are");
      await new Promise((r) => setTimeout(r, 400));
      const idle = scrapes;
      assert.ok(idle >= 2 && idle <= 12, `scraped ${idle} times in the 150 ms it was wanted, at 20 ms intervals`);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(scrapes, idle, "no scrapes once nobody asks");
      await board.fetch(new Request("http://x/dashboard/api/state"));
      board.stop();
      const stopped = scrapes;
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(scrapes, stopped, "no scrapes after stop()");
    } finally {
      board.stop();
    }
  });

  it("shows a proxy whose metrics are not the text format as unreadable, with the reason", async () => {
    const board = dashboard({ proxies: () => [proxy], filters: () => [] }, { fetch: async () => new Response("<html>login</html>\n") });
    try {
      const state = await (await board.fetch(new Request("http://x/dashboard/api/state"))).json();
      assert.equal(state.proxies[0].scrape.state, "unreadable");
      assert.match(state.proxies[0].scrape.error, /GET http:\/\/a\.invalid:15000\/metrics: metrics line 1: no metric name/);
    } finally {
      board.stop();
    }
  });
});

// Counted as a failure (a failed before hook only cancels the tests after it).
it("has Debian's chromium for the browser tests", () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium: apt-get install chromium`);
});

describe("the dashboard in a browser, over real sidecars", { timeout: 120_000 }, () => {
  let scratch: string;
  let app: Upstream;
  let ca: TestCa;
  let api: ApiServer;
  let board: Dashboard;
  let browser: Browser;
  let page: Page;
  const children: ChildProcess[] = [];
  let output = "";
  const ports = { frontendAdmin: 0, frontendOut: 0, catalogAdmin: 0, catalogIn: 0, reviewsAdmin: 0 };
  const certs: Record<string, WorkloadCertificate> = {};
  const notAfter = { frontend: new Date(Date.now() + 23.5 * HOUR), catalog: new Date(Date.now() + 71 * HOUR) };
  let filter: { path: string; sha256: string };
  const versions: Record<string, string> = {};

  const waitFor = async (what: () => Promise<boolean>, message: string, ms = 15_000) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (await what().catch(() => false)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`timed out: ${message}\n--- sidecar output ---\n${output.slice(-4000)}`);
  };

  const sidecar = async (name: string, config: Record<string, unknown>) => {
    const file = path.join(scratch, `${name}.json`);
    await writeFile(file, JSON.stringify(config));
    const child = spawn(process.execPath, ["bin/weft.ts", "proxy", "--config", file], { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
    child.stderr!.on("data", (d) => (output += d));
    children.push(child);
  };

  const identity = (cert: WorkloadCertificate) => ({
    certificateChain: cert.certificateChain,
    privateKey: cert.privateKey,
    trustBundle: ca.certificate,
  });
  const adminUrl = (port: number) => `http://127.0.0.1:${port}`;

  const proxies = (): ProxyView[] => [
    {
      namespace: "shop",
      pod: "frontend-7d9f",
      workload: "frontend",
      version: versions.frontend!,
      acked: versions.frontend!,
      rejected: null,
      filters: [],
      certificate: { spiffeId: "spiffe://cluster.local/ns/shop/sa/frontend", notAfter: notAfter.frontend.toISOString() },
      adminUrl: adminUrl(ports.frontendAdmin),
    },
    {
      namespace: "shop",
      pod: "catalog-5c4b",
      workload: "catalog",
      version: versions.catalog!,
      acked: versions.catalog!,
      rejected: null,
      filters: [{ name: "shop/header-rewrite", sha256: filter.sha256 }],
      certificate: { spiffeId: "spiffe://cluster.local/ns/shop/sa/catalog", notAfter: notAfter.catalog.toISOString() },
      adminUrl: adminUrl(ports.catalogAdmin),
    },
    // Known to the control plane but gone: its metrics cannot be scraped.
    {
      namespace: "shop",
      pod: "reviews-0",
      workload: "reviews",
      version: "r-2",
      acked: "r-1",
      rejected: { version: "r-2", error: "listener inbound: port 15006 is in use" },
      filters: [],
      adminUrl: adminUrl(ports.reviewsAdmin),
    },
  ];
  const filters = (): FilterView[] => [
    {
      namespace: "shop",
      name: "header-rewrite",
      url: "oci://registry.shop.example/filters/header-rewrite:1.0.0",
      sha256: filter.sha256,
      ready: "1/1",
      conditions: [
        { type: "Accepted", status: "True", reason: "Accepted", message: "" },
        { type: "Resolved", status: "True", reason: "Pulled", message: `sha256:${filter.sha256}` },
        { type: "Ready", status: "True", reason: "Loaded", message: "1 of 1 selected proxies run it" },
      ],
    },
    {
      namespace: "shop",
      name: "jwt-auth",
      url: "oci://registry.shop.example/filters/jwt-auth:2.0.0",
      ready: "0/1",
      conditions: [
        { type: "Accepted", status: "True", reason: "Accepted", message: "" },
        {
          type: "Resolved",
          status: "False",
          reason: "DigestMismatch",
          message: 'the registry served sha256:abc, not the expected one <img src=x onerror="document.title=1">',
        },
        { type: "Ready", status: "Unknown", reason: "NotResolved", message: "" },
      ],
    },
  ];

  before(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium: apt-get install chromium`);
    scratch = await mkdtemp(path.join(tmpdir(), "weft-dashboard-"));
    for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await deadPort();
    ca = await createCa();
    certs.frontend = await issueWorkload(ca, { spiffeId: "spiffe://cluster.local/ns/shop/sa/frontend", notAfter: notAfter.frontend });
    certs.catalog = await issueWorkload(ca, { spiffeId: "spiffe://cluster.local/ns/shop/sa/catalog", notAfter: notAfter.catalog });
    filter = await builtFilter("header-rewrite");
    app = await startUpstream("catalog-app");

    await sidecar("catalog", {
      version: "catalog-3",
      node: { workload: "catalog", namespace: "shop", serviceAccount: "catalog", service: "catalog.shop.svc.cluster.local" },
      admin: { address: "127.0.0.1", port: ports.catalogAdmin },
      accessLog: "off",
      identity: identity(certs.catalog),
      listeners: [
        // PERMISSIVE: the sidecar's caller comes over mTLS, an app without a sidecar in plaintext.
        {
          name: "inbound",
          direction: "Inbound",
          address: "127.0.0.1",
          port: ports.catalogIn,
          tls: "PERMISSIVE",
          virtualHosts: [{ name: "app", domains: ["*"], routes: [{ backends: [{ cluster: "local-app" }] }] }],
        },
      ],
      clusters: [{ name: "local-app", endpoints: [{ address: "127.0.0.1", port: app.port }] }],
      filters: [
        {
          name: "header-rewrite",
          namespace: "shop",
          module: { path: filter.path, sha256: filter.sha256 },
          config: { response: { add: [{ name: "x-served-by", value: "catalog" }] } },
          // A generous deadline: a slow first call on a busy machine must not turn into a 5xx here.
          limits: { callTimeoutMs: 1000 },
        },
      ],
    });
    await sidecar("frontend", {
      version: "frontend-7",
      node: { workload: "frontend", namespace: "shop", serviceAccount: "frontend" },
      admin: { address: "127.0.0.1", port: ports.frontendAdmin },
      accessLog: "off",
      identity: identity(certs.frontend),
      listeners: [
        {
          name: "outbound",
          direction: "Outbound",
          address: "127.0.0.1",
          port: ports.frontendOut,
          virtualHosts: [{ name: "catalog", domains: ["catalog"], routes: [{ backends: [{ cluster: "catalog" }] }] }],
        },
      ],
      clusters: [
        {
          name: "catalog",
          service: "catalog.shop.svc.cluster.local",
          namespace: "shop",
          workload: "catalog",
          endpoints: [{ address: "127.0.0.1", port: ports.catalogIn }],
          tls: { identities: ["spiffe://cluster.local/ns/shop/sa/catalog"] },
        },
      ],
    });
    for (const [name, port] of [
      ["frontend", ports.frontendAdmin],
      ["catalog", ports.catalogAdmin],
    ] as const) {
      await waitFor(async () => (await fetch(`${adminUrl(port)}/ready`)).status === 200, `the ${name} sidecar did not become ready`);
      const dump = (await (await fetch(`${adminUrl(port)}/config_dump`)).json()) as { version: string; filterStatus: { ready: boolean }[] };
      assert.ok(
        dump.filterStatus.every((f) => f.ready),
        `every filter of ${name} is loaded: ${JSON.stringify(dump.filterStatus)}`,
      );
      versions[name] = dump.version;
    }

    board = dashboard({ proxies, filters }, { scrapeIntervalMs: 500 });
    const log = createLogger({}, "error");
    api = await startApiServer({
      log,
      hub: new PushHub({ log, compute: () => "no proxies in this test", acknowledged: () => {} }),
      authenticate: async () => {
        throw new ApiError(401, "this test serves only the dashboard");
      },
      podServiceAccount: () => null,
      module: () => undefined,
      routes: { "/dashboard/*": board.fetch },
      address: "127.0.0.1",
      port: 0,
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"], timeout: 30_000 });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.setDefaultTimeout(15_000);
  });

  after(async () => {
    await browser?.close();
    board?.stop();
    await api?.close();
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await app?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  const edge = (id: string) => page.locator(`[data-edge="${id}"]`);
  // One read of everything an edge shows: the page redraws between two separate reads.
  const shown = (id: string) =>
    edge(id).evaluate((el) => {
      const d = (el as SVGGElement).dataset;
      const n = (v: string | undefined) => (v === undefined || v === "" ? null : Number(v));
      return {
        total: n(d.requestsTotal),
        rps: n(d.rps),
        errorRate: n(d.errorRate),
        p99: n(d.p99Ms),
        window: n(d.windowSeconds),
        reporters: d.reporters,
        label: el.querySelector("text")?.textContent,
      };
    });
  // biome-ignore lint/performance/useDomNodeTextContent: Playwright's Locator.innerText(), the text as the page shows it
  const cell = (row: string, field: string) => page.locator(`${row} [data-field="${field}"]`).innerText();

  it("draws who calls whom with the rate, error rate and p99 of the traffic sent, and keeps up without a reload", async () => {
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    // One request before the page opens: its first scrape, the window's baseline, counts it in
    // the total but not in the window.
    const warmUp = await request(ports.frontendOut, { host: "catalog", path: "/" });
    assert.equal(warmUp.status, 200);
    assert.equal(warmUp.headers["x-served-by"], "catalog", "the filter runs on catalog's sidecar");
    await waitFor(
      async () =>
        / 1$/m.test(
          (await (await fetch(`${adminUrl(ports.frontendAdmin)}/metrics`)).text())
            .split("\n")
            .find((l) => l.startsWith("istio_requests_total{")) ?? "",
        ),
      "frontend's sidecar did not count the first request",
    );
    await page.goto(`${api.url}/dashboard/`);
    await page.locator('[data-proxy="shop/reviews-0"][data-scrape="unreachable"]').waitFor();

    // 40 requests from frontend through both sidecars: 26 fast, 10 failing, 4 slow.
    const statuses: number[] = [];
    let slowest = 0;
    const send = async (path: string) => {
      const started = performance.now();
      statuses.push((await request(ports.frontendOut, { host: "catalog", path })).status);
      slowest = Math.max(slowest, performance.now() - started);
    };
    for (let i = 0; i < 26; i++) await send("/");
    for (let i = 0; i < 10; i++) await send("/status/500");
    for (let i = 0; i < 4; i++) await send("/delay/120");
    assert.deepEqual(statuses.sort(), [...Array(30).fill(200), ...Array(10).fill(500)]);
    // 5 from an app without a sidecar, straight to catalog's sidecar in plaintext.
    for (let i = 0; i < 5; i++) assert.equal((await request(ports.catalogIn, { host: "catalog", path: "/" })).status, 200);

    const FROM_FRONTEND = "shop/frontend->shop/catalog";
    const FROM_OUTSIDE = "unknown->shop/catalog";
    // Polled by the page's own script: no reload.
    await page.locator(`[data-edge="${FROM_FRONTEND}"][data-requests-total="41"]`).waitFor();
    await page.locator(`[data-edge="${FROM_OUTSIDE}"][data-requests-total="5"]`).waitFor();
    assert.equal(await page.locator("[data-edge]").count(), 2, "catalog's own count of frontend's requests is not a second edge");

    // Counted once, by frontend's sidecar, although both sidecars saw every request.
    const fromFrontend = await shown(FROM_FRONTEND);
    assert.equal(fromFrontend.reporters, "source");
    assert.equal(fromFrontend.errorRate, 10 / 40);
    const { rps, window, p99 } = fromFrontend;
    assert.ok(
      rps !== null && window !== null && window > 0 && Math.abs(rps * window - 40) < 1e-6,
      `${rps} req/s over ${window} s is the 40 requests sent in the window`,
    );
    // The 4 delayed requests take 120 ms and more, and the highest 1% of 40 is among them: p99
    // is above 100 ms (the bucket bound below 120), and no higher than the bound of the bucket
    // that the slowest request (as the client measured it, proxies included) falls in.
    const ceiling = ISTIO_BUCKETS.find((le) => le >= slowest)!;
    assert.ok(
      p99 !== null && p99 > 100 && p99 <= ceiling,
      `p99 ${p99} ms is in (100, ${ceiling}]: the slowest request took ${slowest.toFixed(1)} ms`,
    );
    assert.match(fromFrontend.label!, new RegExp(`^[0-9.]+ req/s · 25\\.0% err · p99 ${Math.round(p99)} ms$`));

    const fromOutside = await shown(FROM_OUTSIDE);
    assert.equal(fromOutside.reporters, "destination");
    assert.equal(fromOutside.errorRate, 0);
    assert.equal(await page.locator('[data-node="unknown"]').getAttribute("class"), "node node-external");

    // More traffic shows up on the open page.
    for (let i = 0; i < 10; i++) await request(ports.frontendOut, { host: "catalog", path: "/" });
    await page.locator(`[data-edge="${FROM_FRONTEND}"][data-requests-total="51"]`).waitFor();
    assert.equal((await shown(FROM_FRONTEND)).errorRate, 10 / 50);
    assert.equal(await page.locator("#status").textContent(), "live");
    assert.deepEqual(pageErrors, []);
  });

  it("lists every proxy with its configuration, filter digests, certificate expiry and metrics state", async () => {
    const frontend = '[data-proxy="shop/frontend-7d9f"]';
    const catalog = '[data-proxy="shop/catalog-5c4b"]';
    const reviews = '[data-proxy="shop/reviews-0"]';
    assert.equal(await page.locator("[data-proxy]").count(), 3);
    assert.equal(await page.locator(frontend).getAttribute("data-version"), "frontend-7");
    assert.equal(await page.locator(frontend).getAttribute("data-state"), "running");
    assert.equal(await cell(frontend, "filters"), "–");
    assert.equal(await cell(frontend, "certificate"), `in 23 h ${notAfter.frontend.toISOString()}`);
    assert.equal(await cell(frontend, "metrics"), "ok");
    assert.equal(await page.locator(catalog).getAttribute("data-version"), "catalog-3");
    assert.equal(await cell(catalog, "filters"), `shop/header-rewrite@${filter.sha256.slice(0, 12)}`);
    assert.equal(await cell(catalog, "certificate"), `in 2 d ${notAfter.catalog.toISOString()}`);
    assert.equal(await page.locator(reviews).getAttribute("data-state"), "rejected");
    assert.equal(await cell(reviews, "state"), "rejected r-2: listener inbound: port 15006 is in use (runs r-1)");
    assert.match(
      await cell(reviews, "metrics"),
      new RegExp(`^unreachable GET http://127\\.0\\.0\\.1:${ports.reviewsAdmin}/metrics: fetch failed`),
    );
  });

  it("lists every WasmFilter with Ready, the resolved digest and its conditions, as text", async () => {
    const good = '[data-filter="shop/header-rewrite"]';
    const bad = '[data-filter="shop/jwt-auth"]';
    assert.equal(await page.locator(good).getAttribute("data-ready"), "1/1");
    assert.equal(await cell(good, "sha256"), filter.sha256.slice(0, 12));
    assert.equal(await cell(good, "conditions"), "Accepted Resolved Ready");
    assert.equal(await page.locator(`${good} [data-condition="Ready"]`).getAttribute("data-status"), "True");
    assert.equal(await cell(bad, "ready"), "0/1");
    assert.equal(await cell(bad, "sha256"), "–");
    assert.match(
      await cell(bad, "conditions"),
      /Resolved: DigestMismatch the registry served sha256:abc, not the expected one <img src=x onerror="document.title=1">/,
    );
    assert.equal(await page.locator("#filters img").count(), 0, "a message from a resource is shown, never run");
    assert.equal(await page.title(), "weft mesh dashboard");

    await mkdir(path.join(root, "test", ".artifacts"), { recursive: true });
    await page.screenshot({ path: path.join(root, "test", ".artifacts", "dashboard.png"), fullPage: true });
  });
});
