// The operating point users compare meshes at (Istio's method): open-loop load at a fixed rate
// (1000 req/s), a 1 KB request body, 16 connections, mTLS and telemetry on; per sidecar, the CPU
// it takes, its memory idle and under load, and the latency it adds over going direct.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RoundResult } from "./report.ts";
import { median, spreads, versus } from "./stats.ts";
import type { Spread, Versus } from "./stats.ts";

export const OP_CONNECTIONS = 16;
export const OP_BODY_BYTES = 1024;

/** The request body, in the work dir for vegeta's `@file` and in memory for the readiness POST. */
export function writeOpBody(dir: string): { path: string; body: Buffer } {
  const body = Buffer.alloc(OP_BODY_BYTES, "weft-bench-payload ");
  const path = join(dir, "op-body.bin");
  writeFileSync(path, body);
  return { path, body };
}

/**
 * What the operating-point tables show, over the rounds used: each figure's median and range.
 * Keys: `achievedRps`; `p50Ms` … `p999Ms` (the whole path); `addedP50MsPerSidecar`,
 * `addedP90MsPerSidecar`, `addedP99MsPerSidecar` ((this scenario − direct in the same round) ÷
 * sidecars); `vcpuPer1kRpsPerSidecar` (all sidecars' vCPU ÷ sidecars ÷ thousands of req/s); and per
 * sidecar, A then B (`A.vcpuPer1kRps`, `A.idleMB`, `A.peakMB`, `A.endMB`, …).
 */
export type OpFigures = Record<string, Spread>;

export const SIDECAR_NAMES = ["A", "B", "C", "D"];
const PERCENTILES = [
  ["p50Ms", "addedP50MsPerSidecar"],
  ["p90Ms", "addedP90MsPerSidecar"],
  ["p99Ms", "addedP99MsPerSidecar"],
] as const;

/** One round's figures (see OpFigures); `direct` is the direct baseline's round, or its medians. */
export function roundFigures(r: RoundResult, sidecars: number, direct: Map<string, number> | undefined): Map<string, number> {
  const out = new Map<string, number>();
  const l = r.latency;
  if (l) {
    out.set("achievedRps", l.achievedRps);
    for (const [p] of PERCENTILES) out.set(p, l[p]);
    out.set("p999Ms", l.p999Ms);
    if (direct && sidecars > 0) {
      for (const [p, added] of PERCENTILES) out.set(added, (l[p] - (direct.get(p) ?? NaN)) / sidecars);
    }
  }
  const cpu = r.cpuAtRate;
  if (cpu && sidecars > 0) {
    out.set("vcpuPer1kRpsPerSidecar", cpu.vcpuPer1kRps / sidecars);
    cpu.perProcess.forEach((p, i) => out.set(`${SIDECAR_NAMES[i]}.vcpuPer1kRps`, p.vcpuPer1kRps));
  }
  r.rss?.perProcess.forEach((p, i) => {
    const who = SIDECAR_NAMES[i];
    out.set(`${who}.idleMB`, p.idleMB);
    out.set(`${who}.peakMB`, p.peakMB);
    if (p.endMB !== undefined) out.set(`${who}.endMB`, p.endMB);
  });
  return out;
}

/** The direct baseline's percentiles for a round: its visit in that round, else its medians. */
function directFor(directRounds: RoundResult[]): (r: RoundResult) => Map<string, number> | undefined {
  const all = directRounds.map((x) => roundFigures(x, 0, undefined));
  const medians = new Map(PERCENTILES.map(([p]) => [p as string, median(all.map((m) => m.get(p) ?? NaN))]));
  return (r) => {
    const d = directRounds.find((x) => x.round === r.round);
    if (d) return roundFigures(d, 0, undefined);
    return directRounds.length > 0 ? medians : undefined;
  };
}

/**
 * The figures of a scenario over its rounds. The added latency is paired by round with the direct
 * baseline (visited minutes apart at most), falling back to the baseline's median for a round it
 * has no clean visit in.
 */
export function summarize(rounds: RoundResult[], sidecars: number, directRounds: RoundResult[]): OpFigures {
  const direct = directFor(directRounds);
  return spreads(rounds.map((r) => roundFigures(r, sidecars, direct(r))));
}

/** This build against the compared revision's, per pair of rounds (see stats.ts versus). */
export function versusBefore(
  after: RoundResult[],
  before: RoundResult[],
  sidecars: number,
  directRounds: RoundResult[],
): Record<string, Versus> {
  const direct = directFor(directRounds);
  return versus(after, before, (r) => roundFigures(r, sidecars, direct(r)));
}
