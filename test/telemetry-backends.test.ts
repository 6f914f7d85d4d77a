// runtimes: node
// needs: jaeger
// The shop's telemetry in real backends, as docs/observability.md sets them up: `weft up` runs the
// shop (plus a workload whose status the test picks, for a known number of 5xx), a real
// Prometheus (Debian's) scrapes every sidecar through the annotations the injector writes and the
// documented relabel rules, and a real Jaeger receives the sidecars' spans over OTLP. The test
// sends a known mix of requests (200s, the rate limit's 429s, the access policy's 403s, 500s) and
// asks Prometheus the queries of Istio's dashboards, and Jaeger for one request's trace.
//
// Kubernetes service discovery needs a cluster, so the targets come from file_sd with the labels
// kubernetes_sd would give each pod: the annotations of a pod the injector injected, at the
// sidecar's address (local mode gives every sidecar its own admin port on 127.0.0.1 where a pod
// has 15000 at its own IP). The relabel rules are the documented job's, unchanged.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { load } from "js-yaml";
import { ISTIO_BUCKETS } from "../proxy/telemetry/metrics.ts";
import { injectPod } from "../control/inject/patch.ts";
import { DEFAULT_SETTINGS } from "../control/inject/settings.ts";
import { request, type Reply } from "./support/client.ts";
import { startJaeger, type JaegerSpan, type JaegerTrace, type TestJaeger } from "./support/jaeger.ts";
import { needPrometheus, startPrometheus, type PromSample, type TestPrometheus } from "./support/prometheus.ts";
import { startUp, type RunningUp } from "./support/weft-up.ts";

const ROOT = path.resolve(import.meta.dirname ?? ".", "..");
const GUIDE = path.join(ROOT, "docs", "observability.md");
const SCRAPE_JOB = path.join(ROOT, "docs", "examples", "prometheus-weft-sidecars.yaml");
const WORKLOADS = ["catalog-v1", "catalog-v2", "frontend", "inventory", "status"];
const SCRAPE_SECONDS = 1;
/** The range of the dashboards' rate(...[1m]). */
const WINDOW_MS = 60_000;

/** What the test sent, as the sidecars should have counted it. */
interface Tally {
  /** reporter="destination" requests by `source->destination` workload and response code. */
  inbound: Map<string, number>;
  /** reporter="source" requests by destination workload and response code. */
  outbound: Map<string, number>;
  /** The slowest request the test measured, ms. */
  slowestMs: number;
}

const newTally = (): Tally => ({ inbound: new Map(), outbound: new Map(), slowestMs: 0 });
const bump = (m: Map<string, number>, key: string, n = 1) => m.set(key, (m.get(key) ?? 0) + n);
/** Sums a tally's map over the keys `pick` maps alike (dropping the code, say). */
const totals = (m: Map<string, number>, pick: (key: string) => string | null) => {
  const out = new Map<string, number>();
  for (const [key, n] of m) {
    const k = pick(key);
    if (k !== null) bump(out, k, n);
  }
  return out;
};

/**
 * The PromQL docs/observability.md gives, in its order: each ```promql block's queries, split at
 * blank and comment lines, a query's lines joined. The test asks exactly these.
 */
function documentedQueries(): string[] {
  const queries: string[] = [];
  for (const [, block] of readFileSync(GUIDE, "utf8").matchAll(/```promql\n([\s\S]*?)```/g)) {
    let current: string[] = [];
    for (const line of `${block}\n`.split("\n")) {
      if (line.trim() === "" || line.trim().startsWith("#")) {
        if (current.length > 0) queries.push(current.join(" "));
        current = [];
      } else current.push(line.trim());
    }
  }
  return queries;
}

describe("the shop's metrics in a real Prometheus and its traces in a real Jaeger", () => {
  let jaeger: TestJaeger;
  let mesh: RunningUp;
  let prometheus: TestPrometheus;

  before(async () => {
    await needPrometheus(); // before minutes of starting the rest
    jaeger = await startJaeger();
    mesh = await startUp({
      port: 27012,
      basePort: 27100,
      extra: [path.join(ROOT, "test", "fixtures", "shop-status")],
      // Every sidecar exports its spans to Jaeger; quickly, so the test need not wait 5 s.
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpEndpoint, OTEL_BSP_SCHEDULE_DELAY: "200" },
    });
    // What kubernetes_sd would say of each pod: its annotations once injected, its address, phase and names.
    const annotationsOf = (pod: Record<string, unknown>) => {
      const r = injectPod(pod, DEFAULT_SETTINGS);
      return r.outcome === "injected" ? ((r.pod as { metadata: { annotations: Record<string, string> } }).metadata.annotations ?? {}) : {};
    };
    const podSpec = (annotations: Record<string, string> = {}) => ({
      metadata: { annotations },
      spec: { containers: [{ name: "app", image: "app", ports: [{ containerPort: 8080 }] }] },
    });
    const injected = annotationsOf(podSpec());
    const optedOut = annotationsOf(podSpec({ "weft.dev/inject": "false" }));
    const meta = (pod: string, annotations: Record<string, string>, port: number) => ({
      targets: [`127.0.0.1:${port}`],
      labels: {
        __meta_kubernetes_namespace: "shop",
        __meta_kubernetes_pod_name: pod,
        __meta_kubernetes_pod_ip: "127.0.0.1",
        __meta_kubernetes_pod_phase: "Running",
        ...Object.fromEntries(
          Object.entries(annotations).map(([k, v]) => [
            `__meta_kubernetes_pod_annotation_${k.replace(/[^a-zA-Z0-9_]/g, "_")}`,
            // Local mode: each sidecar's own admin port, where a pod has the injector's 15000 at its own IP.
            k === "prometheus.io/port" ? String(mesh.ports[pod]!.admin) : v,
          ]),
        ),
      },
    });
    const groups = [
      ...Object.entries(mesh.ports).map(([pod, ports]) => meta(pod, injected, ports.app)),
      // A pod without a sidecar has no annotations: the job leaves it alone.
      meta("no-sidecar", optedOut, 9),
    ];
    const [job] = load(readFileSync(SCRAPE_JOB, "utf8")) as Record<string, unknown>[];
    const { kubernetes_sd_configs: _cluster, ...rest } = job!;
    prometheus = await startPrometheus({
      intervalSeconds: SCRAPE_SECONDS,
      scrapeConfigs: [{ ...rest, scrape_interval: `${SCRAPE_SECONDS}s`, file_sd_configs: [{ files: ["sidecars.json"] }] }],
      files: { "sidecars.json": JSON.stringify(groups) },
    });
  });

  after(async () => {
    await prometheus?.stop();
    await mesh?.stop();
    await jaeger?.stop();
  });

  /** Sends a request with `send`, keeping how long it took. */
  const timed = async (tally: Tally, send: () => Promise<Reply>): Promise<Reply> => {
    const started = performance.now();
    const reply = await send();
    tally.slowestMs = Math.max(tally.slowestMs, performance.now() - started);
    return reply;
  };
  /** The shop's front page, as a shopper sends it (no sidecar of its own: source "unknown"). */
  const page = (tally: Tally, user: string, headers: Record<string, string> = {}) =>
    timed(tally, async () => {
      const reply = await request(mesh.ports.frontend!.inbound, { path: "/", headers: { "x-user": user, ...headers }, timeoutMs: 10_000 });
      bump(tally.inbound, `unknown->frontend ${reply.status}`);
      if (reply.status === 200) {
        // The frontend asked the catalog (the canary picks the version) and inventory for 3 products.
        const version = (JSON.parse(reply.body) as { catalogVersion: string }).catalogVersion;
        bump(tally.inbound, `frontend->catalog-${version} 200`);
        bump(tally.outbound, `catalog-${version} 200`);
        bump(tally.inbound, "frontend->inventory 200", 3);
        bump(tally.outbound, "inventory 200", 3);
      }
      return reply;
    });
  /** A call as `from`'s app makes it: through its sidecar's outbound port, to a Service by name. */
  const call = (tally: Tally, from: string, to: string, urlPath: string) =>
    timed(tally, async () => {
      const reply = await request(mesh.ports[from]!.outbound, {
        host: `${to}.shop`,
        path: `http://${to}.shop${urlPath}`,
        timeoutMs: 10_000,
      });
      bump(tally.inbound, `${from}->${to} ${reply.status}`);
      bump(tally.outbound, `${to} ${reply.status}`);
      return reply;
    });

  /** The mix of traffic, twice: once to create every series, once to be counted. */
  const traffic = async (round: string): Promise<Tally> => {
    const tally = newTally();
    for (let i = 0; i < 8; i++) assert.equal((await page(tally, `${round}-shopper-${i}`)).status, 200);
    // One shopper in a hurry: 15 pages at once get the rate limit's 429 past its burst of 10.
    const burst = await Promise.all(Array.from({ length: 15 }, () => page(tally, `${round}-hurry`)));
    assert.ok(burst.filter((r) => r.status === 429).length >= 3, `burst statuses ${burst.map((r) => r.status).join(" ")}`);
    // catalog-v2 directly too, so its series exist whatever the 90/10 canary picked.
    for (let i = 0; i < 2; i++) assert.equal((await call(tally, "frontend", "catalog-v2", "/products")).status, 200);
    for (let i = 0; i < 6; i++) assert.equal((await call(tally, "frontend", "status", "/status/200")).status, 200);
    // 500, not 503: the mesh's default retry policy retries 502, 503 and 504 twice (Istio's),
    // which the callee would count three times.
    for (let i = 0; i < 4; i++) assert.equal((await call(tally, "frontend", "status", "/status/500")).status, 500);
    // The access policy: only the frontend may call inventory.
    for (let i = 0; i < 3; i++) assert.equal((await call(tally, "catalog-v1", "inventory", "/stock/tea")).status, 403);
    return tally;
  };

  /**
   * The value of `expr` per label set, keyed by `labels` joined with "->"; label sets whose rate
   * is 0 in the window (seen in the warm-up only) are left out.
   */
  const byLabels = async (expr: string, labels: string[], time: number): Promise<Map<string, number>> => {
    const result: PromSample[] = await prometheus.query(expr, time);
    return new Map(result.filter((s) => s.value !== 0).map((s) => [labels.map((l) => s.metric[l] ?? "").join("->"), s.value]));
  };

  /** Waits until Prometheus's latest samples of every sidecar show what its /metrics shows now. */
  const scrapedUpToDate = async () => {
    const direct = async () => {
      let sum = 0;
      for (const pod of WORKLOADS) {
        const text = await (await fetch(`http://127.0.0.1:${mesh.ports[pod]!.admin}/metrics`)).text();
        for (const line of text.split("\n"))
          if (line.startsWith("istio_requests_total{")) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
      }
      return sum;
    };
    const want = await direct();
    const deadline = Date.now() + 20_000;
    for (;;) {
      const [got] = await prometheus.query("sum(istio_requests_total)");
      if (got?.value === want) return;
      if (Date.now() > deadline)
        throw new Error(
          `Prometheus has ${got?.value} requests, the sidecars ${want}; targets: ${JSON.stringify(await prometheus.targets())}`,
        );
      await new Promise((r) => setTimeout(r, 250));
    }
  };

  it("scrapes every sidecar, and nothing else, through the injector's annotations and the documented relabel rules", async () => {
    // The job docs/observability.md tells a user to copy is this file, word for word.
    const doc = readFileSync(GUIDE, "utf8");
    const jobText = readFileSync(SCRAPE_JOB, "utf8");
    assert.ok(
      doc.includes(jobText.slice(jobText.indexOf("- job_name")).trim()),
      "docs/observability.md shows docs/examples/prometheus-weft-sidecars.yaml",
    );
    let targets = await prometheus.targets();
    const deadline = Date.now() + 20_000;
    while (targets.some((t) => t.health !== "up") || targets.length < WORKLOADS.length) {
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 250));
      targets = await prometheus.targets();
    }
    assert.deepEqual(
      targets.map((t) => [t.labels.pod, t.scrapeUrl, t.health, t.lastError]).sort(),
      WORKLOADS.map((pod) => [pod, `http://127.0.0.1:${mesh.ports[pod]!.admin}/metrics`, "up", ""]),
      prometheus.output(),
    );
  });

  it("answers the queries of Istio's dashboards, as docs/observability.md gives them, with the traffic the shop served", async () => {
    const [bySourceAndDestination, globalSuccess, successByWorkload, p99ByWorkload, ...more] = documentedQueries();
    assert.equal(more.length, 0, "every query the guide gives is asked here");
    await traffic("warm-up");
    await scrapedUpToDate();
    // The window of rate(...[1m]) starts after every series exists and was scraped, so the
    // warm-up is not in it and no series starts inside it (Prometheus extrapolates those
    // differently); the counted round runs inside it.
    const windowStart = Date.now() + 1000;
    await new Promise((r) => setTimeout(r, windowStart - Date.now() + 2 * SCRAPE_SECONDS * 1000));
    const tally = await traffic("counted");
    await scrapedUpToDate();
    const at = windowStart + WINDOW_MS;
    assert.ok(Date.now() < at - 2 * SCRAPE_SECONDS * 1000, "the counted round ended inside the window");
    await new Promise((r) => setTimeout(r, at - Date.now() + 500));

    // A rate over the window, times its length, is the count; Prometheus extrapolates it to the
    // window's edges from samples a scrape interval apart, so up to a few percent more.
    const aboutCount = (what: string, rate: number | undefined, count: number) => {
      const seen = (rate ?? 0) * (WINDOW_MS / 1000);
      assert.ok(seen >= count * 0.99 && seen <= count * 1.1, `${what}: rate x 60 s = ${seen.toFixed(2)}, sent ${count}`);
    };

    // Request rate by source and destination (Istio's workload and service dashboards, and Kiali's graph).
    const edges = await byLabels(bySourceAndDestination!, ["source_workload", "destination_workload"], at);
    const sent = totals(tally.inbound, (key) => key.split(" ")[0]!);
    assert.deepEqual([...edges.keys()].sort(), [...sent.keys()].sort(), "the callers and callees the callees saw");
    for (const [edge, count] of sent) aboutCount(edge, edges.get(edge), count);
    // ... by response code, as the workload dashboard's "Incoming Requests By Source And Response Code".
    const codes = await byLabels(
      bySourceAndDestination!.replace(/\)$/, ", response_code)"),
      ["source_workload", "destination_workload", "response_code"],
      at,
    );
    for (const [key, count] of tally.inbound) {
      const [edge, code] = key.split(" ") as [string, string];
      aboutCount(`${edge} ${code}`, codes.get(`${edge}->${code}`), count);
    }

    // Success rate: non-5xx over all, the mesh dashboard's global and per-workload figures
    // (reporter="source": what the callers' sidecars saw). The samples of one sidecar share their
    // timestamps, so its series are extrapolated alike and a ratio of them is exact.
    const all = [...tally.outbound.values()].reduce((a, b) => a + b, 0);
    const failed = totals(tally.outbound, (key) => (/ 5\d\d$/.test(key) ? "5xx" : null)).get("5xx") ?? 0;
    const [global] = await prometheus.query(globalSuccess!, at);
    // Across sidecars the scrapes are a few ms apart: exact to that.
    assert.ok(
      Math.abs((global?.value ?? 0) - (all - failed) / all) < 1e-3,
      `global success rate ${global?.value}, sent ${all - failed}/${all}`,
    );
    const success = await byLabels(successByWorkload!, ["destination_workload", "destination_workload_namespace"], at);
    // Exact but for the last bit of a float division.
    const exactly = (what: string, got: number | undefined, want: number) =>
      assert.ok(got !== undefined && Math.abs(got - want) < 1e-9, `${what}: success rate ${got}, sent ${want}`);
    const status = totals(tally.outbound, (key) => (key.startsWith("status ") ? key : null));
    const statusOk = status.get("status 200") ?? 0;
    exactly("status", success.get("status->shop"), statusOk / (statusOk + (status.get("status 500") ?? 0)));
    for (const workload of ["catalog-v1", "catalog-v2", "inventory"]) exactly(workload, success.get(`${workload}->shop`), 1);

    // p99 from the histogram, per destination workload: there, finite, and no slower than the
    // bucket that holds the slowest request the test itself waited for.
    const p99 = await byLabels(p99ByWorkload!, ["destination_workload"], at);
    const ceiling = ISTIO_BUCKETS.find((b) => b >= tally.slowestMs) ?? Infinity;
    assert.deepEqual([...p99.keys()].sort(), ["catalog-v1", "catalog-v2", "frontend", "inventory", "status"]);
    for (const [workload, ms] of p99)
      assert.ok(
        Number.isFinite(ms) && ms > 0 && ms <= ceiling,
        `p99 of ${workload} is ${ms} ms; the slowest request took ${tally.slowestMs.toFixed(1)} ms`,
      );
  });

  it("puts one request through the shop into one trace in Jaeger, with a span from every sidecar on its path", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const clientSpan = "00f067aa0ba902b7";
    const reply = await request(mesh.ports.frontend!.inbound, {
      path: "/",
      headers: { "x-user": "traced", traceparent: `00-${traceId}-${clientSpan}-01` },
      timeoutMs: 10_000,
    });
    assert.equal(reply.status, 200, reply.body);
    const version = (JSON.parse(reply.body) as { catalogVersion: string }).catalogVersion;
    // frontend in, its 4 calls out (catalog, 3 x inventory), and each callee in.
    let found: JaegerTrace | null = null;
    const deadline = Date.now() + 20_000;
    while ((found?.spans.length ?? 0) < 9 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      found = await jaeger.trace(traceId);
    }
    assert.ok(found, `Jaeger has no trace ${traceId}; it has spans from ${(await jaeger.services()).join(", ")}\n${jaeger.output()}`);
    const spans = found.spans;
    const service = (s: JaegerSpan) => found!.processes[s.processID]!.serviceName;
    const kind = (s: JaegerSpan) => s.tags.find((t) => t.key === "span.kind")?.value;
    const parent = (s: JaegerSpan) => s.references.find((r) => r.refType === "CHILD_OF");
    const described = spans.map((s) => `${service(s)} ${kind(s)} ${s.operationName}`).sort();
    assert.deepEqual(
      described,
      [
        `catalog-${version}.shop server GET app`,
        // The routes' names: the HTTPRoute's first rule, and a Service's default route.
        "frontend.shop client GET default",
        "frontend.shop client GET default",
        "frontend.shop client GET default",
        "frontend.shop client GET shop/catalog-canary/0",
        "frontend.shop server GET app",
        "inventory.shop server GET app",
        "inventory.shop server GET app",
        "inventory.shop server GET app",
      ],
      "one span per sidecar a hop passes, named by workload",
    );
    assert.ok(
      spans.every((s) => s.traceID === traceId && s.references.every((r) => r.traceID === traceId)),
      "one trace id",
    );
    const byId = new Map(spans.map((s) => [s.spanID, s]));
    const root = spans.find((s) => service(s) === "frontend.shop" && kind(s) === "server")!;
    assert.equal(parent(root)?.spanID, clientSpan, "the frontend's sidecar continues the caller's trace");
    for (const s of spans) {
      if (s === root) continue;
      const p = byId.get(parent(s)?.spanID ?? "");
      assert.ok(p, `${service(s)} ${kind(s)}: its parent is in the trace`);
      // The frontend's calls are children of its request; each callee's span is a child of the call.
      if (kind(s) === "client") assert.equal(p, root, `${s.operationName} is a child of the frontend's request`);
      else assert.ok(kind(p) === "client" && service(p) === "frontend.shop", `${service(s)}'s request is a child of the frontend's call`);
    }
  });
});
