// What a listener (inbound or outbound) gives the request path: its route table, clusters,
// filters and telemetry, and the few things that differ by direction.
import type { NodeInfo } from "../config/schema.ts";
import type { FilterChain } from "../filters/chain.ts";
import type { AccessCheck } from "../inbound/authorization.ts";
import type { ServerExchange } from "../http/exchange.ts";
import type { Router } from "../routing/router.ts";
import type { DestinationInfo, Direction, PeerInfo, Telemetry } from "../telemetry/types.ts";
import type { UpstreamCluster } from "../upstream/cluster.ts";

/** What a listener's context is built from, whatever its direction. */
export interface ContextInputs {
  readonly node: NodeInfo;
  /** This proxy's own SPIFFE ID. */
  readonly ownPrincipal: string;
  readonly router: Router;
  readonly clusters: ReadonlyMap<string, UpstreamCluster>;
  readonly telemetry: Telemetry;
  readonly filters: FilterChain;
  /**
   * For filters attached by port (match.ports): the port every request on this listener is
   * delivered to (inbound: the app's), or null to take the port of each request's authority.
   */
  readonly port: number | null;
  /** The listener's access policies, compiled once for its HTTP requests and TCP connections alike (inbound only). */
  readonly access?: AccessCheck;
  /** Why no route matched, said in the 404 (the listener's noRouteReason). */
  readonly noRouteReason?: string;
}

/** What the listener (inbound or outbound) contributes to each request. */
export interface ForwardContext {
  readonly direction: Direction;
  readonly router: Router;
  readonly clusters: ReadonlyMap<string, UpstreamCluster>;
  readonly telemetry: Telemetry;
  readonly filters: FilterChain;
  /** As ContextInputs.port. */
  readonly port: number | null;
  /**
   * Who sent the request and who it is for, for metrics and logs; `answeredBy` is the workload
   * the upstream's response named (decorateResponse), "" when it named none.
   */
  describe(
    exchange: ServerExchange,
    cluster: UpstreamCluster | null,
    answeredBy: string,
  ): { source: PeerInfo; destination: DestinationInfo };
  /** Direction-specific request headers (client-certificate details, the workload told to a mesh peer, spoofing protection). */
  decorate(headers: string[], exchange: ServerExchange, cluster: UpstreamCluster | null): void;
  /**
   * Direction-specific headers of the upstream's response head, before any stage sees it (the
   * workload told to a mesh peer); returns the workload the response names as having answered, or "".
   */
  decorateResponse(headers: string[], exchange: ServerExchange, cluster: UpstreamCluster | null): string;
  /** Why the request is refused before anything else runs (access policies), or null. */
  refuse?(exchange: ServerExchange): string | null;
  /** Why no route matched, said in the 404. */
  readonly noRouteReason?: string;
}
