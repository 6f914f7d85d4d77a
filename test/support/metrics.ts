// A sidecar's Prometheus metrics, as the tests read them.

/** The series of `metric` (its lines, labels and value) at `url` (an admin port's /metrics). */
export async function metricSeries(url: string, metric: string): Promise<string[]> {
  const text = await (await fetch(url)).text();
  return text.split("\n").filter((l) => l.startsWith(`${metric}{`));
}
