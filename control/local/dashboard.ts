// What local mode's dashboard shows: the sidecars connected to this control plane with the
// ports weft up gave them (their metrics are scraped there), the certificates this CA issued,
// and every WasmFilter's status as a cluster would write it.
import { formatSpiffeId } from "../../proxy/identity/spiffe.ts";
import type { DashboardSource, FilterView } from "../dashboard/model.ts";
import { reportOf } from "../push/report.ts";
import type { LocalControl } from "./control.ts";

export function localDashboardSource(control: LocalControl): DashboardSource {
  const { plane, mesh } = control;
  return {
    proxies: () => {
      const instances = new Map(mesh.instances().map((i) => [`${i.namespace}/${i.pod}`, i]));
      return reportOf(plane.hub.connected).map((entry) => {
        const instance = instances.get(entry.pod);
        const [namespace, pod] = entry.pod.split("/") as [string, string];
        const spiffeId = instance ? formatSpiffeId({ trustDomain: plane.settings.trustDomain, namespace, serviceAccount: instance.spec.serviceAccount }) : null;
        const certificate = spiffeId ? control.certificates.get(spiffeId) : undefined;
        return {
          namespace,
          pod,
          workload: instance?.labels.app ?? instance?.workload ?? pod,
          version: entry.sent,
          acked: entry.running,
          rejected: entry.rejected ?? null,
          filters: entry.filters.map((name) => {
            const [ns, n] = name.split("/") as [string, string];
            return { name, sha256: plane.distribution.state(ns, n)?.sha256 ?? "" };
          }),
          ...(spiffeId && certificate ? { certificate: { spiffeId, notAfter: certificate.notAfter.toISOString() } } : {}),
          ...(instance ? { adminUrl: `http://127.0.0.1:${instance.ports.admin}` } : {}),
        };
      });
    },
    filters: () => {
      const statuses = control.filterStatus();
      return [...plane.world.wasmFilters.values()].map((f): FilterView => {
        const status = statuses.get(`${f.metadata.namespace}/${f.metadata.name}`);
        return {
          namespace: f.metadata.namespace,
          name: f.metadata.name,
          url: f.spec.url,
          ...(status?.sha256 ? { sha256: status.sha256 } : {}),
          ready: status?.ready ?? "0/0",
          conditions: (status?.conditions ?? []).map((c) => ({ type: c.type, status: c.status, reason: c.reason, message: c.message })),
        };
      });
    },
  };
}
