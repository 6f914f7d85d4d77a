// How a resource picks the workloads it applies to: pods by label (`selector`) or the pods
// behind Services (`targetRefs`, the Gateway API policy-attachment form). Neither means every
// workload in the resource's namespace; both at once is refused, as Istio does.
import * as v from "valibot";
import { FilterConfig } from "../../proxy/config/filters.ts";
import { rule } from "../crd/cel.ts";

export const ServiceRef = v.object({
  group: v.optional(v.pipe(v.literal(""), v.description('The API group of a Service: "" (the core group).')), ""),
  kind: v.pipe(v.literal("Service"), v.description("Service.")),
  name: v.pipe(FilterConfig.entries.name, v.description("The name of a Service in this resource's namespace.")),
});

export const ServiceRefs = v.pipe(v.array(ServiceRef), v.minLength(1), v.maxLength(16));

export const WorkloadSelector = v.object({
  matchLabels: v.pipe(v.record(v.string(), v.string()), v.description("Pods with all of these labels are selected.")),
});

/** The two ways to target, as object entries; pair them with `oneWayToTarget`. */
export const targetEntries = {
  selector: v.optional(
    v.pipe(
      WorkloadSelector,
      v.description(
        "The pods in this namespace to apply to, by label. Leave out both selector and targetRefs to apply to every workload in the namespace.",
      ),
    ),
  ),
  targetRefs: v.optional(
    v.pipe(ServiceRefs, v.description("The Services whose pods to apply to (at most 16). Not together with selector.")),
  ),
};

export function oneWayToTarget<TSpec extends { selector?: unknown; targetRefs?: unknown }>() {
  return rule<TSpec>(
    "!(has(self.selector) && has(self.targetRefs))",
    "set selector or targetRefs, not both",
    (spec) => spec.selector === undefined || spec.targetRefs === undefined,
  );
}

export type ServiceRef = v.InferOutput<typeof ServiceRef>;
export type WorkloadSelector = v.InferOutput<typeof WorkloadSelector>;
