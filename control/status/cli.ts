// `weft status`: every sidecar connected to the control plane with the configuration version
// it runs and the filters in it (from the replicas' reports, control/kubernetes/proxy-report.ts),
// then every WasmFilter, TrafficPolicy, AccessPolicy and HTTPRoute (Service parents) with the
// status the control plane wrote, as the API server has them. Needs read access to the
// weft-proxies ConfigMap, to weft's kinds, to HTTPRoutes and to the pods of the sidecars'
// namespaces; a kind it cannot list is named, not fatal.
import process from "node:process";
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import { apiMessage, apiStatus } from "../kubernetes/errors.ts";
import { loadKubeConfig } from "../kubernetes/kubeconfig.ts";
import { isStale, latestPerPod, PROXY_REPORT, type ProxyReport } from "../kubernetes/proxy-report.ts";
import type { ProxyReportEntry } from "../push/report.ts";
import type { AccessPolicy } from "../resources/access-policy.ts";
import { GROUP, VERSION } from "../resources/meta.ts";
import type { TrafficPolicy } from "../resources/traffic-policy.ts";
import type { WasmFilter } from "../resources/wasm-filter.ts";
import {
  ACCESSPOLICY_HEADER,
  accessPolicyRow,
  HTTPROUTE_HEADER,
  httpRouteRows,
  isMeshRoute,
  nameOf,
  TRAFFICPOLICY_HEADER,
  trafficPolicyRow,
  WASMFILTER_HEADER,
  wasmFilterRow,
  type HttpRouteObject,
} from "./rows.ts";
import { table } from "./table.ts";
import { UsageError } from "../../shared/command.ts";

/** Line width when stdout is not a terminal (a pipe, a file, a CI log). */
const DEFAULT_WIDTH = 120;

type Listed<T> = { items: T[] } | { error: string };

/** namespace/name of the pods that exist in `namespaces`. */
async function existingPods(kubeConfig: KubeConfig, namespaces: Set<string>): Promise<Set<string>> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const lists = await Promise.all(
    [...namespaces].map(async (namespace) => ({ namespace, pods: await core.listNamespacedPod({ namespace }) })),
  );
  return new Set(lists.flatMap(({ namespace, pods }) => pods.items.map((p) => `${namespace}/${p.metadata?.name}`)));
}

/** A kind's objects in every namespace; a kind not installed (404) has none, a refusal is said. */
async function listAll<T>(kubeConfig: KubeConfig, group: string, version: string, plural: string): Promise<Listed<T>> {
  try {
    const list = (await kubeConfig.makeApiClient(CustomObjectsApi).listClusterCustomObject({ group, version, plural })) as { items: T[] };
    return { items: list.items };
  } catch (e) {
    if (apiStatus(e) === 404) return { items: [] };
    return { error: `cannot list ${plural}: ${apiMessage(e)}` };
  }
}

const sorted = <T extends { metadata: { namespace?: string; name: string } }>(items: T[]) =>
  items.slice().sort((a, b) => nameOf(a).localeCompare(nameOf(b)));

/** What `weft status`'s flags give (bin/commands/status.ts declares them, and checks at compile time that they fit this). */
export interface StatusValues {
  kubeconfig?: string;
  namespace: string;
  output?: "wide" | "json";
  json: boolean;
}

/** Prints the status (`weft status`, bin/commands/status.ts); 1 when the API server could not be read. */
export async function showStatus(values: StatusValues): Promise<number> {
  const output = values.json ? "json" : (values.output ?? "");
  const kubeConfig = loadKubeConfig(values.kubeconfig);
  if (typeof kubeConfig === "string") throw new UsageError(kubeConfig);
  const { namespace } = values;
  let reports: ProxyReport[];
  let proxies: (ProxyReportEntry & { replica: string })[];
  let filters: WasmFilter[];
  try {
    const map = await kubeConfig
      .makeApiClient(CoreV1Api)
      .readNamespacedConfigMap({ namespace, name: PROXY_REPORT })
      .catch((e: unknown) => {
        if (apiStatus(e) === 404) return null;
        throw e;
      });
    // A killed replica's report stays until the leader removes it: its sidecars have moved on.
    reports = Object.values(map?.data ?? {})
      .map((text) => JSON.parse(text) as ProxyReport)
      .filter((r) => !isStale(r));
    // A killed replica's key lists sidecars for up to REPORT_STALE_MS: the ones that moved show
    // where they are now (latestPerPod), the ones of pods deleted meanwhile not at all.
    const entries = latestPerPod(reports.flatMap((r) => r.proxies.map((p) => ({ ...p, replica: r.replica }))));
    const existing = await existingPods(kubeConfig, new Set(entries.map((e) => e.pod.slice(0, e.pod.indexOf("/")))));
    proxies = entries.filter((e) => existing.has(e.pod)).sort((a, b) => a.pod.localeCompare(b.pod));
    const list = (await kubeConfig
      .makeApiClient(CustomObjectsApi)
      .listClusterCustomObject({ group: GROUP, version: VERSION, plural: "wasmfilters" })) as { items: WasmFilter[] };
    filters = sorted(list.items);
  } catch (e) {
    process.stderr.write(`weft status: ${apiMessage(e)}\n`);
    return 1;
  }
  const [traffic, access, routes] = await Promise.all([
    listAll<TrafficPolicy>(kubeConfig, GROUP, VERSION, "trafficpolicies"),
    listAll<AccessPolicy>(kubeConfig, GROUP, VERSION, "accesspolicies"),
    listAll<HttpRouteObject>(kubeConfig, "gateway.networking.k8s.io", "v1", "httproutes"),
  ]);
  const meshRoutes = "items" in routes ? { items: sorted(routes.items.filter(isMeshRoute)) } : routes;
  if (output === "json") {
    const entries = <T extends { metadata: { namespace?: string; name: string }; status?: unknown }>(l: Listed<T>) =>
      "items" in l ? sorted(l.items).map((o) => ({ name: nameOf(o), status: o.status ?? null })) : { error: l.error };
    const json = {
      replicas: reports,
      wasmFilters: filters.map((f) => ({ name: nameOf(f), status: f.status ?? null })),
      trafficPolicies: entries(traffic),
      accessPolicies: entries(access),
      httpRoutes: entries(meshRoutes),
    };
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    return 0;
  }
  const width = output === "wide" ? undefined : (process.stdout.isTTY && process.stdout.columns) || DEFAULT_WIDTH;
  const digests = new Map(filters.map((f) => [`${f.metadata.namespace}/${f.metadata.name}`, f.status?.sha256]));
  if (proxies.length === 0) {
    process.stdout.write(
      `no sidecars connected${reports.length === 0 ? ` (no report in ${namespace}/${PROXY_REPORT}: is the control plane running there?)` : ""}\n`,
    );
  } else {
    const cannotLoad = (p: (typeof proxies)[number]) =>
      p.unavailable?.length ? `; cannot load ${p.unavailable.map((u) => `${u.filter} (${u.reason})`).join(", ")}` : "";
    const quarantined = (p: (typeof proxies)[number]) =>
      p.quarantined?.length ? `; quarantined ${p.quarantined.map((q) => `${q.filter} (until ${q.until}: ${q.reason})`).join(", ")}` : "";
    const state = (p: (typeof proxies)[number]) =>
      p.rejected
        ? `rejected ${p.rejected.version}: ${p.rejected.error}`
        : p.running === null
          ? "applying"
          : p.running === p.sent
            ? `running${cannotLoad(p)}${quarantined(p)}`
            : "updating";
    const rows = proxies.map((p) => [
      p.pod,
      p.running ?? "-",
      state(p),
      p.filters.map((f) => `${f}@${digests.get(f)?.slice(0, 12) ?? "?"}`).join(",") || "-",
      p.replica,
    ]);
    process.stdout.write(table([["SIDECAR", "VERSION", "STATE", "FILTERS", "CONTROL PLANE"], ...rows], { width, shrink: [2, 3] }));
  }
  const section = (header: string[], rows: string[][], shrink: number[]) => {
    if (rows.length > 0) process.stdout.write(`\n${table([header, ...rows], { width, shrink })}`);
  };
  const failed = (l: Listed<unknown>) => ("error" in l ? [l.error] : []);
  section(WASMFILTER_HEADER, filters.map(wasmFilterRow), [4]);
  section(TRAFFICPOLICY_HEADER, "items" in traffic ? sorted(traffic.items).map(trafficPolicyRow) : [], [1, 5]);
  section(ACCESSPOLICY_HEADER, "items" in access ? sorted(access.items).map(accessPolicyRow) : [], [2, 6]);
  section(HTTPROUTE_HEADER, "items" in meshRoutes ? meshRoutes.items.flatMap(httpRouteRows) : [], [1, 4]);
  const errors = [...failed(traffic), ...failed(access), ...failed(meshRoutes)];
  if (errors.length) process.stdout.write(`\n${errors.join("\n")}\n`);
  return 0;
}
