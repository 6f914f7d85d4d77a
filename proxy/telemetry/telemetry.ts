// The proxy's Telemetry: Istio-compatible Prometheus metrics, a JSON access log and W3C trace
// context with OpenTelemetry spans, behind the one interface the request path calls.
import process from "node:process";
import { Counter, type Registry } from "prom-client";
import type { Attributes, TracerProvider } from "@opentelemetry/api";
import type { NodeInfo } from "../config/schema.ts";
import { AccessLog } from "./access-log.ts";
import type { AccessLogSink } from "./access-log.ts";
import { ProxyMetrics } from "./metrics.ts";
import type { MetricsOptions } from "./metrics.ts";
import { OtlpTracerProvider, parseKeyValueList } from "./otlp.ts";
import { ProxyTracer, rootSamplerFromEnv } from "./tracing.ts";
import type { ConnectionInfo, ConnectionMeter, Direction, RequestRecord, RequestTrace, Telemetry } from "./types.ts";

export type { AccessLogSink } from "./access-log.ts";
export { ISTIO_BUCKETS, ISTIO_HTTP_LABELS } from "./metrics.ts";
export { parseTraceparent, formatTraceparent } from "./tracing.ts";

export type AccessLogMode = "stdout" | "off";

export interface TelemetryOptions extends MetricsOptions {
  /** Where access-log lines go instead of standard output (tests; log shippers). */
  accessLogSink?: AccessLogSink;
  /** Access-log batching: lines wait at most this long before one write (default 100 ms). */
  accessLogFlushMs?: number;
  /**
   * Use this provider for spans instead of the global one or OTLP (tests; embedding weft
   * with an OpenTelemetry SDK already set up).
   */
  tracerProvider?: TracerProvider;
  /** Environment for OTEL_* settings (default: process.env). */
  env?: Record<string, string | undefined>;
  /** OTLP batching delay (OTEL_BSP_SCHEDULE_DELAY, default 5000 ms). */
  otlpScheduleDelayMs?: number;
  /** Initial weft_config_info version. */
  configVersion?: string;
  /** This weft's version, reported as the tracer's version. */
  version?: string;
}

export interface ProxyTelemetry extends Telemetry {
  /** Where other parts of the proxy (filters) register their own metrics. */
  readonly registry: Registry;
  /** Prometheus text exposition for `GET :15000/metrics`. */
  metricsText(): Promise<string>;
  /** Content-Type header for metricsText(). */
  readonly contentType: string;
  /** Sets weft_config_info{version} (call on every configuration applied). */
  setConfigVersion(version: string): void;
  /** Who this proxy is, for the local side of request metrics (call on every configuration applied). */
  setNode(node: NodeInfo): void;
  /** Turns the access log on or off (configuration reload). */
  setAccessLog(mode: AccessLogMode): void;
  /** The OTLP exporter, when OTEL_EXPORTER_OTLP_ENDPOINT is set (for /config_dump and tests). */
  readonly otlp: OtlpTracerProvider | undefined;
  /** Writes pending access-log lines and exports pending spans. */
  flush(): Promise<void>;
  /** flush(), then stop: later records are ignored. */
  close(): Promise<void>;
}

function readEnv(): Record<string, string | undefined> {
  try {
    return { ...process.env };
  } catch {
    return {}; // Deno without --allow-env
  }
}

/** The OTLP resource of this proxy's spans: who it is (node), over what OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME say. */
function otlpResource(node: NodeInfo, env: Record<string, string | undefined>): Attributes {
  const resource: Attributes = {
    "service.name": `${node.workload}.${node.namespace}`,
    "service.namespace": node.namespace,
    "k8s.namespace.name": node.namespace,
    "service.instance.id": node.id,
    "telemetry.sdk.name": "weft",
    "telemetry.sdk.language": "nodejs",
    ...parseKeyValueList(env.OTEL_RESOURCE_ATTRIBUTES),
  };
  if (env.OTEL_SERVICE_NAME) resource["service.name"] = env.OTEL_SERVICE_NAME;
  return resource;
}

export function createTelemetry(node: NodeInfo, accessLog: AccessLogMode, options: TelemetryOptions = {}): ProxyTelemetry {
  const env = options.env ?? readEnv();
  const metrics = new ProxyMetrics(node, options);
  metrics.setConfigVersion(options.configVersion ?? "0");

  let log: AccessLog | undefined;
  const makeLog = () => new AccessLog({ sink: options.accessLogSink, flushIntervalMs: options.accessLogFlushMs });
  if (accessLog === "stdout") log = makeLog();
  const retired: AccessLog[] = [];

  let otlp: OtlpTracerProvider | undefined;
  let provider = options.tracerProvider;
  const endpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const tracesEndpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (provider === undefined && (endpoint || tracesEndpoint) && (env.OTEL_TRACES_EXPORTER ?? "otlp") !== "none") {
    const delay = Number(env.OTEL_BSP_SCHEDULE_DELAY);
    otlp = new OtlpTracerProvider({
      endpoint,
      tracesEndpoint,
      headers: { ...parseKeyValueList(env.OTEL_EXPORTER_OTLP_HEADERS), ...parseKeyValueList(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS) },
      resource: otlpResource(node, env),
      scheduleDelayMs: options.otlpScheduleDelayMs ?? (Number.isFinite(delay) && delay > 0 ? delay : undefined),
    });
    provider = otlp;
  }
  new Counter({
    name: "weft_access_log_dropped_total",
    help: "Access-log lines dropped because standard output could not keep up.",
    registers: [metrics.registry],
    collect() {
      this.reset();
      this.inc((log?.dropped ?? 0) + retired.reduce((n, l) => n + l.dropped, 0));
    },
  });
  new Counter({
    name: "weft_spans_dropped_total",
    help: "Spans dropped because the OTLP queue was full or an export failed.",
    registers: [metrics.registry],
    collect() {
      this.reset();
      this.inc(otlp?.dropped ?? 0);
    },
  });
  const tracer = new ProxyTracer({ tracerProvider: provider, rootSampler: rootSamplerFromEnv(env), version: options.version });
  let closed = false;

  return {
    contentType: metrics.contentType,
    registry: metrics.registry,
    otlp,
    startTrace(direction: Direction, traceparent: string | undefined, tracestate: string | undefined, startTime?: number): RequestTrace {
      return tracer.start(direction, traceparent, tracestate, startTime);
    },
    request(record: RequestRecord): void {
      if (closed) return;
      metrics.request(record);
      if (log !== undefined) log.log(record);
      if (record.trace !== undefined) tracer.end(record);
    },
    connectionOpened(direction: Direction, info?: ConnectionInfo): ConnectionMeter {
      return metrics.connectionOpened(direction, info);
    },
    connectionClosed(direction: Direction, info?: ConnectionInfo): void {
      metrics.connectionClosed(direction, info);
    },
    upstreamError(cluster, reason): void {
      metrics.upstreamError(cluster, reason);
    },
    tlsRefused(listener, reason): void {
      metrics.tlsRefused(listener, reason);
    },
    outlierEjected(cluster, reason): void {
      metrics.outlierEjected(cluster, reason);
    },
    metricsText: () => metrics.metricsText(),
    setConfigVersion: (version: string) => metrics.setConfigVersion(version),
    setNode(node: NodeInfo): void {
      metrics.setNode(node);
      // A managed sidecar starts with a bootstrap node ("unknown" workload) and learns who it is
      // with its first configuration: its spans must say so too, or every sidecar of the mesh
      // shows up in the tracing backend as the one service "unknown.default".
      otlp?.setResource(otlpResource(node, env));
    },
    setAccessLog(mode: AccessLogMode): void {
      if (mode === "stdout" && log === undefined && !closed) log = makeLog();
      if (mode === "off" && log !== undefined) {
        retired.push(log);
        void log.close();
        log = undefined;
      }
    },
    async flush(): Promise<void> {
      await Promise.all([log?.drain(), otlp?.forceFlush(), ...retired.map((l) => l.close())]);
    },
    async close(): Promise<void> {
      closed = true;
      await Promise.all([log?.close(), otlp?.shutdown(), ...retired.map((l) => l.close())]);
    },
  };
}
