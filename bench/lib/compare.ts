// --compare: each weft scenario of this work tree against the same scenario of the revision,
// visited in the same rounds, as ratios (and differences) per pair of rounds.
import { versusBefore } from "./operating-point.ts";
import type { ScenarioResult } from "./report.ts";
import type { RoundResult } from "./report.ts";
import { BEFORE } from "./scenarios.ts";
import { usedRounds, versus } from "./stats.ts";

/** The figures the throughput and mTLS tables show, for one round (sums over the proxies). */
function tableFigures(r: RoundResult): Map<string, number> {
  const out = new Map<string, number>();
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  if (r.throughput) {
    out.set("rps", r.throughput.rps);
    if (r.throughput.proxyCpuUsPerRequest !== null) out.set("proxyCpuUsPerRequest", r.throughput.proxyCpuUsPerRequest);
  }
  if (r.latency) for (const p of ["p50Ms", "p90Ms", "p99Ms", "p999Ms"] as const) out.set(p, r.latency[p]);
  if (r.cpuAtRate) out.set("vcpuPer1kRps", r.cpuAtRate.vcpuPer1kRps);
  if (r.rss) {
    out.set("peakMB", sum(r.rss.perProcess.map((p) => p.peakMB)));
    out.set("afterMB", sum(r.rss.perProcess.map((p) => p.afterMB ?? NaN)));
  }
  return out;
}

/** Sets `vsBefore` (or `operatingPoint.vsBefore`) on each of this tree's results that has a revision partner. */
export function compareBuilds(results: ScenarioResult[]): void {
  const opDirect = results.find((r) => r.id === "op-direct" && r.status === "ok");
  for (const after of results) {
    if (after.build?.role !== "after" || after.status !== "ok") continue;
    const before = results.find((r) => r.id === `${after.id}${BEFORE}` && r.status === "ok");
    if (!before) continue;
    const a = usedRounds(after.rounds);
    const b = usedRounds(before.rounds);
    if (after.group === "op" && after.operatingPoint) {
      after.operatingPoint.vsBefore = versusBefore(a, b, after.sidecars, usedRounds(opDirect?.rounds ?? []));
    } else {
      after.vsBefore = versus(a, b, tableFigures);
    }
  }
}
