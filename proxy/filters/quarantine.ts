// When a filter keeps failing expensively, its failStrategy answers without running it for a
// back-off window. A call stopped at its deadline holds the proxy's one thread for the whole
// deadline, and a trap throws the instance away, whose replacement takes the thread too (up to
// ~17 ms on Bun, even when built ahead of need, instance-pool.ts): without a quarantine, one
// client that makes a filter loop makes every request wait, and a trap storm rebuilds an
// instance per request.
//
// The numbers:
// - 5 failures within 1 s trip it: 25 ms of the thread at the default 5 ms deadline (5 rebuilds
//   on Bun, ~85 ms) is what a burst of bad requests may cost before everyone else is spared.
//   Failures count whatever succeeds between them: an abusive client's requests are interleaved
//   with everyone else's, and a busy filter's successes must not dilute them (at 1,000 req/s, a
//   tenth of the calls in 10 s would be 1,000 failures, 5 s of the thread).
// - 5 failures within 10 s trip it too, if they are at least a tenth of the filter's calls then:
//   a filter that fails that often, even slowly, is broken for some input, not unlucky. A rare
//   failure among many calls (one trap in 2,000 requests at 1,000 req/s) costs the thread little
//   and must not make a FailClose filter refuse everything.
// - The first back-off is 1 s: long enough that a storm of bad requests costs a few failed calls
//   a second instead of one per request, short enough that when the storm was all there was,
//   everyone else loses a second of the filter.
// - After a back-off the filter is on probation for 10 s: its next failure in that time
//   quarantines it again at once, for twice as long (2, 4, ... s), up to 60 s. A success does not
//   end the probation (an abuser's requests come between everyone else's); 10 s without a
//   counted failure does, and the count and back-off start over. A client that keeps making the
//   filter fail then costs one failed call per back-off: one a minute at most, in the end.
//
// Only failures that hold the thread or lose the instance count: a deadline, a trap, an abort,
// memory. An error return is the filter deciding to fail, in the time of a normal call, and keeps
// its instance; a filter that could not load runs nothing.
import type { FaultKind, FilterFault } from "./fault.ts";

export const QUARANTINE_POLICY = {
  failures: 5,
  burstMs: 1_000,
  failureShare: 0.1,
  windowMs: 10_000,
  firstBackoffMs: 1_000,
  probationMs: 10_000,
  maxBackoffMs: 60_000,
} as const;

const COUNTED: ReadonlySet<FaultKind> = new Set<FaultKind>(["deadline", "trap", "abort", "memory"]);
// Faults of calls that never ran: not calls at all.
const NOT_RUN: ReadonlySet<FaultKind> = new Set<FaultKind>(["unavailable", "quarantined"]);

// The window as one-second buckets of calls and counted failures: constant work per call.
const BUCKET_MS = 1_000;
const BUCKETS = QUARANTINE_POLICY.windowMs / BUCKET_MS;

/** A quarantine in force, as /config_dump shows it. */
export interface QuarantineStatus {
  readonly remainingMs: number;
  readonly backoffMs: number;
  readonly reason: string;
}

export class Quarantine {
  private readonly now: () => number;
  /** Per bucket: the second it counts (Math.floor(now / BUCKET_MS)), its calls and its counted failures. */
  private readonly seconds = new Float64Array(BUCKETS).fill(-1);
  private readonly calls = new Uint32Array(BUCKETS);
  private readonly failures = new Uint32Array(BUCKETS);
  /** The end of the current or last back-off; 0 when there has been none since the last reset. */
  private until = 0;
  private backoffMs = 0;
  private reason = "";
  /** When the last counted failures happened, a ring of QUARANTINE_POLICY.failures (a burst's). */
  private readonly recent = new Float64Array(QUARANTINE_POLICY.failures).fill(Number.NEGATIVE_INFINITY);
  private next = 0;

  constructor(now: () => number = () => performance.now()) {
    this.now = now;
  }

  /** The quarantine in force now, or null when the filter may run. */
  status(): QuarantineStatus | null {
    const remainingMs = this.until - this.now();
    if (remainingMs <= 0) return null;
    return { remainingMs: Math.ceil(remainingMs), backoffMs: this.backoffMs, reason: this.reason };
  }

  /** A call that ran and did not fail (it does not end a probation: see above). */
  succeeded(): void {
    this.record(this.now(), false);
  }

  /** A call that failed; returns the quarantine when this failure starts one. */
  failed(fault: FilterFault): QuarantineStatus | null {
    if (NOT_RUN.has(fault.kind)) return null;
    const now = this.now();
    const counted = COUNTED.has(fault.kind);
    this.record(now, counted);
    if (!counted) return null;
    const { failures, burstMs, failureShare, windowMs, firstBackoffMs, probationMs, maxBackoffMs } = QUARANTINE_POLICY;
    this.recent[this.next] = now;
    this.next = (this.next + 1) % failures;
    // The oldest of the last `failures` failures, this one included.
    const burstStart = this.recent[this.next]!;
    if (this.until !== 0) {
      // Calls are not made during a back-off: this failure is after it.
      if (now - this.until <= probationMs) {
        return this.trip(
          now,
          Math.min(this.backoffMs * 2, maxBackoffMs),
          `it failed again within ${probationMs / 1000} s of a quarantine of ${this.backoffMs} ms`,
          fault,
        );
      }
      // A whole probation without a counted failure: everything starts over.
      this.until = 0;
      this.backoffMs = 0;
    }
    if (now - burstStart <= burstMs) return this.trip(now, firstBackoffMs, `it failed ${failures} times within ${burstMs / 1000} s`, fault);
    const [calls, failed] = this.inWindow(now);
    if (failed < failures || failed < calls * failureShare) return null;
    return this.trip(now, firstBackoffMs, `it failed ${failed} times in ${calls} calls within ${windowMs / 1000} s`, fault);
  }

  private record(now: number, failure: boolean): void {
    const second = Math.floor(now / BUCKET_MS);
    const i = second % BUCKETS;
    if (this.seconds[i] !== second) {
      this.seconds[i] = second;
      this.calls[i] = 0;
      this.failures[i] = 0;
    }
    this.calls[i]!++;
    if (failure) this.failures[i]!++;
  }

  /** Calls and counted failures in the buckets of the window that ends now. */
  private inWindow(now: number): [calls: number, failures: number] {
    const oldest = Math.floor(now / BUCKET_MS) - BUCKETS + 1;
    let calls = 0;
    let failures = 0;
    for (let i = 0; i < BUCKETS; i++) {
      if (this.seconds[i]! < oldest) continue;
      calls += this.calls[i]!;
      failures += this.failures[i]!;
    }
    return [calls, failures];
  }

  private trip(now: number, backoffMs: number, why: string, fault: FilterFault): QuarantineStatus {
    this.seconds.fill(-1);
    this.recent.fill(Number.NEGATIVE_INFINITY);
    this.backoffMs = backoffMs;
    this.until = now + backoffMs;
    this.reason = `${why} (the last: ${fault.message})`;
    return this.status()!;
  }
}
