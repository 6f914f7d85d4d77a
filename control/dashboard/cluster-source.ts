// What the dashboard shows in a cluster: every replica's sidecars (from their reports), each
// scraped at its pod's IP on the admin port, where /metrics answers the network (the rest of
// the admin API answers the pod's loopback only), and every WasmFilter's status as the leader
// wrote it: what kubectl shows.
import type { Controller } from "../controller.ts";
import type { DashboardSource } from "./model.ts";
import { filterView, proxyView } from "./views.ts";

export function clusterDashboardSource(controller: Controller, adminPort: number): DashboardSource {
  const { world, distribution } = controller;
  return {
    proxies: () =>
      controller.sidecars().map((entry) => {
        const pod = world.pods.get(entry.pod);
        const view = proxyView(entry, pod?.workload, distribution);
        return { ...view, ...(pod?.ip ? { adminUrl: `http://${pod.ip.includes(":") ? `[${pod.ip}]` : pod.ip}:${adminPort}` } : {}) };
      }),
    filters: () => [...world.wasmFilters.values()].map((f) => filterView(f, f.status)),
  };
}
