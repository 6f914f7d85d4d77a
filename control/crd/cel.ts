// A check that both sides run: valibot runs `test` when weft parses a resource itself (local
// mode, the controller), and the API server runs the CEL `rule` (x-kubernetes-validations)
// when a user applies one. Keep the two expressions side by side so they cannot drift apart;
// test/crds.test.ts sends the same invalid objects through both.
import * as v from "valibot";

export interface KubernetesRule {
  /** A CEL expression over `self`, as in `x-kubernetes-validations[].rule`. */
  readonly rule: string;
  readonly message: string;
}

export type RuleAction<T> = v.CheckAction<T, string> & { readonly kubernetes: KubernetesRule };

export function rule<T>(cel: string, message: string, test: (input: T) => boolean): RuleAction<T> {
  return Object.assign(v.check<T, string>(test, message), { kubernetes: { rule: cel, message } });
}

export function isRule(action: object): action is RuleAction<unknown> {
  return "kubernetes" in action && (action as { type?: unknown }).type === "check";
}
