// An opaque TCP listener's connections: the bytes go as they are to one endpoint of the
// listener's cluster (over mTLS where the cluster has it), once the listener's AccessPolicies
// allow the peer's identity. Nothing is parsed: databases, queues and any other protocol pass.
import { Buffer } from "node:buffer";
import type { Logger } from "../../shared/log.ts";
import type { AccessCheck } from "../inbound/authorization.ts";
import { peerOf } from "../identity/peer.ts";
import { tunnel } from "../forwarder/tunnel.ts";
import type { Conn } from "../runtime/types.ts";
import type { ConnectionMeter } from "../telemetry/types.ts";
import type { UpstreamCluster } from "../upstream/cluster.ts";

export interface TcpRoute {
  listener: string;
  /** Where the bytes go; undefined when the configuration names a cluster it does not have. */
  cluster: UpstreamCluster | undefined;
  /** The listener's AccessPolicies (inbound); null when none applies. */
  check: AccessCheck | null;
  /** Set where HTTP is detected: how long to wait for a connection's first bytes (sidecar.ts). */
  detectHttpMs?: number;
  log: Logger;
}

/**
 * `replay`: bytes protocol detection read first, and whether the client had finished sending;
 * `meter` counts the bytes each way.
 */
export async function forwardTcp(
  conn: Conn,
  route: TcpRoute,
  meter: ConnectionMeter,
  replay?: { first: Buffer; ended: boolean },
): Promise<void> {
  // What the client sends before the upstream connection is up is kept, not lost.
  const early: Buffer[] = replay && replay.first.length > 0 ? [replay.first] : [];
  // A client that has finished sending still gets its reply: the end is passed on, not acted on.
  let ended = replay?.ended === true;
  conn.halfOpen = true;
  conn.onData = (chunk) => early.push(chunk);
  conn.onEnd = () => {
    ended = true;
  };
  conn.pause();
  const peer = peerOf(conn.tls);
  const about = { listener: route.listener, peer: `${conn.remoteAddress}:${conn.remotePort}`, principal: peer.principal };
  const refusal = route.check?.({ principal: peer.principal, namespace: peer.namespace }) ?? null;
  if (refusal) {
    route.log.warn("TCP connection refused", { ...about, reason: refusal });
    conn.destroy();
    return;
  }
  const cluster = route.cluster;
  const endpoint = cluster?.pick(undefined, null);
  if (!cluster || !endpoint) {
    route.log.warn("TCP connection closed: no endpoint to send it to", { ...about, cluster: cluster?.config.name ?? "(none)" });
    conn.destroy();
    return;
  }
  let upstream: Awaited<ReturnType<UpstreamCluster["openTcp"]>>;
  try {
    upstream = await cluster.openTcp(endpoint);
  } catch (e) {
    route.log.warn("TCP connection closed: cannot reach its upstream", { ...about, error: (e as Error).message });
    conn.destroy();
    return;
  }
  if (conn.closed) {
    upstream.conn.destroy();
    upstream.release();
    return;
  }
  const downstreamClosed = conn.onClose;
  tunnel({ conn, leftover: early.length > 0 ? Buffer.concat(early) : null }, { conn: upstream.conn, leftover: null }, meter);
  if (ended) upstream.conn.end();
  const piped = conn.onClose;
  conn.onClose = (error) => {
    piped(error);
    downstreamClosed(error);
  };
  const closed = upstream.conn.onClose;
  upstream.conn.onClose = (error) => {
    closed(error);
    upstream.release();
  };
}
