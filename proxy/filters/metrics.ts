// Metrics about filters on the proxy's /metrics: failures by kind, quarantines, and the counters
// and gauges filters define themselves (weft_metric), labelled with the filter's namespace/name.
import { Counter, Gauge, type Registry } from "prom-client";
import type { FaultKind } from "./fault.ts";

const NAME = /^[a-z][a-z0-9_]{0,63}$/;
const MAX_NAMES_PER_FILTER = 32;
// weft's own weft_filter_* metrics, which a filter's weft_metric name may not take.
const OWN = new Set(["failures_total", "quarantined", "quarantines_total"]);

/** Each filter of the configuration in force, and whether it is quarantined now. */
export type QuarantineSource = () => Iterable<readonly [filter: string, quarantined: boolean]>;

export type MetricKind = 0 | 1; // 0 counter (add), 1 gauge (set)

export class FilterMetrics {
  private readonly registry: Registry;
  private readonly failures: Counter<"filter" | "phase" | "kind">;
  private readonly quarantines: Counter<"filter">;
  private readonly custom = new Map<string, { kind: MetricKind; metric: Counter<"filter"> | Gauge<"filter"> }>();
  private readonly namesPerFilter = new Map<string, Set<string>>();

  constructor(registry: Registry, quarantined: QuarantineSource = () => []) {
    this.registry = registry;
    this.failures = new Counter({
      name: "weft_filter_failures_total",
      help: "Filter calls that trapped, aborted, ran past their deadline or memory limit, returned an error, or could not run because the filter failed to load or is quarantined.",
      labelNames: ["filter", "phase", "kind"],
      registers: [registry],
    });
    this.quarantines = new Counter({
      name: "weft_filter_quarantines_total",
      help: "Times a filter was quarantined for failing again and again (its failStrategy answered without running it).",
      labelNames: ["filter"],
      registers: [registry],
    });
    // Read when scraped: a quarantine ends with its back-off, whether or not a request comes.
    new Gauge({
      name: "weft_filter_quarantined",
      help: "1 while a filter is quarantined (its failStrategy answers without running it), 0 otherwise.",
      labelNames: ["filter"],
      registers: [registry],
      collect() {
        this.reset();
        for (const [filter, held] of quarantined()) this.set({ filter }, held ? 1 : 0);
      },
    });
  }

  quarantine(filter: string): void {
    this.quarantines.inc({ filter });
  }

  failure(filter: string, phase: string, kind: FaultKind): void {
    this.failures.inc({ filter, phase, kind });
  }

  /** Returns a problem to log when the filter's metric is refused, or null. */
  record(filter: string, kind: number, name: string, value: number): string | null {
    if (kind !== 0 && kind !== 1) return `weft_metric kind ${kind} is not 0 (counter) or 1 (gauge)`;
    if (!NAME.test(name)) return `metric name "${name}" must match ${NAME.source}`;
    if (OWN.has(name)) return `metric name "${name}" is taken by weft's own weft_filter_${name}: choose another`;
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
