// The port a request was for, as a WasmFilter's match.ports means it. Not the listener's port:
// every redirected request arrives on 15001 (outbound) or 15006 (inbound), and a user writes the
// port of the Service they call or of the app they protect.
import type { Cluster, Listener } from "../config/schema.ts";

/** The port in an authority (host, host:port, [v6]:port); 80, HTTP's, when it names none. */
export function authorityPort(authority: string): number {
  const colon = authority.lastIndexOf(":");
  if (colon < 0 || colon < authority.lastIndexOf("]")) return 80;
  const port = Number(authority.slice(colon + 1));
  return Number.isInteger(port) && port > 0 && port <= 65535 ? port : 80;
}

/**
 * The one port every request on this listener is delivered to, or null when its routes lead
 * to endpoints on several ports (or none). An injected sidecar's inbound listener has one route,
 * to the app's port: that port is what the request was for, whatever Service port or Host the
 * caller used, so a filter attached by port cannot be skipped by calling the pod another way.
 */
export function deliveredPort(listener: Listener, clusters: readonly Cluster[]): number | null {
  const byName = new Map(clusters.map((c) => [c.name, c]));
  const ports = new Set<number>();
  for (const host of listener.virtualHosts) {
    for (const route of host.routes) {
      for (const backend of route.backends) {
        const cluster = byName.get(backend.cluster);
        if (!cluster || cluster.passthrough || cluster.invalid !== undefined) return null;
        for (const e of cluster.endpoints) ports.add(e.port);
      }
    }
  }
  return ports.size === 1 ? [...ports][0]! : null;
}
