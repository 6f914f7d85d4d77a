// A real Jaeger for the tests: the all-in-one binary (test/support/jaeger-build.ts) as a process
// on 127.0.0.1, in-memory storage, every port of its own, receiving OTLP/HTTP as a collector
// would and answering its HTTP query API (what the Jaeger UI reads).
import process from "node:process";
import { freePorts } from "../k8s/cluster.ts";
import { JAEGER_VERSION, jaegerBinary } from "./jaeger-build.ts";
import { startServerProcess } from "./server-process.ts";

/** A span as Jaeger's query API gives it (/api/traces/ID). */
export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: { refType: string; traceID: string; spanID: string }[];
  processID: string;
  tags: { key: string; type: string; value: unknown }[];
}

export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string; tags: { key: string; value: unknown }[] }>;
}

export interface TestJaeger {
  /** What OTEL_EXPORTER_OTLP_ENDPOINT is set to (OTLP/HTTP, port 4318's role). */
  otlpEndpoint: string;
  /** The query API and UI (port 16686's role). */
  queryUrl: string;
  /** The trace with this id, or null while Jaeger has none. */
  trace(traceId: string): Promise<JaegerTrace | null>;
  /** The services Jaeger has received spans from. */
  services(): Promise<string[]>;
  output(): string;
  stop(): Promise<void>;
}

export async function startJaeger(): Promise<TestJaeger> {
  const binary = await jaegerBinary();
  const [otlpHttp, otlpGrpc, collectorHttp, collectorGrpc, queryHttp, queryGrpc, admin] = await freePorts(7);
  const at = (port: number | undefined) => `127.0.0.1:${port}`;
  const queryUrl = `http://${at(queryHttp)}`;
  const otlpEndpoint = `http://${at(otlpHttp)}`;
  const answers = (url: string, init?: RequestInit) =>
    fetch(url, init).then(
      (r) => r.status < 500,
      () => false,
    );
  const server = await startServerProcess(
    `Jaeger ${JAEGER_VERSION}`,
    binary,
    [
      `--collector.otlp.http.host-port=${at(otlpHttp)}`,
      `--collector.otlp.grpc.host-port=${at(otlpGrpc)}`,
      `--collector.http-server.host-port=${at(collectorHttp)}`,
      `--collector.grpc-server.host-port=${at(collectorGrpc)}`,
      `--query.http-server.host-port=${at(queryHttp)}`,
      `--query.grpc-server.host-port=${at(queryGrpc)}`,
      `--admin.http.host-port=${at(admin)}`,
      "--log-level=warn",
    ],
    {
      env: { ...process.env, SPAN_STORAGE_TYPE: "memory", COLLECTOR_OTLP_ENABLED: "true" },
      // Ready when both the query API and the OTLP receiver answer.
      ready: async () =>
        (await answers(`${queryUrl}/api/services`)) &&
        (await answers(`${otlpEndpoint}/v1/traces`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })),
      readyWithinMs: 60_000,
    },
  );

  return {
    otlpEndpoint,
    queryUrl,
    output: server.output,
    async trace(traceId) {
      const res = await fetch(`${queryUrl}/api/traces/${traceId}`);
      if (res.status === 404) return null;
      const body = (await res.json()) as { data: JaegerTrace[] | null; errors?: { msg: string }[] | null };
      if (!res.ok) throw new Error(`Jaeger /api/traces/${traceId}: HTTP ${res.status} ${JSON.stringify(body.errors)}`);
      return body.data?.[0] ?? null;
    },
    async services() {
      const body = (await (await fetch(`${queryUrl}/api/services`)).json()) as { data: string[] | null };
      return body.data ?? [];
    },
    stop: server.stop,
  };
}
