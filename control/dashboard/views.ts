// The dashboard's rows from what every control plane has, local or in a cluster: a sidecar's
// report entry and a WasmFilter's status. Each source adds what only it knows (where a
// sidecar's metrics are, its certificate).
import type { FilterDistribution } from "../distribution/filters.ts";
import type { WasmFilter, WasmFilterStatus } from "../resources/wasm-filter.ts";
import type { ProxyReportEntry } from "../push/report.ts";
import type { FilterView, ProxyView } from "./model.ts";

/** A sidecar as its report says, named by its pod and labelled with `workload`. */
export function proxyView(entry: ProxyReportEntry, workload: string | undefined, distribution: FilterDistribution): ProxyView {
  const [namespace, pod] = entry.pod.split("/") as [string, string];
  return {
    namespace,
    pod,
    workload: workload ?? pod,
    version: entry.sent,
    acked: entry.running,
    rejected: entry.rejected ?? null,
    filters: entry.filters.map((name) => {
      const [ns, n] = name.split("/") as [string, string];
      return { name, sha256: distribution.state(ns, n)?.sha256 ?? "" };
    }),
  };
}

export function filterView(f: WasmFilter, status: WasmFilterStatus | undefined): FilterView {
  return {
    namespace: f.metadata.namespace,
    name: f.metadata.name,
    url: f.spec.url,
    ...(status?.sha256 ? { sha256: status.sha256 } : {}),
    ready: status?.ready ?? "0/0",
    conditions: (status?.conditions ?? []).map((c) => ({ type: c.type, status: c.status, reason: c.reason, message: c.message })),
  };
}
