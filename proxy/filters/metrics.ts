// Metrics about filters on the proxy's /metrics: failures by kind, and the counters and
// gauges filters define themselves (weft_metric), labelled with the filter's namespace/name.
import { Counter, Gauge, type Registry } from "prom-client";
import type { FaultKind } from "./fault.ts";

const NAME = /^[a-z][a-z0-9_]{0,63}$/;
const MAX_NAMES_PER_FILTER = 32;

export type MetricKind = 0 | 1; // 0 counter (add), 1 gauge (set)

export class FilterMetrics {
  private readonly registry: Registry;
  private readonly failures: Counter<"filter" | "phase" | "kind">;
  private readonly custom = new Map<string, { kind: MetricKind; metric: Counter<"filter"> | Gauge<"filter"> }>();
  private readonly namesPerFilter = new Map<string, Set<string>>();

  constructor(registry: Registry) {
    this.registry = registry;
    this.failures = new Counter({
      name: "weft_filter_failures_total",
      help: "Filter calls that trapped, aborted, ran past their deadline or memory limit, returned an error, or could not run because the filter failed to load.",
      labelNames: ["filter", "phase", "kind"],
      registers: [registry],
    });
  }

  failure(filter: string, phase: string, kind: FaultKind): void {
    this.failures.inc({ filter, phase, kind });
  }

  /** Returns a problem to log when the filter's metric is refused, or null. */
  record(filter: string, kind: number, name: string, value: number): string | null {
    if (kind !== 0 && kind !== 1) return `weft_metric kind ${kind} is not 0 (counter) or 1 (gauge)`;
    if (!NAME.test(name)) return `metric name "${name}" must match ${NAME.source}`;
    if (!Number.isFinite(value) || (kind === 0 && value < 0))
      return `metric "${name}": ${value} is not a valid ${kind === 0 ? "counter increment" : "gauge value"}`;
    let names = this.namesPerFilter.get(filter);
    if (!names) this.namesPerFilter.set(filter, (names = new Set()));
    if (!names.has(name)) {
      if (names.size >= MAX_NAMES_PER_FILTER) return `metric "${name}": a filter may define at most ${MAX_NAMES_PER_FILTER} metrics`;
      names.add(name);
    }
    const fullName = `weft_filter_${name}`;
    let entry = this.custom.get(fullName);
    if (!entry) {
      const options = {
        name: fullName,
        help: `Defined by filters (weft_metric "${name}").`,
        labelNames: ["filter"] as const,
        registers: [this.registry],
      };
      entry = { kind: kind as MetricKind, metric: kind === 0 ? new Counter(options) : new Gauge(options) };
      this.custom.set(fullName, entry);
    }
    if (entry.kind !== kind) return `metric "${name}" is already a ${entry.kind === 0 ? "counter" : "gauge"}`;
    if (kind === 0) (entry.metric as Counter<"filter">).inc({ filter }, value);
    else (entry.metric as Gauge<"filter">).set({ filter }, value);
    return null;
  }
}
