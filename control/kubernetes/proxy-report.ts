// What every connected sidecar runs, where `weft status` (and anyone with kubectl) can read
// it: the ConfigMap weft-proxies in the control plane's namespace. Each replica owns one key
// (its identity) and writes it with a merge patch, only when what its sidecars run changed, so
// replicas never overwrite each other; a replica that stops removes its key. Reading it needs
// nothing but Kubernetes RBAC on that ConfigMap.
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "../../proxy/log.ts";
import type { ProxyReportEntry } from "../push/report.ts";
import { apiMessage, apiStatus } from "./errors.ts";

export const PROXY_REPORT = "weft-proxies";

/** One replica's key. */
export interface ProxyReport {
  replica: string;
  updatedAt: string;
  proxies: ProxyReportEntry[];
}

// ConfigMap keys allow letters, digits, '-', '_' and '.'.
const keyFor = (replica: string) => `${replica.replace(/[^A-Za-z0-9_.-]/g, "-")}.json`;

export class ProxyReportWriter {
  private readonly core: CoreV1Api;
  private readonly namespace: string;
  private readonly replica: string;
  private readonly log: Logger;
  private written = "";

  constructor(kubeConfig: KubeConfig, namespace: string, replica: string, log: Logger) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.namespace = namespace;
    this.replica = replica;
    this.log = log;
  }

  async write(entries: ProxyReportEntry[]): Promise<void> {
    const proxies = JSON.stringify(entries);
    if (proxies === this.written) return;
    const report: ProxyReport = { replica: this.replica, updatedAt: new Date().toISOString(), proxies: entries };
    try {
      await this.patch({ [keyFor(this.replica)]: JSON.stringify(report) });
      this.written = proxies;
    } catch (e) {
      this.log.warn("cannot write the proxy report (weft status reads it)", { configMap: `${this.namespace}/${PROXY_REPORT}`, error: apiMessage(e) });
    }
  }

  /** The other replicas' sidecars, newest report first (a sidecar that moved is in two). */
  async others(): Promise<ProxyReportEntry[]> {
    const map = await this.core.readNamespacedConfigMap({ namespace: this.namespace, name: PROXY_REPORT }).catch(() => null);
    const own = keyFor(this.replica);
    return Object.entries(map?.data ?? {})
      .filter(([key]) => key !== own)
      .map(([, text]) => JSON.parse(text) as ProxyReport)
      .sort((a, b) => b.updatedAt.localeCompare(a.updatedAt))
      .flatMap((r) => r.proxies);
  }

  /** Removes this replica's key (its sidecars reconnect to another replica). */
  async remove(): Promise<void> {
    await this.patch({ [keyFor(this.replica)]: null }).catch(() => {});
  }

  private async patch(data: Record<string, string | null>): Promise<void> {
    const body = { data };
    try {
      await this.core.patchNamespacedConfigMap({ namespace: this.namespace, name: PROXY_REPORT, body }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
    } catch (e) {
      if (apiStatus(e) !== 404) throw e;
      const initial = Object.fromEntries(Object.entries(data).filter((entry): entry is [string, string] => entry[1] !== null));
      await this.core
        .createNamespacedConfigMap({ namespace: this.namespace, body: { metadata: { name: PROXY_REPORT, namespace: this.namespace, labels: { "app.kubernetes.io/part-of": "weft" } }, data: initial } })
        .catch(async (error: unknown) => {
          // Another replica made it first: patch it as planned.
          if (apiStatus(error) !== 409) throw error;
          await this.core.patchNamespacedConfigMap({ namespace: this.namespace, name: PROXY_REPORT, body }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
        });
    }
  }
}
