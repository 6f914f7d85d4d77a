// Which version of each AccessPolicy the sidecars enforce, by the rule in docs/resources.md: a
// change that cannot be applied safely never widens access. A policy whose targetRefs all name
// existing Services is enforced as written and remembered as its last good version. One that
// names a Service that does not exist (a typo, or the Service was deleted) cannot say which pods
// it is for; the sidecars keep enforcing its last good version, on the pods the Services
// selected then, rather than dropping a DENY or a defaultDeny from pods it protected. Without a
// last good version (a new policy) the Services that exist are enforced and the missing one
// selects nothing: an ALLOW policy then grants nothing, and nothing was protected before.
import type { AccessPolicy, AccessPolicySpec } from "../resources/access-policy.ts";
import { keyOf, labelsMatch, targets, type MeshWorld, type PodInfo } from "./world.ts";

/** One AccessPolicy as enforced. */
export interface AccessInForce {
  /** namespace/name */
  key: string;
  namespace: string;
  name: string;
  /** The spec enforced: the current one, or the last good one while a targetRef is missing. */
  spec: AccessPolicySpec;
  /** The targetRefs that name no Service now, in the order written. */
  missing: string[];
  /** The generation enforced instead of the current one (a targetRef is missing and an earlier generation resolved), else null. */
  keptGeneration: number | null;
  selects(pod: PodInfo): boolean;
}

interface LastGood {
  generation: number;
  spec: AccessPolicySpec;
  /** The selectors of the Services its targetRefs named when they all existed. */
  selectors: Record<string, string>[];
}

// Per world (one control plane, or one test), per policy key. In memory: a control plane that
// restarts while a targetRef is missing has no last good version (docs/resources.md says so).
const remembered = new WeakMap<MeshWorld, Map<string, LastGood>>();

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
    if (missing.length === 0) {
      if (refs.length > 0) {
        // A Service without a selector picks no pods (its endpoints are managed by hand): nothing to remember for it.
        const selectors = refs.map((r) => world.services.get(keyOf(namespace, r.name))!.selector).filter((s) => Object.keys(s).length > 0);
        memory.set(key, { generation: generationOf(p), spec: p.spec, selectors });
      } else {
        memory.delete(key);
      }
      out.push({ ...base, spec: p.spec, keptGeneration: null, selects: (pod) => targets(world, namespace, p.spec, pod) });
      continue;
    }
    const last = memory.get(key);
    if (last) {
      out.push({ ...base, spec: last.spec, keptGeneration: last.generation, selects: (pod) => pod.namespace === namespace && last.selectors.some((s) => labelsMatch(s, pod.labels)) });
    } else {
      // targets() already leaves a missing Service out: it picks no pod.
      out.push({ ...base, spec: p.spec, keptGeneration: null, selects: (pod) => targets(world, namespace, p.spec, pod) });
    }
  }
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
