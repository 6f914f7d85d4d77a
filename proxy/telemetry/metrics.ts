// Prometheus metrics with Istio's standard names and labels, so that Istio's Grafana
// dashboards and Kiali work against weft unchanged.
//
// The per-request path does not go through prom-client's Counter/Histogram objects: those hash
// the whole label object on every inc()/observe() (25 labels x 4 metrics per request). Instead
// each distinct label set is one `Series` found by a short string key built from the few
// record fields that vary; the request increments plain numbers in it. The series are handed
// to prom-client's Registry as metric objects (`get()` builds the values at scrape time), so
// the exposition format, content type and default process metrics are prom-client's.
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { NodeInfo } from "../config/schema.ts";
import type { ConnectionInfo, ConnectionMeter, Direction, PeerInfo, RequestRecord } from "./types.ts";

/** Envoy's default histogram buckets, which Istio uses for its duration and size histograms. */
export const ISTIO_BUCKETS: readonly number[] = [
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
];

/** Labels of istio_requests_total and the three HTTP histograms, in exposition order. */
export const ISTIO_HTTP_LABELS = [
  "reporter",
  "source_workload",
  "source_canonical_service",
  "source_canonical_revision",
  "source_workload_namespace",
  "source_principal",
  "source_app",
  "source_version",
  "source_cluster",
  "destination_workload",
  "destination_workload_namespace",
  "destination_principal",
  "destination_app",
  "destination_version",
  "destination_service",
  "destination_canonical_service",
  "destination_canonical_revision",
  "destination_service_name",
  "destination_service_namespace",
  "destination_cluster",
  "request_protocol",
  "response_code",
  "grpc_response_status",
  "response_flags",
  "connection_security_policy",
] as const;

export type IstioLabels = Record<(typeof ISTIO_HTTP_LABELS)[number], string>;
type TcpLabels = Omit<IstioLabels, "response_code" | "grpc_response_status">;

export interface MetricsOptions {
  /** Istio's cluster id for source_cluster/destination_cluster (default "Kubernetes"). */
  clusterId?: string;
  /** DNS suffix for destination_service when a service is given by short name (default "cluster.local"). */
  clusterDomain?: string;
  /** Register prom-client's process metrics (CPU, RSS, heap, event loop lag). Default true. */
  defaultMetrics?: boolean;
  /** At most this many distinct label sets per metric family; further ones are folded into
   * one series whose peer labels are "overflow" (default 20000). */
  maxSeries?: number;
}

class HttpSeries {
  labels: IstioLabels;
  count = 0;
  duration: Float64Array;
  durationSum = 0;
  requestBytes: Float64Array;
  requestBytesSum = 0;
  responseBytes: Float64Array;
  responseBytesSum = 0;
  constructor(labels: IstioLabels, buckets: number) {
    this.labels = labels;
    this.duration = new Float64Array(buckets + 1);
    this.requestBytes = new Float64Array(buckets + 1);
    this.responseBytes = new Float64Array(buckets + 1);
  }
}

class TcpSeries {
  labels: TcpLabels;
  opened = 0;
  closed = 0;
  received = 0;
  sent = 0;
  constructor(labels: TcpLabels) {
    this.labels = labels;
  }
}

function bucketIndex(bounds: readonly number[], v: number): number {
  const n = bounds.length;
  let i = 0;
  while (i < n && v > bounds[i]!) i++;
  return i; // n = +Inf
}

const SEP = "\u0001";
const unknown = (s: string | undefined): string => (s ? s : "unknown");

// prom-client's metric shape, for objects we register ourselves.
interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}
interface MetricObject {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  values: MetricValue[];
  aggregator: "sum";
}

let sharedDefaultRegistry: Registry | undefined;
/** prom-client's process metrics live in one process-wide registry: they describe the process,
 * and collecting them per proxy would start one event-loop monitor and GC observer each. */
function defaultMetricsRegistry(): Registry {
  if (sharedDefaultRegistry === undefined) {
    sharedDefaultRegistry = new Registry();
    collectDefaultMetrics({ register: sharedDefaultRegistry });
  }
  return sharedDefaultRegistry;
}

/** Istio's canonical service: the Service's short name (the control plane gives its host name), else the workload. */
const canonicalName = (node: NodeInfo) => node.service.split(".")[0] || node.workload;

export class ProxyMetrics {
  readonly registry: Registry;
  readonly contentType: string;
  #node: NodeInfo;
  #localPrincipal: string;
  #localApp: string;
  #clusterId: string;
  #clusterDomain: string;
  #maxSeries: number;
  #buckets = ISTIO_BUCKETS;
  #http = new Map<string, HttpSeries>();
  #tcp = new Map<string, TcpSeries>();
  #active = { inbound: 0, outbound: 0 };
  #defaultMetrics: boolean;
  #upstreamErrors: Counter<"cluster" | "reason">;
  #tlsRefused: Counter<"listener" | "reason">;
  #outlierEjections: Counter<"cluster" | "reason">;
  #configInfo: Gauge<"version">;

  constructor(node: NodeInfo, options: MetricsOptions = {}) {
    this.#node = node;
    this.#localPrincipal = `spiffe://${node.trustDomain}/ns/${node.namespace}/sa/${node.serviceAccount}`;
    this.#localApp = canonicalName(node);
    this.#clusterId = options.clusterId ?? "Kubernetes";
    this.#clusterDomain = options.clusterDomain ?? "cluster.local";
    this.#maxSeries = options.maxSeries ?? 20000;
    this.#defaultMetrics = options.defaultMetrics ?? true;
    if (this.#defaultMetrics) defaultMetricsRegistry();
    const registry = (this.registry = new Registry());
    this.contentType = registry.contentType;

    const http = this.#http;
    const tcp = this.#tcp;
    const buckets = this.#buckets;
    const reg = (m: { name: string; help: string; type: MetricObject["type"]; get: () => MetricObject }): void => {
      // prom-client's Registry accepts any object with name/help/type/get/reset.
      registry.registerMetric({ ...m, reset: () => {} } as unknown as Counter);
    };
    reg({
      name: "istio_requests_total",
      help: "Requests handled by the proxy (Istio standard metric).",
      type: "counter",
      get: () => ({
        name: "istio_requests_total",
        help: "",
        type: "counter",
        aggregator: "sum",
        values: Array.from(http.values(), (s) => ({ value: s.count, labels: s.labels })),
      }),
    });
    const histogram = (name: string, help: string, pick: (s: HttpSeries) => [Float64Array, number]) =>
      reg({
        name,
        help,
        type: "histogram",
        get: () => {
          const values: MetricValue[] = [];
          for (const s of http.values()) {
            const [counts, sum] = pick(s);
            let acc = 0;
            for (let i = 0; i < buckets.length; i++) {
              acc += counts[i]!;
              values.push({ metricName: name + "_bucket", value: acc, labels: { ...s.labels, le: buckets[i]! } });
            }
            acc += counts[buckets.length]!;
            values.push({ metricName: name + "_bucket", value: acc, labels: { ...s.labels, le: "+Inf" } });
            values.push({ metricName: name + "_sum", value: sum, labels: s.labels });
            values.push({ metricName: name + "_count", value: acc, labels: s.labels });
          }
          return { name, help, type: "histogram", aggregator: "sum", values };
        },
      });
    histogram("istio_request_duration_milliseconds", "Request duration in milliseconds (Istio standard metric).", (s) => [
      s.duration,
      s.durationSum,
    ]);
    histogram("istio_request_bytes", "Request body sizes in bytes (Istio standard metric).", (s) => [s.requestBytes, s.requestBytesSum]);
    histogram("istio_response_bytes", "Response body sizes in bytes (Istio standard metric).", (s) => [
      s.responseBytes,
      s.responseBytesSum,
    ]);
    for (const [name, field, help] of [
      ["istio_tcp_connections_opened_total", "opened", "Connections opened"],
      ["istio_tcp_connections_closed_total", "closed", "Connections closed"],
      ["istio_tcp_received_bytes_total", "received", "Bytes from the client of an opaque TCP connection"],
      ["istio_tcp_sent_bytes_total", "sent", "Bytes sent back to the client of an opaque TCP connection"],
    ] as const) {
      reg({
        name,
        help: `${help} (Istio standard metric).`,
        type: "counter",
        get: () => ({
          name,
          help: "",
          type: "counter",
          aggregator: "sum",
          values: Array.from(tcp.values(), (s) => ({ value: s[field], labels: s.labels })),
        }),
      });
    }

    this.#upstreamErrors = new Counter({
      name: "weft_upstream_errors_total",
      help: "Upstream failures by cluster and reason (connect, reset, timeout, tls, protocol, overflow).",
      labelNames: ["cluster", "reason"],
      registers: [registry],
    });
    this.#tlsRefused = new Counter({
      name: "weft_tls_refused_total",
      help: "Downstream connections refused before any request, by listener and reason (plaintext, no_certificate, certificate_expired, certificate_not_yet_valid, untrusted_certificate, handshake).",
      labelNames: ["listener", "reason"],
      registers: [registry],
    });
    this.#outlierEjections = new Counter({
      name: "weft_outlier_ejections_total",
      help: "Endpoints ejected by outlier detection, by cluster and reason (consecutive_5xx, consecutive_connect_failures).",
      labelNames: ["cluster", "reason"],
      registers: [registry],
    });
    const active = this.#active;
    new Gauge({
      name: "weft_active_connections",
      help: "Open downstream (inbound) and upstream (outbound) connections.",
      labelNames: ["direction"],
      registers: [registry],
      collect() {
        this.set({ direction: "inbound" }, active.inbound);
        this.set({ direction: "outbound" }, active.outbound);
      },
    });
    this.#configInfo = new Gauge({
      name: "weft_config_info",
      help: "The configuration version the proxy runs (value 1).",
      labelNames: ["version"],
      registers: [registry],
    });
  }

  /**
   * The local side of every series: a managed sidecar learns its workload, namespace and
   * identity with its first configuration. Series with the old labels are dropped (a node
   * changes from the bootstrap's to the pod's before any traffic, not later).
   */
  setNode(node: NodeInfo): void {
    const n = this.#node;
    if (
      n.workload === node.workload &&
      n.namespace === node.namespace &&
      n.serviceAccount === node.serviceAccount &&
      n.trustDomain === node.trustDomain &&
      n.service === node.service
    )
      return;
    this.#node = node;
    this.#localPrincipal = `spiffe://${node.trustDomain}/ns/${node.namespace}/sa/${node.serviceAccount}`;
    this.#localApp = canonicalName(node);
    this.#http.clear();
    this.#tcp.clear();
  }

  /** Sets weft_config_info{version} to 1 for this version only. */
  setConfigVersion(version: string): void {
    this.#configInfo.reset();
    this.#configInfo.set({ version }, 1);
  }

  upstreamError(cluster: string, reason: string): void {
    this.#upstreamErrors.inc({ cluster, reason });
  }

  outlierEjected(cluster: string, reason: string): void {
    this.#outlierEjections.inc({ cluster, reason });
  }

  tlsRefused(listener: string, reason: string): void {
    this.#tlsRefused.inc({ listener, reason });
  }

  request(r: RequestRecord): void {
    const inbound = r.direction === "inbound";
    // The label values that vary between records, in a fixed order. The local side's labels
    // come from NodeInfo and never vary.
    const peer = inbound ? r.source : r.destination;
    const d = r.destination;
    const key =
      (inbound ? "i" : "o") +
      SEP +
      peer.workload +
      SEP +
      peer.namespace +
      SEP +
      peer.principal +
      SEP +
      d.service +
      SEP +
      d.namespace +
      SEP +
      r.status +
      SEP +
      r.responseFlag +
      SEP +
      (r.mtls ? "1" : "0") +
      (r.grpc === true ? "g" : "h") +
      (r.grpcStatus === undefined ? "" : r.grpcStatus);
    let s = this.#http.get(key);
    if (s === undefined) s = this.#newHttpSeries(key, r);
    s.count++;
    const b = this.#buckets;
    const dur = r.durationMs;
    s.duration[bucketIndex(b, dur)]++;
    s.durationSum += dur;
    s.requestBytes[bucketIndex(b, r.requestBytes)]++;
    s.requestBytesSum += r.requestBytes;
    s.responseBytes[bucketIndex(b, r.responseBytes)]++;
    s.responseBytesSum += r.responseBytes;
  }

  #newHttpSeries(key: string, r: RequestRecord): HttpSeries {
    if (this.#http.size >= this.#maxSeries) {
      const overflow = this.#http.get("overflow");
      if (overflow !== undefined) return overflow;
      const labels = this.#httpLabels(r);
      for (const k of [
        "source_workload",
        "source_principal",
        "destination_workload",
        "destination_principal",
        "destination_service",
        "destination_service_name",
        "response_code",
      ] as const) {
        labels[k] = "overflow";
      }
      const s = new HttpSeries(labels, this.#buckets.length);
      this.#http.set("overflow", s);
      return s;
    }
    const s = new HttpSeries(this.#httpLabels(r), this.#buckets.length);
    this.#http.set(key, s);
    return s;
  }

  #destinationService(service: string, namespace: string): [host: string, name: string, namespace: string] {
    if (service === "") return ["unknown", "unknown", unknown(namespace)];
    const dot = service.indexOf(".");
    if (dot < 0) {
      const ns = unknown(namespace);
      return [`${service}.${ns}.svc.${this.#clusterDomain}`, service, ns];
    }
    // Already a host name: name.namespace[.svc.cluster.local] or an external host.
    const rest = service.slice(dot + 1);
    const second = rest.split(".")[0]!;
    return [service, service.slice(0, dot), namespace || second];
  }

  #sides(direction: Direction, peer: PeerInfo | undefined, mtls: boolean, service: string, serviceNamespace: string) {
    const n = this.#node;
    const local = {
      workload: n.workload,
      namespace: n.namespace,
      principal: mtls ? this.#localPrincipal : "unknown",
      app: this.#localApp,
    };
    const remote = {
      workload: unknown(peer?.workload),
      namespace: unknown(peer?.namespace),
      principal: mtls && peer?.principal ? peer.principal : "unknown",
      app: "unknown",
    };
    let svc: [string, string, string];
    if (direction === "inbound") {
      svc = this.#destinationService(service || n.service, serviceNamespace || n.namespace);
      remote.app = remote.workload;
    } else {
      svc = this.#destinationService(service, serviceNamespace);
      remote.app = svc[1] !== "unknown" ? svc[1] : remote.workload;
      if (peer?.namespace === "" || peer?.namespace === undefined) remote.namespace = unknown(svc[2] === "unknown" ? "" : svc[2]);
    }
    const src = direction === "inbound" ? remote : local;
    const dst = direction === "inbound" ? local : remote;
    return {
      reporter: direction === "inbound" ? "destination" : "source",
      source_workload: src.workload,
      source_canonical_service: src.app,
      source_canonical_revision: "latest",
      source_workload_namespace: src.namespace,
      source_principal: src.principal,
      source_app: src.app,
      source_version: "unknown",
      source_cluster: this.#clusterId,
      destination_workload: dst.workload,
      destination_workload_namespace: dst.namespace,
      destination_principal: dst.principal,
      destination_app: dst.app,
      destination_version: "unknown",
      destination_service: svc[0],
      destination_canonical_service: dst.app,
      destination_canonical_revision: "latest",
      destination_service_name: svc[1],
      destination_service_namespace: svc[2],
      destination_cluster: this.#clusterId,
    };
  }

  #httpLabels(r: RequestRecord): IstioLabels {
    const inbound = r.direction === "inbound";
    const peer = inbound
      ? r.source
      : { workload: r.destination.workload, namespace: r.destination.namespace, principal: r.destination.principal };
    const sides = this.#sides(r.direction, peer, r.mtls, r.destination.service, r.destination.namespace);
    return {
      ...sides,
      request_protocol: r.grpc === true ? "grpc" : "http",
      response_code: String(r.status),
      grpc_response_status: r.grpcStatus === undefined ? "" : String(r.grpcStatus),
      response_flags: r.responseFlag === "" ? "-" : r.responseFlag,
      connection_security_policy: r.mtls ? "mutual_tls" : "none",
    };
  }

  #tcpSeries(direction: Direction, info: ConnectionInfo | undefined): TcpSeries {
    const p = info?.peer;
    const key =
      direction +
      SEP +
      (p ? p.workload + SEP + p.namespace + SEP + p.principal : "") +
      SEP +
      (info?.service ?? "") +
      SEP +
      (info?.serviceNamespace ?? "") +
      SEP +
      (info?.mtls ? "1" : "0");
    let s = this.#tcp.get(key);
    if (s === undefined) {
      if (this.#tcp.size >= this.#maxSeries) return this.#tcpSeries(direction, undefined);
      const mtls = info?.mtls === true;
      s = new TcpSeries({
        ...this.#sides(direction, p, mtls, info?.service ?? "", info?.serviceNamespace ?? ""),
        request_protocol: "tcp",
        response_flags: "-",
        connection_security_policy: mtls ? "mutual_tls" : "none",
      });
      this.#tcp.set(key, s);
    }
    return s;
  }

  connectionOpened(direction: Direction, info?: ConnectionInfo): ConnectionMeter {
    this.#active[direction]++;
    const series = this.#tcpSeries(direction, info);
    series.opened++;
    return {
      received: (bytes) => {
        series.received += bytes;
      },
      sent: (bytes) => {
        series.sent += bytes;
      },
    };
  }

  connectionClosed(direction: Direction, info?: ConnectionInfo): void {
    this.#active[direction]--;
    this.#tcpSeries(direction, info).closed++;
  }

  /** The Prometheus text exposition: this proxy's metrics, then the process metrics. */
  async metricsText(): Promise<string> {
    const own = await this.registry.metrics();
    if (!this.#defaultMetrics) return own;
    return own + "\n" + (await defaultMetricsRegistry().metrics());
  }
}
