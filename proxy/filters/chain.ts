// The filter chain of one configuration: filters in their deterministic order (phase, then
// priority, higher first, then namespace/name), which of them a request is attached to, and
// running them. Request phases run in chain order; response phases in reverse, so the first
// filter to see the request is the last to see the response (as in Envoy).
import type { FilterMatch } from "../config/filters.ts";
import type { Filter } from "./filter.ts";
import type { FilterMessage, FilterPhaseName, LocalReply } from "./message.ts";

const PHASE_ORDER: Record<string, number> = { Authn: 0, Authz: 1, Stats: 2 };
const UNSET_PHASE = 3;

export function compareFilters(a: Filter, b: Filter): number {
  const phase = (PHASE_ORDER[a.config.phase ?? ""] ?? UNSET_PHASE) - (PHASE_ORDER[b.config.phase ?? ""] ?? UNSET_PHASE);
  if (phase !== 0) return phase;
  if (a.config.priority !== b.config.priority) return b.config.priority - a.config.priority;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export interface RequestSelector {
  readonly direction: "Inbound" | "Outbound";
  readonly port: number;
  readonly method: string;
  readonly path: string;
}

function matches(match: FilterMatch, r: RequestSelector): boolean {
  if (match.direction && match.direction !== r.direction) return false;
  if (match.ports.length && !match.ports.includes(r.port)) return false;
  if (match.methods.length && !match.methods.includes(r.method)) return false;
  if (match.pathPrefixes.length && !match.pathPrefixes.some((p) => r.path.startsWith(p))) return false;
  return true;
}

export class FilterChain {
  static readonly EMPTY = new FilterChain([]);
  readonly filters: readonly Filter[];

  constructor(filters: Filter[]) {
    this.filters = filters.slice().sort(compareFilters);
  }

  /** The filters attached to this request, in chain order. */
  select(request: RequestSelector): Filter[] {
    const selected: Filter[] = [];
    for (const f of this.filters) {
      const match = f.config.match;
      if (match.length === 0 || match.some((m) => matches(m, request))) selected.push(f);
    }
    return selected;
  }
}

/** A filter's local reply and the chain position of the filter that made it. */
export interface MadeReply {
  reply: LocalReply;
  at: number;
}

/**
 * Runs one phase over the first `count` filters of the chain (request phases in chain order,
 * response phases in reverse); the first local reply ends the phase.
 */
export function runPhaseOver(filters: readonly Filter[], count: number, phase: FilterPhaseName, message: FilterMessage): MadeReply | null {
  message.phase = phase;
  const reverse = phase === "on_response_headers" || phase === "on_response_body";
  for (let i = 0; i < count; i++) {
    const at = reverse ? count - 1 - i : i;
    const filter = filters[at]!;
    if (!filter.handles(phase)) continue;
    const { reply } = filter.run(phase, message);
    if (reply) return { reply, at };
  }
  return null;
}

/** Runs one phase over the selected filters; the first local reply ends the phase. */
export function runPhase(filters: readonly Filter[], phase: FilterPhaseName, message: FilterMessage): LocalReply | null {
  return runPhaseOver(filters, filters.length, phase, message)?.reply ?? null;
}

/** Whether any of the first `count` filters has this phase. */
export function anyHandles(filters: readonly Filter[], phase: FilterPhaseName, count = filters.length): boolean {
  for (let i = 0; i < count; i++) if (filters[i]!.handles(phase)) return true;
  return false;
}
