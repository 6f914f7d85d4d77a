// One row per WasmFilter, TrafficPolicy, AccessPolicy and HTTPRoute parent for `weft status`, read
// from the status the control plane wrote: each condition's status, and in PROBLEM the first
// condition that is not True (or a status written for an older generation, or none at all), so a
// healthy resource has an empty PROBLEM and a broken one says why on its own line.
import { CONTROLLER_NAME } from "../mesh/route-status.ts";
import type { AccessPolicy } from "../resources/access-policy.ts";
import type { Condition } from "../resources/condition.ts";
import type { TrafficPolicy } from "../resources/traffic-policy.ts";
import type { WasmFilter } from "../resources/wasm-filter.ts";

/** What a row needs of any object with conditions. */
interface WithConditions {
  metadata: { namespace?: string; name: string; generation?: unknown };
  status?: { conditions?: Condition[] } | undefined;
}

/** An HTTPRoute as the API server returns it: only what the rows read. */
export interface HttpRouteObject {
  metadata: { namespace?: string; name: string; generation?: number };
  spec?: { parentRefs?: { group?: string; kind?: string; name: string; namespace?: string; port?: number }[] };
  status?: {
    parents?: {
      parentRef: { group?: string; kind?: string; name: string; namespace?: string; port?: number };
      controllerName: string;
      conditions?: Condition[];
    }[];
  };
}

const NO_STATUS = "no status yet: is the control plane running?";

export const nameOf = (o: { metadata: { namespace?: string; name: string } }) => `${o.metadata.namespace ?? "default"}/${o.metadata.name}`;

const find = (conditions: readonly Condition[] | undefined, type: string) => conditions?.find((c) => c.type === type);
const statusOf = (conditions: readonly Condition[] | undefined, type: string) => find(conditions, type)?.status ?? "-";

/** The first of `types` that is not True, as "Type: Reason: message"; "" when all are True. */
function problem(conditions: readonly Condition[] | undefined, types: string[], generation: unknown): string {
  if (!conditions?.length) return NO_STATUS;
  const bad = types.map((t) => find(conditions, t)).find((c) => c?.status !== "True");
  if (bad) return `${bad.type}: ${bad.reason}: ${bad.message}`;
  const stale = conditions.find(
    (c) => typeof generation === "number" && c.observedGeneration !== undefined && c.observedGeneration < generation,
  );
  return stale
    ? `status is for generation ${stale.observedGeneration}, the spec is at ${String(generation)}: the control plane has not caught up`
    : "";
}

const conditionRow = (o: WithConditions, types: string[]) => [
  ...types.map((t) => statusOf(o.status?.conditions, t)),
  problem(o.status?.conditions, types, o.metadata.generation),
];

export const WASMFILTER_HEADER = ["WASMFILTER", "RESOLVED", "READY", "SHA256", "PROBLEM"];
export function wasmFilterRow(f: WasmFilter): string[] {
  return [
    nameOf(f),
    statusOf(f.status?.conditions, "Resolved"),
    f.status?.ready ?? "-",
    f.status?.sha256?.slice(0, 12) ?? "-",
    problem(f.status?.conditions, ["Accepted", "Resolved", "Ready"], (f.metadata as { generation?: unknown }).generation),
  ];
}

const POLICY_CONDITIONS = ["Accepted", "ResolvedRefs", "Ready"];
const services = (refs: readonly { name: string }[] | undefined) => refs?.map((r) => r.name).join(",");

export const TRAFFICPOLICY_HEADER = ["TRAFFICPOLICY", "TARGETS", "ACCEPTED", "RESOLVEDREFS", "READY", "PROBLEM"];
export function trafficPolicyRow(p: TrafficPolicy): string[] {
  return [nameOf(p), services(p.spec.targetRefs) || "-", ...conditionRow(p, POLICY_CONDITIONS)];
}

export const ACCESSPOLICY_HEADER = ["ACCESSPOLICY", "ACTION", "TARGETS", "ACCEPTED", "RESOLVEDREFS", "READY", "PROBLEM"];
export function accessPolicyRow(p: AccessPolicy): string[] {
  const spec = p.spec;
  const targets =
    services(spec.targetRefs) ||
    (spec.selector
      ? Object.entries(spec.selector.matchLabels)
          .map(([k, v]) => `${k}=${v}`)
          .join(",")
      : "(namespace)");
  return [nameOf(p), `${spec.action ?? "ALLOW"}${spec.defaultDeny ? "+defaultDeny" : ""}`, targets, ...conditionRow(p, POLICY_CONDITIONS)];
}

const isService = (r: { group?: string; kind?: string }) => (r.group ?? "") === "" && (r.kind ?? "Service") === "Service";

export const HTTPROUTE_HEADER = ["HTTPROUTE", "PARENT", "ACCEPTED", "RESOLVEDREFS", "PROBLEM"];
/** One row per Service parent weft reports on; a route with none of its own yet gets one row saying so. */
export function httpRouteRows(r: HttpRouteObject): string[][] {
  const namespace = r.metadata.namespace ?? "default";
  const parentName = (p: { name: string; namespace?: string; port?: number }) =>
    `${p.namespace ?? namespace}/${p.name}${p.port !== undefined ? `:${p.port}` : ""}`;
  const ours = (r.status?.parents ?? []).filter((p) => p.controllerName === CONTROLLER_NAME);
  if (ours.length === 0) {
    const wanted = (r.spec?.parentRefs ?? []).filter(isService).map(parentName).join(",") || "-";
    return [[nameOf(r), wanted, "-", "-", NO_STATUS]];
  }
  return ours.map((p) => [
    nameOf(r),
    parentName(p.parentRef),
    ...conditionRow({ metadata: r.metadata, status: p }, ["Accepted", "ResolvedRefs"]),
  ]);
}

/** Routes weft has a say in: those with a Service among their parentRefs (the others are a Gateway's). */
export const isMeshRoute = (r: HttpRouteObject) => (r.spec?.parentRefs ?? []).some(isService);
