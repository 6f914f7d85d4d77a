// Summaries over rounds: which rounds count, the median the tables show and the spread that says
// how noisy it was.
import { round } from "./proc.ts";
import type { RoundResult } from "./report.ts";

/** Other processes above this many vCPU during a phase make the round "disturbed". */
export const DISTURBED = 0.1;

export function disturbed(r: RoundResult): boolean {
  return r.status === "ok" && ((r.throughput?.foreignVcpu ?? 0) >= DISTURBED || (r.latency?.foreignVcpu ?? 0) >= DISTURBED);
}

/** The rounds a summary uses: the undisturbed ones, or every successful one if none was. */
export function usedRounds(rounds: RoundResult[]): RoundResult[] {
  const ok = rounds.filter((r) => r.status === "ok");
  const clean = ok.filter((r) => !disturbed(r));
  return clean.length > 0 ? clean : ok;
}

export function median(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? (v[m] as number) : ((v[m - 1] as number) + (v[m] as number)) / 2;
}

/** A figure over rounds: its median and the range it moved in (`n` rounds had it). */
export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function spread(xs: number[], digits = 3): Spread {
  const v = xs.filter((x) => Number.isFinite(x));
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  return { median: round(median(v), digits), min: round(Math.min(...v), digits), max: round(Math.max(...v), digits), n: v.length };
}

/**
 * Pairs two scenarios' rounds by round number. Rounds interleave scenarios, so a pair was
 * measured minutes apart at most: a ratio or difference per pair cancels a slow spell of the
 * machine that a ratio of medians over the whole run would not.
 */
export function pairByRound<T extends { round: number }>(a: T[], b: T[]): [T, T][] {
  const out: [T, T][] = [];
  for (const x of a) {
    const y = b.find((r) => r.round === x.round);
    if (y) out.push([x, y]);
  }
  return out;
}

/** Each figure's spread over rounds, from one map of figures per round. */
export function spreads(perRound: Map<string, number>[]): Record<string, Spread> {
  const keys = [...new Set(perRound.flatMap((m) => [...m.keys()]))];
  return Object.fromEntries(keys.map((k) => [k, spread(perRound.map((m) => m.get(k) ?? NaN))]));
}

/** One figure of a build against another's: after ÷ before, and after − before, per pair of rounds. */
export interface Versus {
  ratio: Spread;
  delta: Spread;
}

export function versus<T extends { round: number }>(
  after: T[],
  before: T[],
  figures: (r: T) => Map<string, number>,
): Record<string, Versus> {
  const ratios: Map<string, number>[] = [];
  const deltas: Map<string, number>[] = [];
  for (const [a, b] of pairByRound(after, before)) {
    const fa = figures(a);
    const fb = figures(b);
    const ratio = new Map<string, number>();
    const delta = new Map<string, number>();
    for (const [k, va] of fa) {
      const vb = fb.get(k) ?? NaN;
      ratio.set(k, vb !== 0 ? va / vb : NaN);
      delta.set(k, va - vb);
    }
    ratios.push(ratio);
    deltas.push(delta);
  }
  const r = spreads(ratios);
  const d = spreads(deltas);
  return Object.fromEntries(Object.keys(r).map((k) => [k, { ratio: r[k] as Spread, delta: d[k] as Spread }]));
}
