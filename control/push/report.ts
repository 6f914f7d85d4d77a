// What each connected sidecar runs, in the shape that status, `weft status` and the dashboard
// read: the version sent, the one acknowledged, a rejection, the WasmFilters in it, those it could
// not load and those it has quarantined.
import type { QuarantinedFilter } from "../../proxy/control/client.ts";
import type { ProxySession } from "./hub.ts";

export interface ProxyReportEntry {
  pod: string;
  /** The version last sent, and the one the proxy acknowledged (null: not yet). */
  sent: string | null;
  running: string | null;
  rejected?: { version: string; error: string };
  /** Filters in what it runs that it could not load, and why. */
  unavailable?: readonly { filter: string; reason: string }[];
  /** Filters in what it runs that it has quarantined: their failStrategy answers until the back-off ends. */
  quarantined?: readonly QuarantinedFilter[];
  /** namespace/name of the WasmFilters in what it runs. */
  filters: readonly string[];
  connectedAt: string;
}

export function reportOf(sessions: readonly ProxySession[]): ProxyReportEntry[] {
  return sessions
    .map((s) => ({
      pod: `${s.namespace}/${s.pod}`,
      sent: s.sent?.version ?? null,
      running: s.acked?.version ?? null,
      ...(s.rejected ? { rejected: s.rejected } : {}),
      ...(s.unavailable.length > 0 ? { unavailable: s.unavailable } : {}),
      ...(s.quarantined.length > 0 ? { quarantined: s.quarantined } : {}),
      filters: s.acked?.filters ?? [],
      connectedAt: new Date(s.connectedAt).toISOString(),
    }))
    .sort((a, b) => a.pod.localeCompare(b.pod));
}
