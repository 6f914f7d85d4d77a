// When a failed attempt may be tried again, and how long to wait before it.
import type { RetryPolicy } from "../config/schema.ts";

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method);
}

export type AttemptFailure = { kind: "connect" } | { kind: "reset" } | { kind: "timeout" } | { kind: "status"; status: number };

export function retriable(policy: RetryPolicy, failure: AttemptFailure): boolean {
  const on = policy.retryOn;
  switch (failure.kind) {
    case "connect":
      return on.includes("connect-failure") || on.includes("gateway-error") || on.includes("5xx");
    case "reset":
      return on.includes("reset") || on.includes("5xx");
    case "timeout":
      return on.includes("gateway-error") || on.includes("5xx");
    case "status": {
      const s = failure.status;
      if (on.includes("5xx") && s >= 500) return true;
      if (on.includes("gateway-error") && (s === 502 || s === 503 || s === 504)) return true;
      return on.includes("retriable-status-codes") && policy.retriableStatusCodes.includes(s);
    }
  }
}

/** Exponential back-off with full jitter, so that retries of many clients do not align. */
export function backoffMs(policy: RetryPolicy, retryNumber: number, random: () => number): number {
  const ceiling = Math.min(policy.backoffMaxMs, policy.backoffBaseMs * 2 ** (retryNumber - 1));
  return random() * ceiling;
}
