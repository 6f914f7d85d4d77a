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

/** Why an endpoint was ejected (the reason label of weft_outlier_ejections_total). */
export type EjectionReason = "consecutive_5xx" | "consecutive_connect_failures";

/**
 * Records an outcome; returns why the endpoint must be ejected now, or null. `ejectedCount`
 * and `total` keep ejections within maxEjectionPercent of the cluster.
 */
export function recordOutcome(
  state: OutlierState,
  outcome: Outcome,
  policy: OutlierDetection,
  ejectedCount: number,
  total: number,
  now: number,
): EjectionReason | null {
  if (outcome === "success") {
    state.consecutive5xx = 0;
    state.consecutiveConnectFailures = 0;
    return null;
  }
  if (outcome === "5xx") state.consecutive5xx++;
  else state.consecutiveConnectFailures++;
  const reason: EjectionReason | null =
    policy.consecutive5xx > 0 && state.consecutive5xx >= policy.consecutive5xx
      ? "consecutive_5xx"
      : policy.consecutiveConnectFailures > 0 && state.consecutiveConnectFailures >= policy.consecutiveConnectFailures
        ? "consecutive_connect_failures"
        : null;
  if (!reason || state.ejectedUntil > now) return null;
  if (((ejectedCount + 1) / total) * 100 > policy.maxEjectionPercent) return null;
  state.ejections++;
  state.ejectedUntil = now + Math.min(policy.baseEjectionMs * state.ejections, policy.maxEjectionMs);
  state.consecutive5xx = 0;
  state.consecutiveConnectFailures = 0;
  return reason;
}
