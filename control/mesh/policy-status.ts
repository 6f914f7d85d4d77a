// TrafficPolicy and AccessPolicy status from what the control plane knows: Accepted (False,
// Conflicted, on the TrafficPolicy that loses a Service to an older one), ResolvedRefs (False,
// TargetNotFound, while a targetRef names a Service that does not exist) and Ready (whether the
// policy is in force anywhere), and for an AccessPolicy with targetRefs its last good version
// (status.inForce). The cluster writes it to the status subresource.
import { conditionsFrom, type ConditionInput } from "../resources/condition.ts";
import type { AccessPolicy, AccessPolicyStatus } from "../resources/access-policy.ts";
import type { TrafficPolicy, TrafficPolicyStatus } from "../resources/traffic-policy.ts";
import { accessPoliciesInForce } from "./access-in-force.ts";
import { trafficPoliciesOf } from "./precedence.ts";
import { keyOf, type MeshWorld } from "./world.ts";

const generationOf = (metadata: { [key: string]: unknown }) => (typeof metadata.generation === "number" ? metadata.generation : 0);

/** "Service shop/a does not exist" or "Services shop/a, shop/b do not exist". */
const doNotExist = (namespace: string, names: string[]) =>
  names.length === 1
    ? `Service ${namespace}/${names[0]} does not exist`
    : `Services ${names.map((n) => `${namespace}/${n}`).join(", ")} do not exist`;

const list = (namespace: string, names: string[]) => names.map((n) => `${namespace}/${n}`).join(", ");

/** At most a few names, then how many more: a status message stays readable. */
const some = (names: string[], max = 5) =>
  names.length <= max ? names.join(", ") : `${names.slice(0, max).join(", ")} and ${names.length - max} more`;

export function trafficPolicyStatus(world: MeshWorld, policy: TrafficPolicy, now: string): TrafficPolicyStatus {
  const { namespace, name } = policy.metadata;
  const self = keyOf(namespace, name);
  const names = [...new Set(policy.spec.targetRefs.map((r) => r.name))];
  const missing = names.filter((n) => !world.services.has(keyOf(namespace, n)));
  const won: string[] = [];
  const lost: { service: string; winner: TrafficPolicy }[] = [];
  for (const service of names) {
    if (missing.includes(service)) continue;
    const winner = trafficPoliciesOf(world, namespace, service)[0]!;
    if (keyOf(winner.metadata.namespace, winner.metadata.name) === self) won.push(service);
    else lost.push({ service, winner });
  }
  const accepted: ConditionInput =
    lost.length === 0
      ? { type: "Accepted", ok: true, reason: "Accepted", message: "the policy is valid and no older TrafficPolicy targets its Services" }
      : {
          type: "Accepted",
          ok: false,
          reason: "Conflicted",
          message:
            lost
              .map(
                ({ service, winner }) =>
                  `TrafficPolicy ${winner.metadata.namespace}/${winner.metadata.name} also targets Service ${namespace}/${service} and is in force there`,
              )
              .join("; ") +
            ` (where several target one Service, the oldest wins, then namespace/name: docs/resources.md); this policy is in force for ${won.length ? `Service ${list(namespace, won)} only` : "no Service"}`,
        };
  const resolved: ConditionInput =
    missing.length === 0
      ? { type: "ResolvedRefs", ok: true, reason: "ResolvedRefs", message: "every targetRef names an existing Service" }
      : {
          type: "ResolvedRefs",
          ok: false,
          reason: "TargetNotFound",
          message: `${doNotExist(namespace, missing)}; the policy applies to it once it exists`,
        };
  const ready: ConditionInput =
    won.length > 0
      ? { type: "Ready", ok: true, reason: "InForce", message: `in force for the clients of Service ${list(namespace, won)}` }
      : {
          type: "Ready",
          ok: false,
          reason: lost.length > 0 ? "Conflicted" : "TargetNotFound",
          message:
            "in force for no Service: " +
            (lost.length > 0 ? "another TrafficPolicy wins where its Services exist" : "none of its Services exists"),
        };
  return { conditions: conditionsFrom([accepted, resolved, ready], policy.status?.conditions, generationOf(policy.metadata), now) };
}

export function accessPolicyStatus(world: MeshWorld, policy: AccessPolicy, now: string): AccessPolicyStatus {
  const { namespace, name } = policy.metadata;
  const self = keyOf(namespace, name);
  const enforced = accessPoliciesInForce(world).find((p) => p.key === self);
  const missing = enforced?.missing ?? [];
  const opens = policy.spec.action === "ALLOW" && !policy.spec.defaultDeny;
  let resolved: ConditionInput;
  if (missing.length === 0) {
    resolved = {
      type: "ResolvedRefs",
      ok: true,
      reason: "ResolvedRefs",
      message: policy.spec.targetRefs
        ? "every targetRef names an existing Service"
        : policy.spec.selector
          ? "selects pods by label"
          : "applies to every workload in the namespace",
    };
  } else if (enforced?.keptGeneration != null) {
    // The same generation when the Service was deleted rather than the policy edited.
    const kept =
      enforced.keptGeneration === generationOf(policy.metadata)
        ? `the sidecars keep enforcing this generation (${enforced.keptGeneration}) on the pods its Services selected when they all existed`
        : `this generation is not in force; the sidecars keep enforcing generation ${enforced.keptGeneration}, the last that could be applied, on the pods it applied to`;
    resolved = {
      type: "ResolvedRefs",
      ok: false,
      reason: "TargetNotFound",
      message: `${doNotExist(namespace, missing)}: ${kept} (a change that cannot be applied never widens access)`,
    };
  } else {
    resolved = {
      type: "ResolvedRefs",
      ok: false,
      reason: "TargetNotFound",
      message:
        `${doNotExist(namespace, missing)}, so the policy applies to no pod through ${missing.length === 1 ? "it" : "them"}` +
        (opens ? " (an ALLOW policy grants nothing there)" : " (it protects no pod there until the Service exists)"),
    };
  }
  const selected = enforced ? [...world.pods.values()].filter((pod) => enforced.selects(pod)) : [];
  const bare = selected.filter((pod) => !pod.inMesh).map((pod) => keyOf(pod.namespace, pod.name));
  const enforcing = selected.length - bare.length;
  const ready: ConditionInput =
    selected.length === 0
      ? { type: "Ready", ok: false, reason: "NoPodsSelected", message: "no pod is selected, so no sidecar enforces it" }
      : bare.length > 0
        ? {
            type: "Ready",
            ok: false,
            reason: "PodsWithoutSidecar",
            message: `${bare.length} of ${selected.length} selected pods have no sidecar, so nothing enforces it there: ${some(bare)}`,
          }
        : {
            type: "Ready",
            ok: true,
            reason: "InForce",
            message: `enforced by the sidecars of ${enforcing} pod${enforcing === 1 ? "" : "s"}`,
          };
  return {
    conditions: conditionsFrom(
      [{ type: "Accepted", ok: true, reason: "Accepted", message: "the policy is valid" }, resolved, ready],
      policy.status?.conditions,
      generationOf(policy.metadata),
      now,
    ),
    // What a control plane that starts enforces while a targetRef is missing (access-in-force.ts).
    ...(enforced?.lastGood ? { inForce: enforced.lastGood } : {}),
  };
}
