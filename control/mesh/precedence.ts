// Which resource wins where two of one kind claim the same thing (two TrafficPolicies on one
// Service): the oldest by creationTimestamp, then namespace/name alphabetically. This is the
// Gateway API's rule for conflicting policies and routes, so a new resource never silently
// takes over from one that is in force; the loser reports Conflicted (policy-status.ts).
import type { TrafficPolicy } from "../resources/traffic-policy.ts";
import type { MeshWorld } from "./world.ts";

interface Dated {
  metadata: { namespace: string; name: string; creationTimestamp?: unknown };
}

/** Kubernetes timestamps are RFC 3339 in UTC to the second, so they sort as text; none (local mode) sorts as equal. */
const createdAt = (r: Dated) => (typeof r.metadata.creationTimestamp === "string" ? r.metadata.creationTimestamp : "");

/** Sorts the winner first. */
export const olderFirst = (a: Dated, b: Dated): number => olderByMetadata(a.metadata, b.metadata);

/** olderFirst on the metadata itself (an HTTPRoute in the model keeps its own at the top level). */
export function olderByMetadata(a: Dated["metadata"], b: Dated["metadata"]): number {
  const x = createdAt({ metadata: a });
  const y = createdAt({ metadata: b });
  if (x !== y) return x === "" ? 1 : y === "" ? -1 : x < y ? -1 : 1;
  const p = `${a.namespace}/${a.name}`;
  const q = `${b.namespace}/${b.name}`;
  return p < q ? -1 : p > q ? 1 : 0;
}

/** The TrafficPolicies that target the Service namespace/name, the one in force first. */
export function trafficPoliciesOf(world: MeshWorld, namespace: string, name: string): TrafficPolicy[] {
  return [...world.trafficPolicies.values()]
    .filter((p) => p.metadata.namespace === namespace && p.spec.targetRefs.some((r) => r.name === name))
    .sort(olderFirst);
}

/** The TrafficPolicy in force for the Service namespace/name, if any targets it. */
export const trafficPolicyFor = (world: MeshWorld, namespace: string, name: string): TrafficPolicy | undefined =>
  trafficPoliciesOf(world, namespace, name)[0];
