// What local mode's dashboard shows: the sidecars connected to this control plane with the
// ports weft up gave them (their metrics are scraped there), the certificates this CA issued,
// and every WasmFilter's status as a cluster would write it.
import { formatSpiffeId } from "../../proxy/identity/spiffe.ts";
import type { DashboardSource } from "../dashboard/model.ts";
import { filterView, proxyView } from "../dashboard/views.ts";
import { reportOf } from "../push/report.ts";
import type { LocalControl } from "./control.ts";

export function localDashboardSource(control: LocalControl): DashboardSource {
  const { plane, mesh } = control;
  return {
    proxies: () => {
      const instances = new Map(mesh.instances().map((i) => [`${i.namespace}/${i.pod}`, i]));
      return reportOf(plane.hub.connected).map((entry) => {
        const instance = instances.get(entry.pod);
        const view = proxyView(entry, instance?.workload, plane.distribution);
        const spiffeId = instance
          ? formatSpiffeId({
              trustDomain: plane.settings.trustDomain,
              namespace: view.namespace,
              serviceAccount: instance.spec.serviceAccount,
            })
          : null;
        const certificate = spiffeId ? control.certificates.get(spiffeId) : undefined;
        return {
          ...view,
          ...(spiffeId && certificate ? { certificate: { spiffeId, notAfter: certificate.notAfter.toISOString() } } : {}),
          ...(instance ? { adminUrl: `http://127.0.0.1:${instance.ports.admin}` } : {}),
        };
      });
    },
    filters: () => {
      const statuses = control.filterStatus();
      return [...plane.world.wasmFilters.values()].map((f) => filterView(f, statuses.get(`${f.metadata.namespace}/${f.metadata.name}`)));
    },
  };
}
