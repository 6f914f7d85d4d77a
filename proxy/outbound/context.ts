// The outbound side of the sidecar: requests from the local app to other services, routed
// by Host or :authority, with mTLS originated per cluster.
import type { ContextInputs, ForwardContext } from "../forwarder/forward.ts";

export function outboundContext({ node, ownPrincipal, router, clusters, telemetry }: ContextInputs): ForwardContext {
  const source = { principal: ownPrincipal, workload: node.workload, namespace: node.namespace };
  return {
    direction: "outbound",
    router,
    clusters,
    telemetry,
    describe: (_exchange, cluster) => ({
      source,
      destination: {
        service: cluster?.config.service ?? "",
        namespace: cluster?.config.namespace ?? "",
        workload: cluster?.config.workload ?? "",
        principal: cluster?.config.tls?.identities[0] ?? "",
        cluster: cluster?.config.name ?? "",
      },
    }),
    decorate: () => {},
  };
}
