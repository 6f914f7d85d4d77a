// runtimes: node deno bun
// Telemetry: Istio-named Prometheus metrics read back from prom-client's real exposition,
// JSON access-log lines, W3C trace context, and OTLP/HTTP export to a real HTTP server.
// Runs on Node (node --test), Deno (deno test -A) and Bun (bun test).
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { trace } from "@opentelemetry/api";
import { createTelemetry, ISTIO_BUCKETS } from "../proxy/telemetry/telemetry.ts";
import type { ProxyTelemetry, TelemetryOptions } from "../proxy/telemetry/telemetry.ts";
import { AccessLog, formatAccessLogLine } from "../proxy/telemetry/access-log.ts";
import { OtlpTracerProvider } from "../proxy/telemetry/otlp.ts";
import { ProxyTracer, formatTraceparent, parseTraceparent } from "../proxy/telemetry/tracing.ts";
import type { RequestRecord } from "../proxy/telemetry/types.ts";
import type { NodeInfo } from "../proxy/config/schema.ts";

const NODE: NodeInfo = {
  id: "productpage-v1-abc.default",
  workload: "productpage-v1",
  namespace: "default",
  serviceAccount: "bookinfo-productpage",
  trustDomain: "cluster.local",
  service: "productpage",
};
const LOCAL_PRINCIPAL = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage";
const REVIEWS_PRINCIPAL = "spiffe://cluster.local/ns/default/sa/bookinfo-reviews";
const GATEWAY_PRINCIPAL = "spiffe://cluster.local/ns/istio-system/sa/ingress";

function outbound(over: Partial<RequestRecord> = {}): RequestRecord {
  return {
    direction: "outbound",
    startTime: Date.UTC(2025, 0, 2, 3, 4, 5, 678),
    durationMs: 3,
    method: "GET",
    authority: "reviews:9080",
    path: "/reviews/1?x=1",
    protocol: "HTTP/1.1",
    status: 200,
    requestBytes: 0,
    responseBytes: 120,
    requestId: "6c3a9b1e-5f5e-4a77-9b1c-6f0d7e1b2a3c",
    traceparent: "",
    userAgent: "curl/8.5.0",
    route: "reviews-default",
    source: { principal: "", workload: "", namespace: "" },
    destination: { service: "reviews", namespace: "default", workload: "reviews-v1", principal: REVIEWS_PRINCIPAL, cluster: "reviews" },
    upstreamAddress: "10.1.2.3:9080",
    attempts: 1,
    responseFlag: "",
    mtls: true,
    ...over,
  };
}

function inbound(over: Partial<RequestRecord> = {}): RequestRecord {
  return outbound({
    direction: "inbound",
    authority: "productpage:9080",
    path: "/productpage",
    route: "inbound",
    source: { principal: GATEWAY_PRINCIPAL, workload: "ingress", namespace: "istio-system" },
    destination: {
      service: "productpage",
      namespace: "default",
      workload: "productpage-v1",
      principal: LOCAL_PRINCIPAL,
      cluster: "inbound|9080",
    },
    upstreamAddress: "127.0.0.1:9080",
    ...over,
  });
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (as prom-client writes it) back into samples. */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) {
      types.set(t[1]!, t[2]!);
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
      let lm: RegExpExecArray | null;
      while ((lm = re.exec(m[2])) !== null) labels[lm[1]!] = lm[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

function find(samples: Sample[], name: string, labels: Record<string, string>): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

function one(samples: Sample[], name: string, labels: Record<string, string>): Sample {
  const found = find(samples, name, labels);
  assert.equal(found.length, 1, `expected one ${name} ${JSON.stringify(labels)}, got ${found.length}`);
  return found[0]!;
}

function telemetry(
  options: TelemetryOptions = {},
  accessLog: "stdout" | "off" = "stdout",
): { t: ProxyTelemetry; lines: string[]; writes: string[] } {
  const lines: string[] = [];
  const writes: string[] = [];
  const t = createTelemetry(NODE, accessLog, {
    env: {},
    defaultMetrics: false,
    accessLogSink: (chunk) => {
      writes.push(chunk);
      lines.push(...chunk.trimEnd().split("\n"));
    },
    ...options,
  });
  return { t, lines, writes };
}

test("metrics: istio_requests_total and histograms carry Istio's labels and values", async () => {
  const { t } = telemetry();
  try {
    for (let i = 0; i < 7; i++) t.request(outbound({ durationMs: 3, responseBytes: 120 }));
    for (let i = 0; i < 3; i++) t.request(outbound({ status: 503, responseFlag: "UF", durationMs: 700, responseBytes: 0 }));
    for (let i = 0; i < 5; i++) t.request(inbound({ durationMs: 0.2, requestBytes: 42, responseBytes: 5000 }));
    t.request(inbound({ mtls: false, source: { principal: "", workload: "", namespace: "" } }));
    t.request(
      outbound({
        grpc: true,
        grpcStatus: 14,
        status: 200,
        protocol: "HTTP/2",
        destination: { service: "ratings", namespace: "shop", workload: "ratings-v2", principal: "", cluster: "ratings" },
        mtls: false,
      }),
    );

    const text = await t.metricsText();
    assert.equal(t.contentType, "text/plain; version=0.0.4; charset=utf-8");
    const { samples, types } = parseExposition(text);
    assert.equal(types.get("istio_requests_total"), "counter");
    assert.equal(types.get("istio_request_duration_milliseconds"), "histogram");
    assert.equal(types.get("istio_request_bytes"), "histogram");
    assert.equal(types.get("istio_response_bytes"), "histogram");

    const ok = one(samples, "istio_requests_total", { reporter: "source", response_code: "200", destination_service_name: "reviews" });
    assert.equal(ok.value, 7);
    assert.deepEqual(ok.labels, {
      reporter: "source",
      source_workload: "productpage-v1",
      source_canonical_service: "productpage",
      source_canonical_revision: "latest",
      source_workload_namespace: "default",
      source_principal: LOCAL_PRINCIPAL,
      source_app: "productpage",
      source_version: "unknown",
      source_cluster: "Kubernetes",
      destination_workload: "reviews-v1",
      destination_workload_namespace: "default",
      destination_principal: REVIEWS_PRINCIPAL,
      destination_app: "reviews",
      destination_version: "unknown",
      destination_service: "reviews.default.svc.cluster.local",
      destination_canonical_service: "reviews",
      destination_canonical_revision: "latest",
      destination_service_name: "reviews",
      destination_service_namespace: "default",
      destination_cluster: "Kubernetes",
      request_protocol: "http",
      response_code: "200",
      grpc_response_status: "",
      response_flags: "-",
      connection_security_policy: "mutual_tls",
    });
    const failed = one(samples, "istio_requests_total", { reporter: "source", response_code: "503" });
    assert.equal(failed.value, 3);
    assert.equal(failed.labels.response_flags, "UF");

    const in1 = one(samples, "istio_requests_total", { reporter: "destination", connection_security_policy: "mutual_tls" });
    assert.equal(in1.value, 5);
    assert.equal(in1.labels.source_workload, "ingress");
    assert.equal(in1.labels.source_workload_namespace, "istio-system");
    assert.equal(in1.labels.source_principal, GATEWAY_PRINCIPAL);
    assert.equal(in1.labels.destination_workload, "productpage-v1");
    assert.equal(in1.labels.destination_principal, LOCAL_PRINCIPAL);
    assert.equal(in1.labels.destination_service, "productpage.default.svc.cluster.local");
    const plain = one(samples, "istio_requests_total", { reporter: "destination", connection_security_policy: "none" });
    assert.equal(plain.value, 1);
    assert.equal(plain.labels.source_principal, "unknown");
    assert.equal(plain.labels.source_workload, "unknown");
    assert.equal(plain.labels.destination_principal, "unknown");

    const grpc = one(samples, "istio_requests_total", { request_protocol: "grpc" });
    assert.equal(grpc.labels.grpc_response_status, "14");
    assert.equal(grpc.labels.destination_service, "ratings.shop.svc.cluster.local");
    assert.equal(grpc.labels.destination_service_namespace, "shop");
    assert.equal(grpc.labels.connection_security_policy, "none");

    // Histograms: cumulative buckets with Istio's bounds, _sum and _count, the same labels.
    const okSel = { reporter: "source", response_code: "200", request_protocol: "http" };
    const buckets = find(samples, "istio_request_duration_milliseconds_bucket", okSel);
    assert.deepEqual(
      buckets.map((b) => b.labels.le),
      [...ISTIO_BUCKETS.map(String), "+Inf"],
    );
    const le = (name: string, sel: Record<string, string>, bound: string) => one(samples, name + "_bucket", { ...sel, le: bound }).value;
    assert.equal(le("istio_request_duration_milliseconds", okSel, "1"), 0);
    assert.equal(le("istio_request_duration_milliseconds", okSel, "5"), 7);
    assert.equal(le("istio_request_duration_milliseconds", okSel, "+Inf"), 7);
    assert.equal(one(samples, "istio_request_duration_milliseconds_sum", okSel).value, 21);
    assert.equal(one(samples, "istio_request_duration_milliseconds_count", okSel).value, 7);
    const failSel = { reporter: "source", response_code: "503" };
    assert.equal(le("istio_request_duration_milliseconds", failSel, "500"), 0);
    assert.equal(le("istio_request_duration_milliseconds", failSel, "1000"), 3);
    assert.equal(le("istio_response_bytes", okSel, "100"), 0);
    assert.equal(le("istio_response_bytes", okSel, "250"), 7);
    assert.equal(one(samples, "istio_response_bytes_sum", okSel).value, 840);
    const inSel = { reporter: "destination", connection_security_policy: "mutual_tls" };
    assert.equal(le("istio_request_duration_milliseconds", inSel, "0.5"), 5);
    assert.equal(le("istio_request_bytes", inSel, "25"), 0);
    assert.equal(le("istio_request_bytes", inSel, "50"), 5);
    assert.equal(one(samples, "istio_request_bytes_sum", inSel).value, 210);
    assert.equal(le("istio_response_bytes", inSel, "5000"), 5);
  } finally {
    await t.close();
  }
});

test("metrics: connections, upstream errors, config version, and separate registries per proxy", async () => {
  const a = telemetry();
  const b = telemetry();
  try {
    a.t.connectionOpened("inbound", { peer: { principal: GATEWAY_PRINCIPAL, workload: "ingress", namespace: "istio-system" }, mtls: true });
    a.t.connectionOpened("inbound", { peer: { principal: GATEWAY_PRINCIPAL, workload: "ingress", namespace: "istio-system" }, mtls: true });
    a.t.connectionOpened("outbound");
    a.t.connectionClosed("inbound", { peer: { principal: GATEWAY_PRINCIPAL, workload: "ingress", namespace: "istio-system" }, mtls: true });
    a.t.upstreamError("reviews", "connect");
    a.t.upstreamError("reviews", "connect");
    a.t.upstreamError("ratings", "timeout");
    a.t.setConfigVersion("v1");
    a.t.setConfigVersion("v2");
    a.t.request(outbound());

    const { samples, types } = parseExposition(await a.t.metricsText());
    assert.equal(types.get("weft_active_connections"), "gauge");
    assert.equal(one(samples, "weft_active_connections", { direction: "inbound" }).value, 1);
    assert.equal(one(samples, "weft_active_connections", { direction: "outbound" }).value, 1);
    const opened = one(samples, "istio_tcp_connections_opened_total", { reporter: "destination" });
    assert.equal(opened.value, 2);
    assert.equal(opened.labels.source_principal, GATEWAY_PRINCIPAL);
    assert.equal(opened.labels.source_workload, "ingress");
    assert.equal(opened.labels.destination_workload, "productpage-v1");
    assert.equal(opened.labels.connection_security_policy, "mutual_tls");
    assert.equal(opened.labels.request_protocol, "tcp");
    assert.equal(one(samples, "istio_tcp_connections_closed_total", { reporter: "destination" }).value, 1);
    assert.equal(one(samples, "istio_tcp_connections_opened_total", { reporter: "source" }).value, 1);
    assert.equal(one(samples, "weft_upstream_errors_total", { cluster: "reviews", reason: "connect" }).value, 2);
    assert.equal(one(samples, "weft_upstream_errors_total", { cluster: "ratings", reason: "timeout" }).value, 1);
    assert.deepEqual(
      find(samples, "weft_config_info", {}).map((s) => [s.labels.version, s.value]),
      [["v2", 1]],
    );

    // The second proxy in the same process saw nothing.
    const other = parseExposition(await b.t.metricsText()).samples;
    assert.equal(find(other, "istio_requests_total", {}).length, 0);
    assert.equal(find(other, "weft_upstream_errors_total", {}).length, 0);
    assert.deepEqual(
      find(other, "weft_config_info", {}).map((s) => s.labels.version),
      ["0"],
    );
  } finally {
    await a.t.close();
    await b.t.close();
  }
});

test("metrics: process metrics from prom-client's collectDefaultMetrics", async () => {
  const { t } = telemetry({ defaultMetrics: true });
  try {
    const { samples } = parseExposition(await t.metricsText());
    assert.ok(one(samples, "process_resident_memory_bytes", {}).value > 1e6);
    assert.ok(one(samples, "process_cpu_seconds_total", {}).value > 0);
    assert.equal(find(samples, "istio_requests_total", {}).length, 0);
  } finally {
    await t.close();
  }
});

test("access log: one JSON line per request with the documented fields, batched into one write", async () => {
  const { t, lines, writes } = telemetry({ accessLogFlushMs: 20 });
  const tr = t.startTrace("inbound", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", undefined);
  for (let i = 0; i < 50; i++) t.request(inbound({ trace: tr, traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" }));
  t.request(
    outbound({
      path: '/q?"a"=\\b\n\u2028é',
      userAgent: "",
      status: 0,
      responseFlag: "UH",
      upstreamAddress: "",
      attempts: 3,
      grpcStatus: 2,
    }),
  );
  assert.equal(writes.length, 0, "lines wait for the flush interval");
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(writes.length, 1, "51 lines, one write");
  assert.equal(lines.length, 51);
  await t.close();

  const rec = JSON.parse(lines[0]!);
  assert.deepEqual(rec, {
    start_time: "2025-01-02T03:04:05.678Z",
    direction: "inbound",
    method: "GET",
    path: "/productpage",
    protocol: "HTTP/1.1",
    response_code: 200,
    response_flags: "-",
    bytes_received: 0,
    bytes_sent: 120,
    duration: 3,
    upstream_host: "127.0.0.1:9080",
    upstream_cluster: "inbound|9080",
    route_name: "inbound",
    request_id: "6c3a9b1e-5f5e-4a77-9b1c-6f0d7e1b2a3c",
    authority: "productpage:9080",
    user_agent: "curl/8.5.0",
    downstream_peer_principal: GATEWAY_PRINCIPAL,
    upstream_peer_principal: null,
    mtls: true,
    traceparent: tr.traceparent,
    trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
    attempts: 1,
  });
  const odd = JSON.parse(lines[50]!);
  assert.equal(odd.path, '/q?"a"=\\b\n\u2028é');
  assert.equal(odd.user_agent, null);
  assert.equal(odd.response_code, 0);
  assert.equal(odd.response_flags, "UH");
  assert.equal(odd.upstream_host, null);
  assert.equal(odd.upstream_peer_principal, REVIEWS_PRINCIPAL);
  assert.equal(odd.attempts, 3);
  assert.equal(odd.grpc_status, 2);
  assert.equal(odd.traceparent, null);
  for (const l of lines) JSON.parse(l);
});

test("access log: off writes nothing; a slow sink never blocks and gets one write per batch", async () => {
  const off = telemetry({}, "off");
  off.t.request(outbound());
  await off.t.close();
  assert.equal(off.writes.length, 0);

  let release: () => void = () => {};
  const writes: string[] = [];
  const log = new AccessLog({
    flushIntervalMs: 1,
    maxBufferedBytes: 20000,
    sink: (chunk) => {
      writes.push(chunk);
      return new Promise<void>((r) => (release = r));
    },
  });
  log.log(outbound());
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(writes.length, 1); // in flight, not released
  const lineLength = formatAccessLogLine(outbound()).length + 1;
  const fit = Math.floor(20000 / lineLength);
  for (let i = 0; i < fit + 10; i++) log.log(outbound()); // the proxy keeps going
  assert.equal(writes.length, 1);
  assert.equal(log.dropped, 10);
  release();
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(writes.length, 2);
  assert.equal(writes[1]!.trimEnd().split("\n").length, fit);
  release();
  await log.close();
});

test("traceparent: parsing and validation", () => {
  const good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  assert.deepEqual(parseTraceparent(good), {
    version: "00",
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    parentId: "00f067aa0ba902b7",
    flags: "01",
    sampled: true,
  });
  assert.equal(parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")?.sampled, false);
  assert.equal(parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03")?.sampled, true);
  assert.equal(parseTraceparent(` ${good} `)?.traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
  // A future version may append fields after a dash.
  assert.equal(
    parseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-abcd")?.traceId,
    "4bf92f3577b34da6a3ce929d0e0e4736",
  );
  for (const bad of [
    undefined,
    "",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // all-zero parent id
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // upper case
    "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", // not hex
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", // version 00 is exactly 55
    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
    "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", // misplaced dash
    "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
  ]) {
    assert.equal(parseTraceparent(bad), undefined, `should reject ${bad}`);
  }
  assert.equal(
    formatTraceparent("4bf92f3577b34da6a3ce929d0e0e4736", "1111111111111111", false),
    "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-00",
  );
});

test("traceparent: the proxy continues a valid trace, starts one when absent or invalid", () => {
  const tracer = new ProxyTracer({ rootSampler: () => true });
  const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const child = tracer.start("inbound", incoming, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
  const p = parseTraceparent(child.traceparent)!;
  assert.ok(p, "the forwarded traceparent is valid");
  assert.equal(p.traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
  assert.equal(child.traceId, p.traceId);
  assert.equal(p.parentId, child.spanId);
  assert.notEqual(child.spanId, "00f067aa0ba902b7", "the proxy's own span id");
  assert.equal(child.parentSpanId, "00f067aa0ba902b7");
  assert.equal(child.sampled, true);
  assert.equal(child.tracestate, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");

  const unsampled = tracer.start("outbound", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", undefined);
  assert.equal(parseTraceparent(unsampled.traceparent)!.sampled, false);

  const fresh = tracer.start("outbound", undefined, "ignored=1");
  const f = parseTraceparent(fresh.traceparent)!;
  assert.ok(f);
  assert.match(f.traceId, /^[0-9a-f]{32}$/);
  assert.equal(fresh.parentSpanId, "");
  assert.equal(fresh.tracestate, "", "tracestate without a valid traceparent is dropped");
  assert.equal(f.sampled, true);

  const restarted = tracer.start("inbound", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "a=b");
  assert.ok(parseTraceparent(restarted.traceparent));
  assert.notEqual(restarted.traceId, "00000000000000000000000000000000");
  assert.equal(restarted.tracestate, "");

  const ids = new Set<string>();
  for (let i = 0; i < 10000; i++) ids.add(tracer.start("inbound", incoming, undefined).spanId);
  assert.equal(ids.size, 10000, "span ids do not repeat");

  const never = new ProxyTracer({ rootSampler: () => false });
  assert.equal(parseTraceparent(never.start("inbound", undefined, undefined).traceparent)!.sampled, false);
});

/** A real HTTP server standing in for an OpenTelemetry collector's OTLP/HTTP receiver. */
async function collector(): Promise<{
  url: string;
  requests: { path: string; contentType: string; tenant: string; body: any }[];
  close(): Promise<void>;
}> {
  const requests: { path: string; contentType: string; tenant: string; body: any }[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      requests.push({
        path: req.url ?? "",
        contentType: String(req.headers["content-type"]),
        tenant: String(req.headers["x-tenant"]),
        body: JSON.parse(Buffer.concat(chunks).toString("utf8")),
      });
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections?.();
        server.close(() => r());
      }),
  };
}

function attrs(list: { key: string; value: Record<string, unknown> }[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of list)
    out[key] = value.stringValue ?? (value.intValue !== undefined ? Number(value.intValue) : (value.boolValue ?? value.doubleValue));
  return out;
}

test("tracing: spans are exported over OTLP/HTTP JSON when OTEL_EXPORTER_OTLP_ENDPOINT is set", async () => {
  const otlp = await collector();
  const { t } = telemetry({
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url + "/",
      OTEL_SERVICE_NAME: "productpage.default",
      OTEL_EXPORTER_OTLP_HEADERS: "x-tenant=a%20b",
    },
  });
  try {
    assert.ok(t.otlp);
    const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const start = Date.now();
    const tr = t.startTrace("inbound", incoming, "rojo=00f067aa0ba902b7", start);
    assert.equal(tr.traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
    t.request(
      inbound({
        trace: tr,
        traceparent: incoming,
        startTime: start,
        durationMs: 12.5,
        status: 503,
        responseFlag: "UF",
        path: "/productpage?u=1",
      }),
    );
    const out = t.startTrace("outbound", undefined, undefined, start);
    t.request(outbound({ trace: out, startTime: start, durationMs: 2 }));
    // Sampled out by the caller: nothing recorded, flags forwarded as-is.
    const dropped = t.startTrace("inbound", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", undefined);
    assert.equal(dropped.sampled, false);
    t.request(inbound({ trace: dropped }));
    await t.flush();

    assert.equal(otlp.requests.length, 1);
    const req = otlp.requests[0]!;
    assert.equal(req.path, "/v1/traces");
    assert.equal(req.contentType, "application/json");
    assert.equal(req.tenant, "a b", "OTEL_EXPORTER_OTLP_HEADERS are sent");
    const rs = req.body.resourceSpans[0];
    assert.equal(attrs(rs.resource.attributes)["service.name"], "productpage.default");
    const spans = rs.scopeSpans[0].spans;
    assert.equal(spans.length, 2);
    const server = spans.find((s: any) => s.kind === 2);
    assert.equal(server.traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert.equal(server.parentSpanId, "00f067aa0ba902b7");
    assert.equal(server.spanId, tr.spanId);
    assert.equal(server.traceState, "rojo=00f067aa0ba902b7");
    assert.equal(server.name, "GET inbound");
    assert.equal(server.status.code, 2);
    assert.equal(BigInt(server.endTimeUnixNano) - BigInt(server.startTimeUnixNano), 12_500_000n);
    assert.equal(BigInt(server.startTimeUnixNano), BigInt(start) * 1_000_000n);
    const a = attrs(server.attributes);
    assert.equal(a["http.request.method"], "GET");
    assert.equal(a["url.path"], "/productpage");
    assert.equal(a["url.query"], "u=1");
    assert.equal(a["http.response.status_code"], 503);
    assert.equal(a["server.address"], "productpage");
    assert.equal(a["server.port"], 9080);
    assert.equal(a["weft.direction"], "inbound");
    assert.equal(a["weft.response_flags"], "UF");
    const client = spans.find((s: any) => s.kind === 3);
    assert.equal(client.traceId, out.traceId);
    assert.equal(client.spanId, out.spanId);
    assert.equal(client.parentSpanId, undefined);
    assert.equal(attrs(client.attributes)["weft.direction"], "outbound");
    assert.deepEqual(client.status, {});
  } finally {
    await t.close();
    await otlp.close();
  }
});

test("tracing: a sidecar that learns who it is from its first configuration exports its spans under that name", async () => {
  const otlp = await collector();
  // As a managed sidecar starts: the bootstrap's node, then the control plane's.
  const bootstrap: NodeInfo = {
    id: "weft-proxy",
    workload: "unknown",
    namespace: "default",
    serviceAccount: "default",
    trustDomain: "cluster.local",
    service: "",
  };
  const t = createTelemetry(bootstrap, "off", { env: { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url }, defaultMetrics: false });
  try {
    t.setNode(NODE);
    t.request(inbound({ trace: t.startTrace("inbound", undefined, undefined) }));
    await t.flush();
    const resource = attrs(otlp.requests[0]!.body.resourceSpans[0].resource.attributes);
    assert.equal(resource["service.name"], "productpage-v1.default", "not the bootstrap's unknown.default");
    assert.equal(resource["service.instance.id"], NODE.id);
    assert.equal(resource["k8s.namespace.name"], "default");
  } finally {
    await t.close();
    await otlp.close();
  }
});

test("tracing: a tracer provider registered with @opentelemetry/api is used; none costs no span", async () => {
  const plain = new ProxyTracer();
  assert.equal((plain.start("inbound", undefined, undefined) as unknown as { span: unknown }).span, undefined);

  const otlp = await collector();
  const provider = new OtlpTracerProvider({ endpoint: otlp.url, resource: { "service.name": "global" } });
  assert.ok(trace.setGlobalTracerProvider(provider));
  try {
    const tracer = new ProxyTracer();
    const tr = tracer.start("outbound", undefined, undefined);
    tracer.end(outbound({ trace: tr }));
    await provider.forceFlush();
    assert.equal(otlp.requests.length, 1);
    const span = otlp.requests[0]!.body.resourceSpans[0].scopeSpans[0].spans[0];
    assert.equal(span.spanId, tr.spanId);
    assert.equal(span.name, "GET reviews-default");
  } finally {
    trace.disable();
    await provider.shutdown();
    await otlp.close();
  }
});
