// HTTPRoute status as the Gateway API specifies it for a mesh (GAMMA): one entry in
// status.parents per Service parentRef, written under weft's controllerName, with Accepted
// (False, NoMatchingParent, when the Service or its port does not exist), ResolvedRefs (False,
// BackendNotFound when a backendRef names a missing Service or port, InvalidKind when it is not
// a Service: that backend's share of requests gets 500; a RequestMirror's backend too) and, when
// a rule asks for a filter weft does not do, PartiallyInvalid (True, UnsupportedValue: that
// rule's requests get 500). status.parents is shared with other controllers (a route may also
// name Gateways), so only weft's entries are replaced.
import { isDeepStrictEqual } from "node:util";
import type { ParentRef } from "../kubernetes/httproute.ts";
import { seenOf } from "../kubernetes/httproute.ts";
import { conditionsFrom, type Condition, type ConditionInput } from "../resources/condition.ts";
import { resolveBackend } from "./backends.ts";
import { keyOf, type HttpRouteInfo, type MeshWorld } from "./world.ts";

/** Who wrote an entry of status.parents (Gateway API: DOMAIN/PATH). */
export const CONTROLLER_NAME = "weft.dev/mesh-controller";

export interface RouteParentStatus {
  parentRef: ParentRef;
  controllerName: string;
  conditions: Condition[];
}

/** One parent's conditions before they get timestamps. */
export interface ParentConditions {
  parentRef: ParentRef;
  conditions: ConditionInput[];
}

/** What weft reports for each of the route's Service parentRefs. */
export function httpRouteParentConditions(world: MeshWorld, route: HttpRouteInfo): ParentConditions[] {
  const problems: string[] = [];
  const unsupported: string[] = [];
  let invalidKind = false;
  route.rules.forEach((rule, i) => {
    if (rule.unsupported) unsupported.push(`rules[${i}]: ${rule.unsupported.join(", ")}`);
    for (const b of rule.backends) {
      const resolved = resolveBackend(world, b);
      if (resolved.problem === undefined) continue;
      if (b.kind !== undefined) invalidKind = true;
      const total = rule.backends.reduce((sum, x) => sum + x.weight, 0);
      problems.push(`rules[${i}]: ${resolved.problem} (weight ${b.weight} of ${total}): requests for that backend's share get 500`);
    }
    const mirror = rule.mirror && resolveBackend(world, rule.mirror.backend).problem;
    if (mirror) problems.push(`rules[${i}] RequestMirror: ${mirror}: requests are served without the copy`);
  });
  // Gateway API's PartiallyInvalid: the route stays, and the rules it names answer 500.
  const partiallyInvalid: ConditionInput[] =
    unsupported.length === 0
      ? []
      : [
          {
            type: "PartiallyInvalid",
            ok: true,
            reason: "UnsupportedValue",
            message: `weft does not do ${unsupported.join("; ")}: requests those rules match get 500, the other rules are served`,
          },
        ];
  const resolvedRefs: ConditionInput =
    problems.length === 0
      ? { type: "ResolvedRefs", ok: true, reason: "ResolvedRefs", message: "every backendRef names an existing Service port" }
      : {
          type: "ResolvedRefs",
          ok: false,
          reason: invalidKind ? "InvalidKind" : "BackendNotFound",
          message: `${problems.join("; ")}; the rest is served`,
        };
  const { parentRefs } = seenOf(route);
  return route.parents.map((parent, i) => {
    const service = world.services.get(keyOf(parent.namespace, parent.name));
    const where = `Service ${parent.namespace}/${parent.name}`;
    let accepted: ConditionInput;
    if (!service)
      accepted = {
        type: "Accepted",
        ok: false,
        reason: "NoMatchingParent",
        message: `${where} does not exist; the route applies once it does`,
      };
    else if (parent.port !== undefined && !service.ports.some((p) => p.port === parent.port)) {
      accepted = {
        type: "Accepted",
        ok: false,
        reason: "NoMatchingParent",
        message: `${where} has no port ${parent.port} (it has ${service.ports.map((p) => p.port).join(", ") || "none"})`,
      };
    } else {
      accepted = {
        type: "Accepted",
        ok: true,
        reason: "Accepted",
        // GAMMA: a route outside the Service's namespace is its own namespace's (a consumer route)
        message: `${route.namespace === parent.namespace ? "sidecars" : `sidecars in namespace ${route.namespace}`} calling ${where}${parent.port !== undefined ? ` on port ${parent.port}` : ""} follow this route`,
      };
    }
    return { parentRef: parentRefs[i]!, conditions: [accepted, resolvedRefs, ...partiallyInvalid] };
  });
}

/**
 * status.parents with weft's entries replaced by `ours` and everyone else's kept as they are;
 * lastTransitionTime is kept where a condition's status stays the same.
 */
export function mergeParents(
  current: readonly unknown[] | undefined,
  ours: ParentConditions[],
  generation: number,
  now: string,
): unknown[] {
  const entries = (current ?? []) as Partial<RouteParentStatus>[];
  const mine = entries.filter((e) => e.controllerName === CONTROLLER_NAME);
  const others = entries.filter((e) => e.controllerName !== CONTROLLER_NAME);
  const written: RouteParentStatus[] = ours.map((p) => ({
    parentRef: p.parentRef,
    controllerName: CONTROLLER_NAME,
    conditions: conditionsFrom(p.conditions, mine.find((e) => isDeepStrictEqual(e.parentRef, p.parentRef))?.conditions, generation, now),
  }));
  // The API server keeps at most 32 entries; others' come first, as they were there before.
  return [...others, ...written].slice(0, 32);
}
