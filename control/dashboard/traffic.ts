// One scrape of a sidecar reduced to what the traffic graph needs: for each caller/callee
// pair the proxy reported, its request and 5xx counts and its latency histogram, summed over
// the series that differ only in response code, protocol, flags and the like.
import type { Sample } from "./prometheus.ts";

export const REQUESTS = "istio_requests_total";
export const DURATION_BUCKETS = "istio_request_duration_milliseconds_bucket";

/** The families worth reading from a scrape (the rest are skipped unparsed). */
export const isTrafficMetric = (name: string): boolean => name === REQUESTS || name === DURATION_BUCKETS;

/** The labels that tell traffic apart in the graph. */
export interface TrafficKey {
  reporter: "source" | "destination";
  sourceWorkload: string;
  sourceNamespace: string;
  sourcePrincipal: string;
  destinationWorkload: string;
  destinationNamespace: string;
  destinationService: string;
  destinationServiceName: string;
  destinationServiceNamespace: string;
}

export interface Counters {
  requests: number;
  /** Responses with a 5xx status. */
  errors: number;
  /** Cumulative latency histogram: upper bound in ms (Infinity for +Inf) -> count. */
  buckets: Map<number, number>;
}

export interface Traffic {
  key: TrafficKey;
  counters: Counters;
}

function keyOf(labels: Record<string, string>): TrafficKey | null {
  const reporter = labels.reporter;
  if (reporter !== "source" && reporter !== "destination") return null;
  const label = (name: string) => labels[name] || "unknown";
  return {
    reporter,
    sourceWorkload: label("source_workload"),
    sourceNamespace: label("source_workload_namespace"),
    sourcePrincipal: label("source_principal"),
    destinationWorkload: label("destination_workload"),
    destinationNamespace: label("destination_workload_namespace"),
    destinationService: label("destination_service"),
    destinationServiceName: label("destination_service_name"),
    destinationServiceNamespace: label("destination_service_namespace"),
  };
}

/** The traffic in one scrape, by a string form of its key. Samples without a reporter are not Istio's request metrics and are ignored. */
export function trafficOf(samples: readonly Sample[]): Map<string, Traffic> {
  const out = new Map<string, Traffic>();
  for (const s of samples) {
    if (!isTrafficMetric(s.name)) continue;
    const key = keyOf(s.labels);
    if (key === null) continue;
    const id = JSON.stringify(Object.values(key));
    let t = out.get(id);
    if (t === undefined) out.set(id, (t = { key, counters: { requests: 0, errors: 0, buckets: new Map() } }));
    if (s.name === REQUESTS) {
      t.counters.requests += s.value;
      if (/^5\d\d$/.test(s.labels.response_code ?? "")) t.counters.errors += s.value;
    } else {
      const le = s.labels.le === undefined ? NaN : s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
      if (Number.isNaN(le)) continue;
      t.counters.buckets.set(le, (t.counters.buckets.get(le) ?? 0) + s.value);
    }
  }
  return out;
}
