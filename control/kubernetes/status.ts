// Writes WasmFilter status (Accepted, Resolved, Ready and the RUNNING/SELECTED count) to the
// status subresource, only when it changes, keeping lastTransitionTime where a condition's
// status stays the same (as metav1.Condition asks).
import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "../../proxy/log.ts";
import { apiMessage, apiStatus } from "./errors.ts";
import { GROUP, VERSION } from "../resources/meta.ts";
import type { WasmFilter, WasmFilterStatus } from "../resources/wasm-filter.ts";

/** The status without timestamps, to tell whether anything changed. */
const essence = (s: WasmFilterStatus | undefined) =>
  JSON.stringify([s?.sha256, s?.ready, (s?.conditions ?? []).map((c) => [c.type, c.status, c.reason, c.message, c.observedGeneration])]);

export class StatusWriter {
  private readonly api: CustomObjectsApi;
  private readonly log: Logger;
  /** What was last written per filter, so unchanged status is not written again. */
  private readonly written = new Map<string, string>();

  constructor(kc: KubeConfig, log: Logger) {
    this.api = kc.makeApiClient(CustomObjectsApi);
    this.log = log;
  }

  async writeWasmFilter(filter: WasmFilter, status: WasmFilterStatus): Promise<void> {
    const key = `${filter.metadata.namespace}/${filter.metadata.name}`;
    const next = essence(status);
    if (this.written.get(key) === next || (!this.written.has(key) && essence(filter.status) === next)) return;
    try {
      await this.api.patchNamespacedCustomObjectStatus(
        { group: GROUP, version: VERSION, namespace: filter.metadata.namespace, plural: "wasmfilters", name: filter.metadata.name, body: { status } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
      this.written.set(key, next);
    } catch (e) {
      const code = apiStatus(e);
      // Deleted meanwhile: nothing to report.
      if (code === 404) return;
      this.log.warn("cannot write WasmFilter status; will retry on the next change", { filter: key, error: apiMessage(e) });
    }
  }

  /** Writes everything again on the next call (after becoming leader). */
  forgetAll(): void {
    this.written.clear();
  }
}
