// Who is on the other end of a downstream connection, from its certificate.
import type { TlsInfo } from "../runtime/types.ts";
import type { PeerInfo } from "../telemetry/types.ts";
import { parseSpiffeId, spiffeIdFromCertificate } from "./spiffe.ts";

const ANONYMOUS: PeerInfo = { principal: "", workload: "", namespace: "" };

// TlsInfo is one object per connection: remember the answer for the connection's requests.
const known = new WeakMap<TlsInfo, PeerInfo>();

export function peerOf(tls: TlsInfo | null): PeerInfo {
  if (!tls?.peerCertificate) return ANONYMOUS;
  let peer = known.get(tls);
  if (!peer) {
    try {
      const principal = spiffeIdFromCertificate(tls.peerCertificate);
      peer = { principal, workload: "", namespace: parseSpiffeId(principal).namespace ?? "" };
    } catch {
      // The TLS layer verified the chain; a certificate without a SPIFFE ID is no mesh peer.
      peer = ANONYMOUS;
    }
    known.set(tls, peer);
  }
  return peer;
}
