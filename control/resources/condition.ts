// Status conditions in the standard metav1.Condition shape, with the checks the upstream type
// declares, so that `kubectl wait --for=condition=Ready` and every tool that reads conditions
// work on weft resources.
import * as v from "valibot";

export const Condition = v.object({
  type: v.pipe(
    v.string(),
    v.regex(
      /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/,
      "must be a condition type such as Ready",
    ),
    v.maxLength(316),
    v.description("The aspect this condition reports, in CamelCase, e.g. Ready."),
  ),
  status: v.pipe(v.picklist(["True", "False", "Unknown"]), v.description("True, False or Unknown.")),
  observedGeneration: v.optional(
    v.pipe(v.number(), v.integer(), v.minValue(0), v.description("The metadata.generation the condition was computed from.")),
  ),
  lastTransitionTime: v.pipe(v.string(), v.isoTimestamp(), v.description("When status last changed (RFC 3339).")),
  reason: v.pipe(
    v.string(),
    v.minLength(1),
    v.maxLength(1024),
    v.regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/, "must be a CamelCase reason such as DigestMismatch"),
    v.description("Why, in one CamelCase word a program can test (DigestMismatch, PullFailed, ...)."),
  ),
  message: v.pipe(v.string(), v.maxLength(32768), v.description("Why, for a human.")),
});

/** The `conditions` field of a status; `which` says what types the kind reports. */
export function conditions(which: string) {
  return v.optional(
    v.pipe(
      v.array(Condition),
      v.maxLength(8),
      // one entry per type, merged by type in server-side apply (as upstream types declare it)
      v.metadata({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"] }),
      v.description(`The state of this resource as the control plane sees it: ${which}.`),
    ),
  );
}

export type Condition = v.InferOutput<typeof Condition>;

/** A condition as computed (ok null: Unknown), before it gets its timestamps. */
export interface ConditionInput {
  type: string;
  ok: boolean | null;
  reason: string;
  message: string;
}

/** Keeps lastTransitionTime where a condition's status stays the same, as metav1.Condition asks. */
export function conditionsFrom(
  inputs: ConditionInput[],
  previous: readonly Condition[] | undefined,
  generation: number,
  now: string,
): Condition[] {
  return inputs.map((c) => {
    const status = c.ok === null ? "Unknown" : c.ok ? "True" : "False";
    const before = previous?.find((p) => p.type === c.type);
    return {
      type: c.type,
      status,
      observedGeneration: generation,
      lastTransitionTime: before && before.status === status ? before.lastTransitionTime : now,
      reason: c.reason,
      message: c.message,
    };
  });
}
