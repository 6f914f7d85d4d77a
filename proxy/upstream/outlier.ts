// Passive health: an endpoint that fails several times in a row is ejected for a while,
// longer each time it is ejected again (Envoy's outlier detection, consecutive errors).
import type { OutlierDetection } from "../config/schema.ts";

export interface OutlierState {
  consecutive5xx: number;
  consecutiveConnectFailures: number;
  ejectedUntil: number;
  ejections: number;
}

export function newOutlierState(): OutlierState {
  return { consecutive5xx: 0, consecutiveConnectFailures: 0, ejectedUntil: 0, ejections: 0 };
}

export type Outcome = "success" | "5xx" | "connect-failure";

/**
 * Records an outcome; returns true when the endpoint must be ejected now. `ejectedCount`
 * and `total` keep ejections within maxEjectionPercent of the cluster.
 */
export function recordOutcome(
  state: OutlierState,
  outcome: Outcome,
  policy: OutlierDetection,
  ejectedCount: number,
  total: number,
  now: number,
): boolean {
  if (outcome === "success") {
    state.consecutive5xx = 0;
    state.consecutiveConnectFailures = 0;
    return false;
  }
  if (outcome === "5xx") state.consecutive5xx++;
  else state.consecutiveConnectFailures++;
  const tripped =
    (policy.consecutive5xx > 0 && state.consecutive5xx >= policy.consecutive5xx) ||
    (policy.consecutiveConnectFailures > 0 && state.consecutiveConnectFailures >= policy.consecutiveConnectFailures);
  if (!tripped || state.ejectedUntil > now) return false;
  if (((ejectedCount + 1) / total) * 100 > policy.maxEjectionPercent) return false;
  state.ejections++;
  state.ejectedUntil = now + Math.min(policy.baseEjectionMs * state.ejections, policy.maxEjectionMs);
  state.consecutive5xx = 0;
  state.consecutiveConnectFailures = 0;
  return true;
}
