// One proxy's traffic over a sliding window, from its successive scrapes. Each scrape is
// folded into counters that only grow (a counter that went down means the proxy restarted
// and counted from 0 again, as Prometheus's increase() assumes), so any scrape in between
// can be forgotten: the window keeps one every few seconds, not every scrape, and costs the
// same memory whatever the scrape interval.
import type { Counters, Traffic, TrafficKey } from "./traffic.ts";

export interface SeriesSummary {
  key: TrafficKey;
  /** Requests counted since the proxy started (0 for a series its last scrape no longer has). */
  total: number;
  /** What grew in the window. */
  increase: Counters;
}

export interface WindowSummary {
  /** The time the window's scrapes span; 0 with a single scrape. */
  seconds: number;
  series: SeriesSummary[];
}

interface Snapshot {
  at: number;
  counters: Map<string, Counters>;
}

const zero = (): Counters => ({ requests: 0, errors: 0, buckets: new Map() });
const copy = (c: Counters): Counters => ({ requests: c.requests, errors: c.errors, buckets: new Map(c.buckets) });

/** Adds what grew from `prev` to `cur` to `into`. */
function grow(into: Counters, cur: Counters, prev: Counters): void {
  const reset = cur.requests < prev.requests;
  into.requests += reset ? cur.requests : cur.requests - prev.requests;
  into.errors += reset ? cur.errors : cur.errors - prev.errors;
  for (const [le, count] of cur.buckets)
    into.buckets.set(le, (into.buckets.get(le) ?? 0) + (reset ? count : count - (prev.buckets.get(le) ?? 0)));
}

/** `a - b`, for series b may not have (they started from 0). */
function minus(a: Counters, b: Counters | undefined): Counters {
  const out = copy(a);
  if (b === undefined) return out;
  out.requests -= b.requests;
  out.errors -= b.errors;
  for (const [le, count] of b.buckets) out.buckets.set(le, (out.buckets.get(le) ?? 0) - count);
  return out;
}

export class TrafficWindow {
  readonly #windowMs: number;
  readonly #keys = new Map<string, TrafficKey>();
  /** As last scraped, to tell growth from a restart. */
  readonly #scraped = new Map<string, Counters>();
  /** Everything that grew since the first scrape. */
  readonly #grown = new Map<string, Counters>();
  #present = new Set<string>();
  #snapshots: Snapshot[] = [];

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  add(at: number, traffic: ReadonlyMap<string, Traffic>): void {
    // What the first scrape finds was counted before anyone looked: it is the baseline.
    const baseline = this.#snapshots.length === 0;
    for (const [id, t] of traffic) {
      if (!this.#keys.has(id)) this.#keys.set(id, t.key);
      let grown = this.#grown.get(id);
      if (grown === undefined) this.#grown.set(id, (grown = zero()));
      // A series the previous scrape did not have is new: the proxy makes one on its first request.
      if (!baseline) grow(grown, t.counters, this.#scraped.get(id) ?? zero());
      this.#scraped.set(id, t.counters);
    }
    this.#present = new Set(traffic.keys());
    const snapshot = { at, counters: new Map([...this.#grown].map(([id, c]) => [id, copy(c)])) };
    const n = this.#snapshots.length;
    // Thinned to one every twelfth of the window, always keeping the newest.
    if (n >= 2 && at - this.#snapshots[n - 2]!.at < this.#windowMs / 12) this.#snapshots[n - 1] = snapshot;
    else this.#snapshots.push(snapshot);
    while (this.#snapshots.length > 1 && this.#snapshots[0]!.at < at - this.#windowMs) this.#snapshots.shift();
  }

  /** What the scrapes of the last window say; nothing once the proxy has not been scraped for a window. */
  summary(now: number): WindowSummary {
    const live = this.#snapshots.filter((s) => s.at >= now - this.#windowMs);
    const first = live[0];
    const last = live[live.length - 1];
    if (first === undefined || last === undefined) return { seconds: 0, series: [] };
    const series: SeriesSummary[] = [];
    for (const [id, grown] of last.counters) {
      const increase = minus(grown, first.counters.get(id));
      const present = this.#present.has(id);
      if (!present && increase.requests === 0) continue;
      series.push({ key: this.#keys.get(id)!, total: present ? this.#scraped.get(id)!.requests : 0, increase });
    }
    return { seconds: (last.at - first.at) / 1000, series };
  }
}
