// Load-balancing policies over a cluster's endpoints. Each picks among the endpoints that
// are not ejected; when every endpoint is ejected it picks among all of them (Envoy's
// "panic mode"), because sending somewhere beats failing everything.
import type { LoadBalancer } from "../config/schema.ts";

export interface Balanced {
  readonly weight: number;
  /** Requests in flight to this endpoint. */
  readonly active: number;
  readonly key: string;
}

export interface Balancer<E extends Balanced> {
  pick(endpoints: E[], hashInput: string | undefined, exclude: E | null): E | undefined;
}

/** Smooth weighted round robin (as nginx does it): even spread, no bursts per endpoint. */
class RoundRobin<E extends Balanced> implements Balancer<E> {
  private readonly current = new Map<string, number>();
  private next = 0;

  pick(endpoints: E[], _hash: string | undefined, exclude: E | null): E | undefined {
    const candidates = exclude && endpoints.length > 1 ? endpoints.filter((e) => e !== exclude) : endpoints;
    if (candidates.length === 0) return undefined;
    if (candidates.every((e) => e.weight === candidates[0].weight)) {
      this.next = (this.next + 1) % candidates.length;
      return candidates[this.next];
    }
    let total = 0;
    let best: E | undefined;
    let bestScore = -Infinity;
    for (const e of candidates) {
      const score = (this.current.get(e.key) ?? 0) + e.weight;
      this.current.set(e.key, score);
      total += e.weight;
      if (score > bestScore) {
        bestScore = score;
        best = e;
      }
    }
    if (best) this.current.set(best.key, bestScore - total);
    return best;
  }
}

/** Power of two choices on in-flight requests, weighted: Envoy's least-request. */
class LeastRequest<E extends Balanced> implements Balancer<E> {
  pick(endpoints: E[], _hash: string | undefined, exclude: E | null): E | undefined {
    const candidates = exclude && endpoints.length > 1 ? endpoints.filter((e) => e !== exclude) : endpoints;
    if (candidates.length <= 1) return candidates[0];
    const a = candidates[Math.floor(Math.random() * candidates.length)];
    let b = candidates[Math.floor(Math.random() * (candidates.length - 1))];
    if (b === a) b = candidates[candidates.length - 1];
    return (a.active + 1) / a.weight <= (b.active + 1) / b.weight ? a : b;
  }
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // Final avalanche so that similar keys spread over the whole ring.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

const POINTS_PER_WEIGHT = 64;

/** Ring hash: the same key keeps going to the same endpoint while the set is stable. */
class ConsistentHash<E extends Balanced> implements Balancer<E> {
  private ring: { hashes: Uint32Array; owners: E[] } | null = null;
  private ringOf: E[] | null = null;
  private readonly fallback = new RoundRobin<E>();

  private build(endpoints: E[]) {
    const points: { hash: number; owner: E }[] = [];
    for (const e of endpoints) {
      for (let i = 0; i < POINTS_PER_WEIGHT * e.weight; i++) points.push({ hash: fnv1a(`${e.key}#${i}`), owner: e });
    }
    points.sort((x, y) => x.hash - y.hash);
    this.ring = { hashes: Uint32Array.from(points.map((p) => p.hash)), owners: points.map((p) => p.owner) };
    this.ringOf = endpoints;
  }

  pick(endpoints: E[], hashInput: string | undefined, exclude: E | null): E | undefined {
    if (endpoints.length === 0) return undefined;
    // Without the header there is nothing to be consistent about; a retry must move on.
    if (hashInput === undefined || exclude) return this.fallback.pick(endpoints, undefined, exclude);
    if (this.ringOf !== endpoints) this.build(endpoints);
    const { hashes, owners } = this.ring!;
    const h = fnv1a(hashInput);
    let lo = 0;
    let hi = hashes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (hashes[mid] < h) lo = mid + 1;
      else hi = mid;
    }
    return owners[lo === hashes.length ? 0 : lo];
  }
}

export function createBalancer<E extends Balanced>(config: LoadBalancer): Balancer<E> {
  switch (config.policy) {
    case "RoundRobin":
      return new RoundRobin<E>();
    case "LeastRequest":
      return new LeastRequest<E>();
    case "ConsistentHash":
      return new ConsistentHash<E>();
  }
}
