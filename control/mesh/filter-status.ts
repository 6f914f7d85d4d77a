// A WasmFilter's status from what the control plane knows: whether its spec was accepted, what
// its url resolved to, how many of the pods it selects run it, and the config they run it with
// (status.inForce, which a control plane that starts reads back). The cluster writes it to the
// status subresource; local mode shows it on the dashboard.
//
// READY is "running / selected": selected are the injected pods the filter targets (and any pod
// whose sidecar is connected), running those whose sidecar acknowledged a configuration with
// the filter in force. A pod whose sidecar is not connected counts as selected, not running; so does
// one whose sidecar has the filter quarantined (proxy/filters/quarantine.ts): until the back-off
// ends, its failStrategy answers there instead of the filter, and Ready says Quarantined.
import type { QuarantinedFilter } from "../../proxy/control/client.ts";
import type { FilterDistribution, FilterState } from "../distribution/filters.ts";
import type { ProxyReportEntry } from "../push/report.ts";
import { conditionsFrom, type ConditionInput } from "../resources/condition.ts";
import type { WasmFilter, WasmFilterInForce, WasmFilterStatus } from "../resources/wasm-filter.ts";
import { keyOf, targets, type MeshWorld } from "./world.ts";

/** Why the filter selects no pod: a target Service that does not exist, or a selector that matches nothing. */
function noneSelected(world: MeshWorld, filter: WasmFilter): ConditionInput {
  const ns = filter.metadata.namespace;
  const missing = (filter.spec.targetRefs ?? []).map((r) => r.name).filter((name) => !world.services.has(keyOf(ns, name)));
  if (missing.length > 0 && missing.length === filter.spec.targetRefs!.length) {
    return {
      type: "Ready",
      ok: false,
      reason: "TargetNotFound",
      message: `it targets Service ${missing.map((m) => `${ns}/${m}`).join(", ")}, which does not exist: fix targetRefs, or create the Service`,
    };
  }
  const what = filter.spec.selector
    ? `its selector ${JSON.stringify(filter.spec.selector.matchLabels)}`
    : filter.spec.targetRefs
      ? `the Services it targets (${filter.spec.targetRefs.map((r) => r.name).join(", ")})`
      : "it";
  return { type: "Ready", ok: false, reason: "NoPodsSelected", message: `${what} selects no pod with a sidecar in namespace ${ns}` };
}

/** Which condition says why nothing is in force. */
function whyNot(state: FilterState | undefined): string {
  if (state && !state.accepted.ok) return `Accepted is False: ${state.accepted.reason}`;
  if (state?.resolved && !state.resolved.ok) return `Resolved is False: ${state.resolved.reason}`;
  return "its url is being resolved";
}

/** What runs where the filter is in force, for the Ready message. */
function whatRuns(applied: WasmFilterInForce | null, sha256: string | undefined, generation: number): string {
  if (!sha256) return "";
  const config =
    applied && applied.generation !== generation
      ? ` with its last accepted config (generation ${applied.generation}; this generation's is not accepted, see Accepted)`
      : "";
  return `sha256:${sha256}${config}`;
}

/** The pods that have it quarantined, for the Ready message: at most 3, each with why and until when. */
function quarantinedOn(held: readonly { pod: string; quarantine: QuarantinedFilter }[]): string {
  const pods = held
    .slice(0, 3)
    .map(({ pod, quarantine: q }) => `${pod}: ${q.reason}; back-off ${q.backoffMs / 1000} s, until ${q.until}`)
    .join("; ");
  return `${held.length} ${held.length === 1 ? "has" : "have"} it quarantined after repeated failures (${pods}${held.length > 3 ? "; ..." : ""})`;
}

/** `sidecars`: one entry per pod, whichever replica of the control plane it is connected to. */
export function wasmFilterStatus(
  world: MeshWorld,
  distribution: FilterDistribution,
  filter: WasmFilter,
  sidecars: Iterable<ProxyReportEntry>,
  now: string,
): WasmFilterStatus {
  const key = keyOf(filter.metadata.namespace, filter.metadata.name);
  const state = distribution.state(filter.metadata.namespace, filter.metadata.name);
  const generation = (filter.metadata as { generation?: number }).generation ?? 0;
  // What the sidecars are sent: a module (this control plane's, or the digest kept from status), or nothing.
  const inForce = distribution.inForce(filter.metadata.namespace, filter.metadata.name);
  const sha256 = inForce && "sha256" in inForce ? inForce.sha256 : undefined;
  // Written to status with the digest, so that a control plane that starts keeps both (filters.ts).
  const applied = sha256 ? distribution.applied(filter.metadata.namespace, filter.metadata.name) : null;
  const selected = new Set<string>();
  for (const [name, pod] of world.pods) if (pod.inMesh && targets(world, filter.metadata.namespace, filter.spec, pod)) selected.add(name);
  let running = 0;
  const failing: string[] = [];
  const quarantined: { pod: string; quarantine: QuarantinedFilter }[] = [];
  for (const s of sidecars) {
    const pod = world.pods.get(s.pod);
    if (!pod || !targets(world, filter.metadata.namespace, filter.spec, pod)) continue;
    selected.add(s.pod);
    const cannot = s.unavailable?.find((u) => u.filter === key);
    if (cannot) failing.push(`${s.pod}: ${cannot.reason}`);
    else if (s.running !== null && s.running === s.sent && s.filters.includes(key)) {
      const quarantine = s.quarantined?.find((q) => q.filter === key);
      if (quarantine) quarantined.push({ pod: s.pod, quarantine });
      else running++;
    }
  }
  const count = selected.size;
  const strategy = filter.spec.failStrategy;
  const applies = `its failStrategy ${strategy} applies there${strategy === "FailOpen" ? " (requests skip it)" : " (requests are refused)"}`;
  const alsoQuarantined = quarantined.length > 0 ? `; ${quarantinedOn(quarantined)}` : "";
  const waiting = count - running - quarantined.length;
  const notYet = waiting > 0 ? `; ${waiting} not yet (a sidecar that is starting, updating or not connected)` : "";
  const ready: ConditionInput =
    count === 0
      ? noneSelected(world, filter)
      : !sha256
        ? // The sidecars report it unavailable too: that is this, not a load failure of theirs.
          {
            type: "Ready",
            ok: false,
            reason: "NotInForce",
            message: `nothing of it is in force (${whyNot(state)}), so on the ${count} selected pod${count === 1 ? "" : "s"} ${applies}`,
          }
        : failing.length > 0
          ? {
              type: "Ready",
              ok: false,
              reason: "LoadFailed",
              message: `${running} of ${count} selected pods run ${whatRuns(applied, sha256, generation)}; ${failing.length} cannot load it (${failing.slice(0, 3).join("; ")})${alsoQuarantined}, so ${applies}`,
            }
          : quarantined.length > 0
            ? {
                type: "Ready",
                ok: false,
                reason: "Quarantined",
                message: `${running} of ${count} selected pods run ${whatRuns(applied, sha256, generation)}${notYet}${alsoQuarantined}, so ${applies} until the back-off ends`,
              }
            : {
                type: "Ready",
                ok: running === count,
                reason: running === count ? "Running" : "Updating",
                message: `${running} of ${count} selected pods run ${whatRuns(applied, sha256, generation)}${notYet}`,
              };
  return {
    conditions: conditionsFrom(
      [
        state ? { type: "Accepted", ...state.accepted } : { type: "Accepted", ok: null, reason: "Pending", message: "not checked yet" },
        state?.resolved
          ? { type: "Resolved", ...state.resolved }
          : { type: "Resolved", ok: null, reason: "Pending", message: "resolving the url" },
        ready,
      ],
      filter.status?.conditions,
      generation,
      now,
    ),
    ...(sha256 ? { sha256 } : {}),
    ready: `${running}/${count}`,
    ...(applied ? { inForce: applied } : {}),
  };
}
