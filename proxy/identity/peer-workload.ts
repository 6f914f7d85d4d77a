// Which workload is on the other end of an mTLS hop, for the metrics' source_workload (inbound)
// and destination_workload (outbound). A certificate names only the ServiceAccount, which
// several workloads may share (catalog-v1 and catalog-v2 both run as sa/catalog), so, as Istio's
// metadata exchange does, each sidecar tells its mesh peer its own workload in a header: the
// caller's sidecar on the request, the callee's on the response. Only a peer that proved a mesh
// identity over mTLS is believed, and the header never reaches an app: sidecars remove what
// arrives from one and set it themselves.
import { headerValue, removeHeader } from "../http/headers.ts";
import type { TlsInfo } from "../runtime/types.ts";
import type { PeerInfo } from "../telemetry/types.ts";
import { peerOf } from "./peer.ts";

export const PEER_WORKLOAD_HEADER = "x-weft-peer-workload";

// A Kubernetes object name (what a workload is named by): anything else is not a sidecar's claim.
const WORKLOAD_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** The workload a mesh peer's sidecar claims in `headers`, or "" when none (or not a name). */
export function claimedWorkload(headers: string[]): string {
  const value = headerValue(headers, PEER_WORKLOAD_HEADER);
  return value !== undefined && WORKLOAD_NAME.test(value) ? value : "";
}

/** Replaces whatever the app or the peer wrote with this sidecar's own claim, or none (`workload` ""). */
export function tellWorkload(headers: string[], workload: string): void {
  removeHeader(headers, PEER_WORKLOAD_HEADER);
  if (workload !== "") headers.push(PEER_WORKLOAD_HEADER, workload);
}

// One object per connection and workload: the requests of a connection come from one sidecar.
const named = new WeakMap<TlsInfo, PeerInfo>();

/** The downstream peer (peerOf) with the workload its sidecar names in the request, when it is a mesh peer. */
export function downstreamPeer(tls: TlsInfo | null, headers: string[]): PeerInfo {
  const peer = peerOf(tls);
  if (tls === null || peer.principal === "") return peer;
  const workload = claimedWorkload(headers);
  if (workload === "") return peer;
  let withName = named.get(tls);
  if (withName === undefined || withName.workload !== workload) named.set(tls, (withName = { ...peer, workload }));
  return withName;
}
