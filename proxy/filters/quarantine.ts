// When a filter keeps failing expensively, its failStrategy answers without running it for a
// back-off window. A call stopped at its deadline holds the proxy's one thread for the whole
// deadline, and a trap throws the instance away, whose replacement takes the thread too (up to
// ~17 ms on Bun, even when built ahead of need, instance-pool.ts): without a quarantine, one
// client that makes a filter loop makes every request wait, and a trap storm rebuilds an
// instance per request.
//
// The numbers:
// - 5 failures within 10 s trip it, if they are at least a tenth of the filter's calls then. A
//   filter that fails that often is broken for some input, not unlucky; 5 calls at the default
//   5 ms deadline are 25 ms of the thread, and 5 rebuilds on Bun ~85 ms, before it trips.
//   Failures count whatever succeeds between them (an abusive client's requests are interleaved
//   with everyone else's), but a rare failure among many calls (one trap in 2,000 requests at
//   1,000 req/s) costs the thread little and must not make a FailClose filter refuse everything.
// - The first back-off is 1 s: long enough that a storm of bad requests costs 5 failed calls a
//   second instead of one per request, short enough that when the storm was all there was,
//   everyone else loses a second of the filter.
// - Each time the first call after a back-off fails again, the back-off doubles (2, 4, ... s), up
//   to 60 s: a filter that fails on everything then costs one failed call a minute, and is
//   tried again often enough that a fix of its input shows within a minute.
// - The first call after a back-off that succeeds ends it all: back-off and failures start over.
//
// Only failures that hold the thread or lose the instance count: a deadline, a trap, an abort,
// memory. An error return is the filter deciding to fail, in the time of a normal call, and keeps
// its instance; a filter that could not load runs nothing.
import type { FaultKind, FilterFault } from "./fault.ts";

export const QUARANTINE_POLICY = {
  failures: 5,
  failureShare: 0.1,
  windowMs: 10_000,
  firstBackoffMs: 1_000,
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

  constructor(now: () => number = () => performance.now()) {
    this.now = now;
  }

  /** The quarantine in force now, or null when the filter may run. */
  status(): QuarantineStatus | null {
    const remainingMs = this.until - this.now();
    if (remainingMs <= 0) return null;
    return { remainingMs: Math.ceil(remainingMs), backoffMs: this.backoffMs, reason: this.reason };
  }

  /** A call that ran and did not fail: after a back-off, this ends it. */
  succeeded(): void {
    this.record(this.now(), false);
    this.until = 0;
    this.backoffMs = 0;
  }

  /** A call that failed; returns the quarantine when this failure starts one. */
  failed(fault: FilterFault): QuarantineStatus | null {
    if (NOT_RUN.has(fault.kind)) return null;
    const now = this.now();
    const counted = COUNTED.has(fault.kind);
    this.record(now, counted);
    if (!counted) return null;
    const { failures, failureShare, windowMs, firstBackoffMs, maxBackoffMs } = QUARANTINE_POLICY;
    if (this.until !== 0) {
      // The first call after a back-off (calls are not made during one) failed again.
      return this.trip(
        now,
        Math.min(this.backoffMs * 2, maxBackoffMs),
        `it failed again after a quarantine of ${this.backoffMs} ms`,
        fault,
      );
    }
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
    this.backoffMs = backoffMs;
    this.until = now + backoffMs;
    this.reason = `${why} (the last: ${fault.message})`;
    return this.status()!;
  }
}
