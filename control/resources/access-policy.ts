// AccessPolicy: which peers may call a workload, by identity, method and path (PRODUCT.md).
// Shaped like Istio's AuthorizationPolicy with one thing made explicit: an ALLOW policy only
// grants; requests no rule allows are refused only where a policy sets defaultDeny.
import * as v from "valibot";
import { AccessAction, AccessRule } from "../../proxy/config/authorization.ts";
import { conditions } from "./condition.ts";
import { resource } from "./meta.ts";
import { parseResource } from "./parse.ts";
import { oneWayToTarget, targetEntries } from "./targets.ts";

// What a policy enforces on the workloads it applies to: in the spec, and in the version kept in
// force (status.inForce) while a targetRef names a missing Service.
const enforcement = {
  action: v.optional(
    v.pipe(AccessAction, v.description("What happens to a request that one of the rules matches. DENY policies are checked first.")),
    "ALLOW",
  ),
  rules: v.optional(
    v.pipe(
      v.array(AccessRule),
      v.description(
        "A request matches the policy if any rule matches; a rule with no from and no to matches every request; no rules matches nothing.",
      ),
    ),
    [],
  ),
  defaultDeny: v.optional(
    v.pipe(
      v.boolean(),
      v.description(
        "Refuse (403) requests to the selected workloads that no ALLOW rule allows. Without any policy setting it, requests not denied are allowed.",
      ),
    ),
    false,
  ),
  mtls: v.optional(
    v.pipe(
      v.picklist(["STRICT", "PERMISSIVE"]),
      v.description(
        "STRICT: the selected workloads accept only mesh peers over mTLS and refuse plaintext callers. Unset or PERMISSIVE: plaintext callers are served too (they have no identity, so principal and namespace rules never match them).",
      ),
    ),
  ),
};

export const AccessPolicySpec = v.pipe(
  v.object({ ...targetEntries, ...enforcement }),
  oneWayToTarget(),
  v.description(
    "Which workloads the policy applies to (selector or targetRefs, or neither for the whole namespace) and who may call them.",
  ),
);

export const AccessPolicyStatus = v.pipe(
  v.object({
    conditions: conditions(
      "Accepted (the policy is valid), " +
        "ResolvedRefs (False, reason TargetNotFound, while a targetRef names a Service that does not exist; the message says what is enforced meanwhile) and " +
        "Ready (True when every pod it selects has a sidecar that enforces it; reason NoPodsSelected when it selects none, PodsWithoutSidecar when some have no sidecar)",
    ),
    inForce: v.optional(
      v.pipe(
        v.object({
          generation: v.pipe(
            v.number(),
            v.integer(),
            v.minValue(0),
            v.description("The metadata.generation enforced: the last whose targetRefs all named existing Services (or that had none)."),
          ),
          ...enforcement,
          selectors: v.pipe(
            v.array(v.record(v.string(), v.string())),
            v.description(
              "The pods it is enforced on, in that generation: those with all the labels of any one of these selectors (its Services' selectors, or its own selector; {} for the whole namespace).",
            ),
          ),
        }),
        v.description(
          "The last good version, which the sidecars keep enforcing while a targetRef names a Service that does not exist (after an edit, or the Service was deleted). A control plane that starts (a restart, a new leader) reads it here, so a DENY or a defaultDeny is never dropped from the pods it protected.",
        ),
      ),
    ),
  }),
  v.description(
    "Written by the control plane: whether the policy is valid, its targets exist and every selected pod enforces it, and the version it enforces.",
  ),
);

export const AccessPolicy = resource("AccessPolicy", AccessPolicySpec, AccessPolicyStatus);

export type AccessPolicy = v.InferOutput<typeof AccessPolicy>;
export type AccessPolicySpec = v.InferOutput<typeof AccessPolicySpec>;
export type AccessPolicyStatus = v.InferOutput<typeof AccessPolicyStatus>;
/** A version of the policy as enforced, with the selectors of the pods it was enforced on (status.inForce). */
export type AccessPolicyInForce = NonNullable<AccessPolicyStatus["inForce"]>;

export const parseAccessPolicy = (input: unknown) => parseResource(AccessPolicy, input);
