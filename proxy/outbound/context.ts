// The outbound side of the sidecar: requests from the local app to other services, routed
// by Host or :authority, with mTLS originated per cluster. Over mTLS the sidecars tell each
// other their workloads (identity/peer-workload.ts): the metrics name the workload that
// answered, not only the Service that was called.
import type { ContextInputs, ForwardContext } from "../forwarder/context.ts";
import { claimedWorkload, tellWorkload } from "../identity/peer-workload.ts";
import type { DestinationInfo } from "../telemetry/types.ts";
import type { UpstreamCluster } from "../upstream/cluster.ts";

const mesh = (cluster: UpstreamCluster | null) => cluster !== null && cluster.config.tls !== undefined;
const MAX_DESTINATIONS = 4096;

export function outboundContext({
  node,
  ownPrincipal,
  router,
  clusters,
  telemetry,
  filters,
  port,
  noRouteReason,
}: ContextInputs): ForwardContext {
  const source = { principal: ownPrincipal, workload: node.workload, namespace: node.namespace };
  const destinations = new Map<string, DestinationInfo>();
  return {
    direction: "outbound",
    router,
    clusters,
    telemetry,
    filters,
    port,
    ...(noRouteReason ? { noRouteReason } : {}),
    describe: (_exchange, cluster, answeredBy) => {
      const name = cluster?.config.name ?? "";
      const workload = answeredBy || (cluster?.config.workload ?? "");
      // Once per cluster, answering workload and configuration version, not per request.
      const key = `${name}\u0001${workload}`;
      let destination = destinations.get(key);
      if (!destination) {
        destination = {
          service: cluster?.config.service ?? "",
          namespace: cluster?.config.namespace ?? "",
          workload,
          principal: cluster?.config.tls?.identities[0] ?? "",
          cluster: name,
        };
        // A peer names its own workload: however many names peers send, the cache stays bounded.
        if (destinations.size < MAX_DESTINATIONS) destinations.set(key, destination);
      }
      return { source, destination };
    },
    // Only a mesh peer (mTLS) is told this workload's name, and only its answer is believed;
    // whatever the app wrote is dropped, so it can never pose as another workload.
    decorate: (headers, _exchange, cluster) => tellWorkload(headers, mesh(cluster) ? node.workload : ""),
    decorateResponse: (headers, _exchange, cluster) => {
      const answeredBy = mesh(cluster) ? claimedWorkload(headers) : "";
      tellWorkload(headers, "");
      return answeredBy;
    },
  };
}
