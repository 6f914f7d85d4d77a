// A quantile from cumulative histogram buckets, computed as Prometheus's histogram_quantile()
// does, so the dashboard's p99 matches what a Grafana panel over the same metrics shows.

export interface Bucket {
  /** Upper bound; Infinity for the +Inf bucket. */
  le: number;
  /** Observations at or below `le` (cumulative). */
  count: number;
}

/**
 * The q-quantile (0..1), interpolated linearly within the bucket it falls in; the lowest
 * bucket starts at 0 when its bound is positive. Null when there is nothing to compute from:
 * no observations, or no +Inf bucket. A quantile in the +Inf bucket is the highest finite
 * bound, as in Prometheus.
 */
export function histogramQuantile(q: number, buckets: readonly Bucket[]): number | null {
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  if (sorted.length < 2 || sorted[sorted.length - 1]!.le !== Infinity) return null;
  // Counts taken from different moments (deltas of live counters) can dip; Prometheus evens
  // them out the same way.
  for (let i = 1; i < sorted.length; i++)
    if (sorted[i]!.count < sorted[i - 1]!.count) sorted[i] = { ...sorted[i]!, count: sorted[i - 1]!.count };
  const total = sorted[sorted.length - 1]!.count;
  if (!(total > 0)) return null;
  const rank = q * total;
  const b = sorted.findIndex((x) => x.count >= rank);
  if (b === sorted.length - 1) return sorted[sorted.length - 2]!.le;
  if (b === 0 && sorted[0]!.le <= 0) return sorted[0]!.le;
  const start = b === 0 ? 0 : sorted[b - 1]!.le;
  const below = b === 0 ? 0 : sorted[b - 1]!.count;
  const inBucket = sorted[b]!.count - below;
  // Only q = 0 can land in an empty bucket.
  if (inBucket === 0) return start;
  return start + (sorted[b]!.le - start) * ((rank - below) / inBucket);
}
