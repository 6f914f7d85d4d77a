// Which version of each AccessPolicy the sidecars enforce, by the rule in docs/resources.md: a
// change that cannot be applied safely never widens access. A policy whose targetRefs all name
// existing Services is enforced as written and remembered as its last good version. One that
// names a Service that does not exist (a typo, or the Service was deleted) cannot say which pods
// it is for; the sidecars keep enforcing its last good version, on the pods the Services
// selected then, rather than dropping a DENY or a defaultDeny from pods it protected. Without a
// last good version (a new policy) the Services that exist are enforced and the missing one
// selects nothing: an ALLOW policy then grants nothing, and nothing was protected before.
//
// The last good version is kept in memory and, by the leader, in the policy's status
// (status.inForce, policy-status.ts). A control plane that has no memory of it (it restarted, or
// took over as leader, while the Service was missing) reads it there, so it keeps enforcing what
// the sidecars enforced before.
import type { AccessPolicy, AccessPolicyInForce, AccessPolicySpec } from "../resources/access-policy.ts";
import { keyOf, labelsMatch, targets, type MeshWorld, type PodInfo } from "./world.ts";

/** One AccessPolicy as enforced. */
export interface AccessInForce {
  /** namespace/name */
  key: string;
  namespace: string;
  name: string;
  /** What is enforced: the current spec, or the last good version while a targetRef is missing. */
  spec: Pick<AccessPolicySpec, "action" | "rules" | "defaultDeny" | "mtls">;
  /** The targetRefs that name no Service now, in the order written. */
  missing: string[];
  /** The generation whose last good version is enforced while a targetRef is missing, else null. */
  keptGeneration: number | null;
  /** The last good version, for status.inForce: null for a policy that never resolved. */
  lastGood: AccessPolicyInForce | null;
  selects(pod: PodInfo): boolean;
}

// Per world (one control plane, or one test), per policy key: the last good version, with the
// selectors of the pods it was enforced on.
const remembered = new WeakMap<MeshWorld, Map<string, AccessPolicyInForce>>();

const generationOf = (p: AccessPolicy) => (typeof p.metadata.generation === "number" ? p.metadata.generation : 0);

/** Every AccessPolicy of the world as its sidecars enforce it, sorted by namespace/name. */
export function accessPoliciesInForce(world: MeshWorld): AccessInForce[] {
  let memory = remembered.get(world);
  if (!memory) remembered.set(world, (memory = new Map()));
  const out: AccessInForce[] = [];
  for (const key of memory.keys()) if (!world.accessPolicies.has(key)) memory.delete(key);
  for (const p of world.accessPolicies.values()) {
    const { namespace, name } = p.metadata;
    const key = keyOf(namespace, name);
    const refs = p.spec.targetRefs ?? [];
    const missing = refs.filter((r) => !world.services.has(keyOf(namespace, r.name))).map((r) => r.name);
    const base = { key, namespace, name, missing };
    const asWritten = { ...base, spec: p.spec, keptGeneration: null, selects: (pod: PodInfo) => targets(world, namespace, p.spec, pod) };
    if (missing.length === 0) {
      // Remembered with the pods it is for, so that an edit naming a missing Service keeps it in
      // force there: the selectors of its Services (one without a selector picks no pods, its
      // endpoints are managed by hand), else its own selector, else the whole namespace ({}).
      const selectors =
        refs.length > 0 && !p.spec.selector
          ? refs.map((r) => world.services.get(keyOf(namespace, r.name))!.selector).filter((s) => Object.keys(s).length > 0)
          : [p.spec.selector?.matchLabels ?? {}];
      const { action, rules, defaultDeny, mtls } = p.spec;
      const good: AccessPolicyInForce = { generation: generationOf(p), action, rules, defaultDeny, ...(mtls ? { mtls } : {}), selectors };
      memory.set(key, good);
      out.push({ ...asWritten, lastGood: good });
      continue;
    }
    const last = memory.get(key) ?? p.status?.inForce;
    if (last) {
      out.push({
        ...base,
        spec: last,
        keptGeneration: last.generation,
        lastGood: last,
        selects: (pod) => pod.namespace === namespace && last.selectors.some((s) => labelsMatch(s, pod.labels)),
      });
    } else {
      // targets() already leaves a missing Service out: it picks no pod.
      out.push({ ...asWritten, lastGood: null });
    }
  }
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
