// The outbound side of the sidecar: requests from the local app to other services, routed
// by Host or :authority, with mTLS originated per cluster.
import type { ContextInputs, ForwardContext } from "../forwarder/context.ts";
import type { DestinationInfo } from "../telemetry/types.ts";

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
    describe: (_exchange, cluster) => {
      const name = cluster?.config.name ?? "";
      // Once per cluster and configuration version, not per request.
      let destination = destinations.get(name);
      if (!destination) {
        destination = {
          service: cluster?.config.service ?? "",
          namespace: cluster?.config.namespace ?? "",
          workload: cluster?.config.workload ?? "",
          principal: cluster?.config.tls?.identities[0] ?? "",
          cluster: name,
        };
        destinations.set(name, destination);
      }
      return { source, destination };
    },
    decorate: () => {},
  };
}
