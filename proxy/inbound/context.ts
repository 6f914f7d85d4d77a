// The inbound side of the sidecar: requests from other workloads to the local app. It
// learns who the caller is from its mesh certificate and tells the app in
// x-forwarded-client-cert; what a plaintext caller claims about identity is removed.
import type { NodeInfo } from "../config/schema.ts";
import type { ForwardContext } from "../forwarder/forward.ts";
import type { Router } from "../routing/router.ts";
import type { UpstreamCluster } from "../upstream/cluster.ts";
import type { Telemetry } from "../telemetry/types.ts";
import type { ServerExchange } from "../http/exchange.ts";
import { removeHeader } from "../http/headers.ts";
import { peerOf } from "../identity/peer.ts";

export function inboundContext(
  node: NodeInfo,
  ownPrincipal: string,
  router: Router,
  clusters: ReadonlyMap<string, UpstreamCluster>,
  telemetry: Telemetry,
): ForwardContext {
  const destination = {
    service: node.service,
    namespace: node.namespace,
    workload: node.workload,
    principal: ownPrincipal,
    cluster: "",
  };
  return {
    direction: "inbound",
    router,
    clusters,
    telemetry,
    describe: (exchange: ServerExchange, cluster: UpstreamCluster | null) => ({
      source: peerOf(exchange.peerTls),
      destination: cluster ? { ...destination, cluster: cluster.config.name } : destination,
    }),
    decorate: (headers: string[], exchange: ServerExchange) => {
      removeHeader(headers, "x-forwarded-client-cert");
      const peer = peerOf(exchange.peerTls);
      if (peer.principal) {
        headers.push("x-forwarded-client-cert", `By=${ownPrincipal};URI=${peer.principal}`);
      }
    },
  };
}
