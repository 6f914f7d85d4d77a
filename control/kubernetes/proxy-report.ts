// What every connected sidecar runs, where `weft status` (and anyone with kubectl) can read
// it: the ConfigMap weft-proxies in the control plane's namespace. Each replica owns one key
// (its identity) and writes it with a merge patch when what its sidecars run changed, and at
// least every REPORT_HEARTBEAT_MS, so replicas never overwrite each other; a replica that stops
// removes its key. One that is killed cannot: its key goes stale, readers ignore it, and the
// leader removes it. Reading it needs nothing but Kubernetes RBAC on that ConfigMap.
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "../../shared/log.ts";
import type { ProxyReportEntry } from "../push/report.ts";
import { apiMessage, apiStatus } from "./errors.ts";

export const PROXY_REPORT = "weft-proxies";

/** One replica's key. */
export interface ProxyReport {
  replica: string;
  updatedAt: string;
  proxies: ProxyReportEntry[];
}

/** A replica rewrites its key at least this often, changed or not. */
export const REPORT_HEARTBEAT_MS = 60_000;
/** A key not rewritten for this long belongs to a replica that is gone (killed, or its node lost). */
export const REPORT_STALE_MS = 3 * REPORT_HEARTBEAT_MS;
/** How often each replica reads the other replicas' reports (one GET of this ConfigMap). */
export const PEER_REPORT_POLL_MS = 3_000;

/** Whether `report` is from a replica that stopped writing without removing it. */
export function isStale(report: ProxyReport, now = Date.now()): boolean {
  const at = Date.parse(report.updatedAt);
  return !Number.isFinite(at) || now - at > REPORT_STALE_MS;
}

/**
 * One entry per sidecar. A sidecar that moved between replicas is in two reports until the one
 * it left goes stale (a killed replica cannot remove its key): its latest connection is the one.
 */
export function latestPerPod<T extends { pod: string; connectedAt?: string }>(entries: Iterable<T>): T[] {
  const byPod = new Map<string, T>();
  for (const e of entries) {
    const seen = byPod.get(e.pod);
    if (!seen || (e.connectedAt ?? "") > (seen.connectedAt ?? "")) byPod.set(e.pod, e);
  }
  return [...byPod.values()];
}

// ConfigMap keys allow letters, digits, '-', '_' and '.'.
const keyFor = (replica: string) => `${replica.replace(/[^A-Za-z0-9_.-]/g, "-")}.json`;

export class ProxyReportWriter {
  private readonly core: CoreV1Api;
  private readonly namespace: string;
  private readonly replica: string;
  private readonly log: Logger;
  private written = "";
  private writtenAt = 0;

  constructor(kubeConfig: KubeConfig, namespace: string, replica: string, log: Logger) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.namespace = namespace;
    this.replica = replica;
    this.log = log;
  }

  async write(entries: ProxyReportEntry[]): Promise<void> {
    const proxies = JSON.stringify(entries);
    // Rewritten unchanged once a heartbeat: updatedAt is how readers know this replica is alive.
    if (proxies === this.written && Date.now() - this.writtenAt < REPORT_HEARTBEAT_MS) return;
    const report: ProxyReport = { replica: this.replica, updatedAt: new Date().toISOString(), proxies: entries };
    try {
      await this.patch({ [keyFor(this.replica)]: JSON.stringify(report) });
      this.written = proxies;
      this.writtenAt = Date.now();
    } catch (e) {
      this.log.warn("cannot write the proxy report (weft status reads it)", {
        configMap: `${this.namespace}/${PROXY_REPORT}`,
        error: apiMessage(e),
      });
    }
  }

  /**
   * The other live replicas' sidecars (a sidecar that moved is in two: latestPerPod).
   * With `removeStale` (the leader), it removes meanwhile the keys of replicas that stopped
   * without removing them, from the same read.
   */
  async others(removeStale: boolean): Promise<ProxyReportEntry[]> {
    const reports = await this.otherReports();
    const now = Date.now();
    if (removeStale) await this.removeStale(reports.filter(([, r]) => isStale(r, now)));
    return reports.filter(([, r]) => !isStale(r, now)).flatMap(([, r]) => r.proxies);
  }

  private async removeStale(stale: [string, ProxyReport][]): Promise<void> {
    if (stale.length === 0) return;
    try {
      await this.patch(Object.fromEntries(stale.map(([key]) => [key, null])));
      for (const [key, r] of stale)
        this.log.info("removed the proxy report of a control plane replica that stopped reporting", {
          configMap: `${this.namespace}/${PROXY_REPORT}`,
          key,
          replica: r.replica,
          updatedAt: r.updatedAt,
        });
    } catch (e) {
      this.log.warn("cannot remove stale proxy reports", { configMap: `${this.namespace}/${PROXY_REPORT}`, error: apiMessage(e) });
    }
  }

  private async otherReports(): Promise<[string, ProxyReport][]> {
    const map = await this.core.readNamespacedConfigMap({ namespace: this.namespace, name: PROXY_REPORT }).catch(() => null);
    const own = keyFor(this.replica);
    return Object.entries(map?.data ?? {}).flatMap(([key, text]): [string, ProxyReport][] => {
      if (key === own) return [];
      try {
        return [[key, JSON.parse(text) as ProxyReport]];
      } catch {
        // Not a report (hand-edited): gone as stale, since it has no updatedAt.
        return [[key, { replica: key, updatedAt: "", proxies: [] }]];
      }
    });
  }

  /** Removes this replica's key (its sidecars reconnect to another replica). */
  async remove(): Promise<void> {
    await this.patch({ [keyFor(this.replica)]: null }).catch(() => {});
  }

  private async patch(data: Record<string, string | null>): Promise<void> {
    const body = { data };
    try {
      await this.core.patchNamespacedConfigMap(
        { namespace: this.namespace, name: PROXY_REPORT, body },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
    } catch (e) {
      if (apiStatus(e) !== 404) throw e;
      const initial = Object.fromEntries(Object.entries(data).filter((entry): entry is [string, string] => entry[1] !== null));
      await this.core
        .createNamespacedConfigMap({
          namespace: this.namespace,
          body: {
            metadata: { name: PROXY_REPORT, namespace: this.namespace, labels: { "app.kubernetes.io/part-of": "weft" } },
            data: initial,
          },
        })
        .catch(async (error: unknown) => {
          // Another replica made it first: patch it as planned.
          if (apiStatus(error) !== 409) throw error;
          await this.core.patchNamespacedConfigMap(
            { namespace: this.namespace, name: PROXY_REPORT, body },
            setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
          );
        });
    }
  }
}
