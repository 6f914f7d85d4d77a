// What the dashboard shows, and what the control plane hands it: the proxies it knows (from
// the push hub and the replicas' reports), the WasmFilters with their status, and where each
// proxy's metrics can be scraped. The traffic graph is computed from those metrics.

export interface ProxyView {
  namespace: string;
  pod: string;
  /** The workload the proxy serves, as its metrics name it (its Deployment; its LocalWorkload in local mode). */
  workload: string;
  /** The configuration version last sent to it, or null before the first. */
  version: string | null;
  /** The version it acknowledged running, or null. */
  acked: string | null;
  /** The last version it refused, with its reason. */
  rejected: { version: string; error: string } | null;
  /** The WasmFilters it runs: name is "namespace/name". */
  filters: { name: string; sha256: string }[];
  certificate?: { spiffeId: string; notAfter: string };
  /** Its admin API, e.g. http://10.0.3.7:15000: metrics are scraped from adminUrl + "/metrics". */
  adminUrl?: string;
}

export interface FilterCondition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
}

export interface FilterView {
  namespace: string;
  name: string;
  url: string;
  /** The digest it resolved to. */
  sha256?: string;
  /** How many of the selected proxies run it, "N/M". */
  ready: string;
  conditions: FilterCondition[];
}

export interface DashboardSource {
  proxies(): ProxyView[];
  filters(): FilterView[];
}

/** The last scrape of a proxy's metrics. */
export interface ScrapeView {
  /** unreachable: no answer or an HTTP error; unreadable: the answer is not the Prometheus text format or is too large. */
  state: "ok" | "unreachable" | "unreadable" | "no metrics address" | "pending";
  /** What went wrong. */
  error?: string;
  /** When it was last scraped successfully (ISO). */
  lastSuccess?: string;
}

/** A proxy as the page shows it: without its admin address. */
export type ProxyRow = Omit<ProxyView, "adminUrl"> & { scrape: ScrapeView };

/** A workload in the graph: "namespace/name"; name "unknown" for callers without an identity. */
export interface NodeView {
  id: string;
  namespace: string;
  name: string;
  /** Whether a proxy of the dashboard's source serves it. */
  sidecar: boolean;
}

export interface EdgeView {
  /** "source node id->destination node id". */
  id: string;
  source: string;
  destination: string;
  /** The destination services' host names as the reporters labelled them. */
  services: string[];
  /** Whose counters these are: the calling sidecar's ("source"), the called one's ("destination"). */
  reporters: ("source" | "destination")[];
  /** Requests counted since the reporting proxies started. */
  requestsTotal: number;
  /** Over the window; null until a proxy has been scraped twice in it. */
  requestsPerSecond: number | null;
  /** Share of 5xx responses among the requests in the window; null when there were none. */
  errorRate: number | null;
  /** 99th percentile latency in the window (ms); null when there were no requests. */
  p99Ms: number | null;
  /** How much time the rates cover (s): from the oldest to the newest scrape in the window. */
  windowSeconds: number | null;
}

export interface DashboardState {
  generatedAt: string;
  proxies: ProxyRow[];
  filters: FilterView[];
  nodes: NodeView[];
  edges: EdgeView[];
}
