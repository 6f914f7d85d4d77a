// Writes status to the status subresource, only when it changes, keeping lastTransitionTime
// where a condition's status stays the same (as metav1.Condition asks): weft's own kinds
// (WasmFilter, TrafficPolicy, AccessPolicy) whole, and weft's entries of an HTTPRoute's
// status.parents, a list other controllers write too.
import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "../../shared/log.ts";
import { apiMessage, apiStatus } from "./errors.ts";
import { GROUP, VERSION } from "../resources/meta.ts";
import type { AccessPolicy, AccessPolicyStatus } from "../resources/access-policy.ts";
import type { TrafficPolicy, TrafficPolicyStatus } from "../resources/traffic-policy.ts";
import type { WasmFilter, WasmFilterStatus } from "../resources/wasm-filter.ts";
import { mergeParents, type ParentConditions } from "../mesh/route-status.ts";

/**
 * A status without timestamps, with keys sorted (the API server returns them sorted, weft
 * writes them in its own order), to tell whether anything changed.
 */
export function essence(status: unknown): string {
  return JSON.stringify(status, (key, value: unknown) => {
    if (key === "lastTransitionTime") return undefined;
    if (value && typeof value === "object" && !Array.isArray(value))
      return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    return value;
  });
}

interface Named {
  metadata: { namespace: string; name: string };
  status?: unknown;
}

const GATEWAY = { group: "gateway.networking.k8s.io", version: "v1", plural: "httproutes" };
/** Another writer changed status.parents between our read and our write: read and merge again, this often. */
const CONFLICT_RETRIES = 3;

export class StatusWriter {
  private readonly api: CustomObjectsApi;
  private readonly log: Logger;
  /** What was last written per plural/namespace/name, so unchanged status is not written again. */
  private readonly written = new Map<string, string>();

  constructor(kc: KubeConfig, log: Logger) {
    this.api = kc.makeApiClient(CustomObjectsApi);
    this.log = log;
  }

  writeWasmFilter(filter: WasmFilter, status: WasmFilterStatus): Promise<void> {
    return this.writeWeft("WasmFilter", "wasmfilters", filter, status);
  }

  writeTrafficPolicy(policy: TrafficPolicy, status: TrafficPolicyStatus): Promise<void> {
    return this.writeWeft("TrafficPolicy", "trafficpolicies", policy, status);
  }

  writeAccessPolicy(policy: AccessPolicy, status: AccessPolicyStatus): Promise<void> {
    return this.writeWeft("AccessPolicy", "accesspolicies", policy, status);
  }

  private async writeWeft(kind: string, plural: string, resource: Named, status: unknown): Promise<void> {
    const { namespace, name } = resource.metadata;
    const key = `${plural}/${namespace}/${name}`;
    const next = essence(status);
    if (this.written.get(key) === next || (!this.written.has(key) && essence(resource.status) === next)) return;
    try {
      // Replaced whole, not merged: a merge patch would keep a field, or a key of status.inForce's
      // config, that the new status no longer has.
      await this.api.patchNamespacedCustomObjectStatus(
        { group: GROUP, version: VERSION, namespace, plural, name, body: [{ op: "add", path: "/status", value: status }] },
        setHeaderOptions("Content-Type", PatchStrategy.JsonPatch),
      );
      this.written.set(key, next);
    } catch (e) {
      // Deleted meanwhile: nothing to report.
      if (apiStatus(e) === 404) return;
      this.log.warn(`cannot write ${kind} status; will retry on the next change`, {
        resource: `${namespace}/${name}`,
        error: apiMessage(e),
      });
    }
  }

  /**
   * Replaces weft's entries of the HTTPRoute's status.parents with `ours`, keeping every other
   * controller's. The list is atomic (a patch replaces it whole), so it is read, merged and
   * written back with the resourceVersion read: a write that raced another controller's is
   * refused (409) and merged again.
   */
  async writeHttpRoute(namespace: string, name: string, ours: ParentConditions[], generation: number, now: string): Promise<void> {
    const key = `httproutes/${namespace}/${name}`;
    const next = essence([generation, ours]);
    if (this.written.get(key) === next) return;
    for (let attempt = 1; ; attempt++) {
      try {
        const current = (await this.api.getNamespacedCustomObjectStatus({ ...GATEWAY, namespace, name })) as {
          metadata?: { resourceVersion?: string };
          status?: { parents?: unknown[] };
        };
        const parents = mergeParents(current.status?.parents, ours, generation, now);
        if (essence(parents) !== essence(current.status?.parents ?? [])) {
          await this.api.patchNamespacedCustomObjectStatus(
            {
              ...GATEWAY,
              namespace,
              name,
              body: { metadata: { resourceVersion: current.metadata?.resourceVersion }, status: { parents } },
            },
            setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
          );
        }
        this.written.set(key, next);
        return;
      } catch (e) {
        const code = apiStatus(e);
        if (code === 404) return;
        if (code === 409 && attempt < CONFLICT_RETRIES) continue;
        this.log.warn("cannot write HTTPRoute status; will retry on the next change", {
          resource: `${namespace}/${name}`,
          error: apiMessage(e),
        });
        return;
      }
    }
  }

  /** Writes everything again on the next call (after becoming leader). */
  forgetAll(): void {
    this.written.clear();
  }
}
