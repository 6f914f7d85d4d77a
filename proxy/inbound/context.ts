// The inbound side of the sidecar: requests from other workloads to the local app. It
// learns who the caller is from its mesh certificate (and its workload from the caller's
// sidecar) and tells the app in x-forwarded-client-cert; what a plaintext caller claims about
// identity is removed. A mesh caller's sidecar is told which workload answered.
import type { ContextInputs, ForwardContext } from "../forwarder/context.ts";
import type { DestinationInfo } from "../telemetry/types.ts";
import type { UpstreamCluster } from "../upstream/cluster.ts";
import type { ServerExchange } from "../http/exchange.ts";
import { removeHeader } from "../http/headers.ts";
import { peerOf } from "../identity/peer.ts";
import { downstreamPeer, tellWorkload } from "../identity/peer-workload.ts";

export function inboundContext({
  node,
  ownPrincipal,
  router,
  clusters,
  telemetry,
  filters,
  port,
  access: check,
}: ContextInputs): ForwardContext {
  const destination = {
    service: node.service,
    namespace: node.namespace,
    workload: node.workload,
    principal: ownPrincipal,
    cluster: "",
  };
  // Once per cluster and configuration version, not per request.
  const perCluster = new Map<string, DestinationInfo>();
  const destinationFor = (name: string): DestinationInfo => {
    let found = perCluster.get(name);
    if (!found) perCluster.set(name, (found = { ...destination, cluster: name }));
    return found;
  };
  return {
    direction: "inbound",
    router,
    clusters,
    telemetry,
    filters,
    port,
    describe: (exchange: ServerExchange, cluster: UpstreamCluster | null) => ({
      source: downstreamPeer(exchange.peerTls, exchange.headers),
      destination: cluster ? destinationFor(cluster.config.name) : destination,
    }),
    ...(check
      ? {
          refuse: (exchange: ServerExchange) => {
            const peer = peerOf(exchange.peerTls);
            return check({
              principal: peer.principal,
              namespace: peer.namespace,
              http: { method: exchange.method, target: exchange.target },
            });
          },
        }
      : {}),
    decorate: (headers: string[], exchange: ServerExchange) => {
      removeHeader(headers, "x-forwarded-client-cert");
      tellWorkload(headers, ""); // the caller's sidecar told this sidecar, not the app
      const peer = peerOf(exchange.peerTls);
      if (peer.principal) {
        headers.push("x-forwarded-client-cert", `By=${ownPrincipal};URI=${peer.principal}`);
      }
    },
    decorateResponse: (headers: string[], exchange: ServerExchange) => {
      tellWorkload(headers, peerOf(exchange.peerTls).principal ? node.workload : "");
      return "";
    },
  };
}
