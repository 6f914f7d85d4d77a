// Micro-benchmark: what one request costs the telemetry (trace context, Istio metrics and
// the JSON access log), measured on the runtime that runs this file:
//   node bench/micro/telemetry.ts; deno run -A bench/micro/telemetry.ts; bun bench/micro/telemetry.ts
import { createTelemetry } from "../../proxy/telemetry/telemetry.ts";
import type { RequestRecord } from "../../proxy/telemetry/types.ts";

const t = createTelemetry(
  { id: "bench", workload: "bench", namespace: "bench", serviceAccount: "bench", trustDomain: "cluster.local", service: "" },
  "stdout",
  {
    accessLogSink: () => {},
  },
);
const records: RequestRecord[] = Array.from({ length: 64 }, (_, i) => ({
  direction: i % 2 ? "inbound" : "outbound",
  startTime: Date.now(),
  durationMs: i,
  method: "GET",
  authority: "reviews",
  path: `/items/${i}`,
  protocol: "HTTP/1.1",
  status: i % 9 === 0 ? 503 : 200,
  requestBytes: 100,
  responseBytes: i * 100,
  requestId: "0",
  traceparent: "",
  userAgent: "bench",
  route: "default",
  source: { principal: "spiffe://cluster.local/ns/bench/sa/a", workload: "a", namespace: "bench" },
  destination: {
    service: "reviews",
    namespace: "bench",
    workload: "reviews",
    principal: "spiffe://cluster.local/ns/bench/sa/b",
    cluster: "reviews",
  },
  upstreamAddress: "127.0.0.1:80",
  attempts: 1,
  responseFlag: "",
  mtls: true,
}));

function run(n: number): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = records[i & 63];
    r.trace = t.startTrace(r.direction, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", undefined);
    t.request(r);
  }
  return ((performance.now() - t0) * 1000) / n;
}

run(50_000);
const us = run(200_000);
console.log(
  JSON.stringify({ benchmark: "telemetry per request (startTrace + metrics + access log)", microseconds: Number(us.toFixed(2)) }),
);
await t.close();
