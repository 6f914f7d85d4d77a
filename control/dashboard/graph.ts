// The traffic graph from the proxies' recent scrapes: who calls whom, how often, how many
// of those calls fail and how slow the slowest 1% are, over a sliding window.
//
// Every request between two sidecars is counted twice, by the caller's (reporter="source")
// and the callee's (reporter="destination") proxy. Each request is counted once here, from
// the caller's report when the caller has a sidecar whose metrics we have: it also sees
// the requests that never reached the callee (no healthy endpoint, connect failures,
// timeouts) and the latency the caller experiences. The callee's report is used for the
// callers that report nothing themselves: apps without a sidecar, and sidecars that are
// unreachable. A callee's series is the caller's own when its source_principal (the
// caller's SPIFFE ID, known from mTLS) is one that some caller reports as its own.
// Without mTLS the callee cannot tell who called, so that traffic also appears from an
// "unknown" caller, as in Istio.
import type { EdgeView, NodeView } from "./model.ts";
import { histogramQuantile } from "./quantile.ts";
import type { Counters, TrafficKey } from "./traffic.ts";
import type { WindowSummary } from "./window.ts";

export interface Workload {
  namespace: string;
  name: string;
}

export interface GraphInput {
  /** Each proxy's traffic in the window. */
  windows: Iterable<WindowSummary>;
  /** The workload holding a SPIFFE ID, where the source knows it (from the proxies' certificates). */
  workloadOf: ReadonlyMap<string, Workload>;
  /** Workloads with a sidecar: drawn even when idle. */
  sidecars: readonly Workload[];
}

const UNKNOWN = "unknown";
const nodeId = (w: Workload) => (w.namespace === UNKNOWN ? w.name : `${w.namespace}/${w.name}`);

function add(into: Counters, c: Counters): void {
  into.requests += c.requests;
  into.errors += c.errors;
  for (const [le, count] of c.buckets) into.buckets.set(le, (into.buckets.get(le) ?? 0) + count);
}

function ends(key: TrafficKey, workloadOf: ReadonlyMap<string, Workload>): [Workload, Workload] {
  let source: Workload = { namespace: key.sourceNamespace, name: key.sourceWorkload };
  if (key.reporter === "destination" && source.name === UNKNOWN) source = workloadOf.get(key.sourcePrincipal) ?? source;
  // A cluster that names no workload (a static configuration) still names its service.
  const destination: Workload =
    key.destinationWorkload !== UNKNOWN
      ? { namespace: key.destinationNamespace, name: key.destinationWorkload }
      : { namespace: key.destinationServiceNamespace, name: key.destinationServiceName };
  return [source, destination];
}

interface Accumulated {
  source: Workload;
  destination: Workload;
  services: Set<string>;
  reporters: Set<"source" | "destination">;
  total: number;
  increase: Counters;
  rate: number | null;
  windowSeconds: number | null;
}

export function graphOf(input: GraphInput): { nodes: NodeView[]; edges: EdgeView[] } {
  const windows = [...input.windows];
  const selfReported = new Set<string>();
  for (const w of windows)
    for (const s of w.series) if (s.key.reporter === "source" && s.key.sourcePrincipal !== UNKNOWN) selfReported.add(s.key.sourcePrincipal);

  const edges = new Map<string, Accumulated>();
  for (const w of windows) {
    for (const s of w.series) {
      if (s.key.reporter === "destination" && selfReported.has(s.key.sourcePrincipal)) continue;
      const [source, destination] = ends(s.key, input.workloadOf);
      const edgeId = `${nodeId(source)}->${nodeId(destination)}`;
      let e = edges.get(edgeId);
      if (e === undefined) {
        e = {
          source,
          destination,
          services: new Set(),
          reporters: new Set(),
          total: 0,
          increase: { requests: 0, errors: 0, buckets: new Map() },
          rate: null,
          windowSeconds: null,
        };
        edges.set(edgeId, e);
      }
      e.services.add(s.key.destinationService);
      e.reporters.add(s.key.reporter);
      e.total += s.total;
      add(e.increase, s.increase);
      if (w.seconds > 0) {
        e.rate = (e.rate ?? 0) + s.increase.requests / w.seconds;
        e.windowSeconds = Math.max(e.windowSeconds ?? 0, w.seconds);
      }
    }
  }

  const nodes = new Map<string, NodeView>();
  const addNode = (w: Workload, sidecar: boolean) => {
    const id = nodeId(w);
    const known = nodes.get(id);
    if (known === undefined) nodes.set(id, { id, namespace: w.namespace, name: w.name, sidecar });
    else known.sidecar ||= sidecar;
  };
  for (const w of input.sidecars) addNode(w, true);
  const out: EdgeView[] = [];
  for (const [id, e] of [...edges].sort(([a], [b]) => a.localeCompare(b))) {
    addNode(e.source, false);
    addNode(e.destination, false);
    const requests = e.increase.requests;
    out.push({
      id,
      source: nodeId(e.source),
      destination: nodeId(e.destination),
      services: [...e.services].sort(),
      reporters: [...e.reporters].sort(),
      requestsTotal: e.total,
      requestsPerSecond: e.rate,
      errorRate: requests > 0 ? e.increase.errors / requests : null,
      p99Ms:
        requests > 0
          ? histogramQuantile(
              0.99,
              [...e.increase.buckets].map(([le, count]) => ({ le, count })),
            )
          : null,
      windowSeconds: e.windowSeconds,
    });
  }
  return { nodes: [...nodes.values()].sort((a, b) => a.id.localeCompare(b.id)), edges: out };
}
