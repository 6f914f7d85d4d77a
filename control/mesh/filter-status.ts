// A WasmFilter's status from what the control plane knows: whether its spec was accepted, what
// its url resolved to, and how many of the sidecars it selects run it. The cluster writes it to
// the status subresource; local mode shows it on the dashboard.
import type { FilterDistribution } from "../distribution/filters.ts";
import type { ProxyReportEntry } from "../push/report.ts";
import { conditionsFrom } from "../resources/condition.ts";
import type { WasmFilter, WasmFilterStatus } from "../resources/wasm-filter.ts";
import { keyOf, targets, type MeshWorld } from "./world.ts";

/** `sidecars`: one entry per pod, whichever replica of the control plane it is connected to. */
export function wasmFilterStatus(world: MeshWorld, distribution: FilterDistribution, filter: WasmFilter, sidecars: Iterable<ProxyReportEntry>, now: string): WasmFilterStatus {
  const key = keyOf(filter.metadata.namespace, filter.metadata.name);
  const state = distribution.state(filter.metadata.namespace, filter.metadata.name);
  const generation = (filter.metadata as { generation?: number }).generation ?? 0;
  let selected = 0;
  let running = 0;
  const failing: string[] = [];
  for (const s of sidecars) {
    const pod = world.pods.get(s.pod);
    if (!pod || !targets(world, filter.metadata.namespace, filter.spec, pod)) continue;
    selected++;
    if (s.running !== null && s.running === s.sent && s.filters.includes(key)) running++;
    const cannot = s.unavailable?.find((u) => u.filter === key);
    if (cannot) failing.push(`${s.pod}: ${cannot.reason}`);
  }
  const sha256 = state?.sha256 ?? undefined;
  return {
    conditions: conditionsFrom(
      [
        state ? { type: "Accepted", ...state.accepted } : { type: "Accepted", ok: null, reason: "Pending", message: "not checked yet" },
        state?.resolved ? { type: "Resolved", ...state.resolved } : { type: "Resolved", ok: null, reason: "Pending", message: "resolving the url" },
        {
          type: "Ready",
          ok: selected > 0 && running === selected && sha256 !== undefined,
          reason: selected === 0 ? "NoProxiesSelected" : running === selected ? "Running" : failing.length > 0 ? "LoadFailed" : "Updating",
          message: `${running} of ${selected} selected proxies run ${sha256 ? `sha256:${sha256}` : "no module yet"}${failing.length > 0 ? `; ${failing.length} cannot load it (${failing.slice(0, 3).join("; ")}), so its failStrategy applies there` : ""}`,
        },
      ],
      filter.status?.conditions,
      generation,
      now,
    ),
    ...(sha256 ? { sha256 } : {}),
    ready: `${running}/${selected}`,
  };
}
