// `weft status`: every sidecar connected to the control plane with the configuration version
// it runs and the filters in it (from the replicas' reports, control/kubernetes/proxy-report.ts),
// then every WasmFilter with its conditions, as the API server has them. Needs read access to
// the weft-proxies ConfigMap and to WasmFilters; nothing else.
import process from "node:process";
import { parseArgs } from "node:util";
import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { apiMessage, apiStatus } from "../kubernetes/errors.ts";
import { loadKubeConfig } from "../kubernetes/kubeconfig.ts";
import { isStale, PROXY_REPORT, type ProxyReport } from "../kubernetes/proxy-report.ts";
import { GROUP, VERSION } from "../resources/meta.ts";
import type { WasmFilter } from "../resources/wasm-filter.ts";

const USAGE = `usage: weft status [--kubeconfig FILE] [--namespace weft-system] [--json]

Shows every sidecar connected to the control plane (its configuration version, whether it
runs it, the WasmFilters in it) and every WasmFilter with its status.
`;

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join("   ")).join("\n") + "\n";
}

export async function statusCommand(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { kubeconfig: { type: "string" }, namespace: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } } }));
  } catch (e) {
    process.stderr.write(`weft status: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const kubeConfig = loadKubeConfig(values.kubeconfig);
  if (typeof kubeConfig === "string") {
    process.stderr.write(`weft status: ${kubeConfig}\n`);
    return 2;
  }
  const namespace = values.namespace ?? "weft-system";
  let reports: ProxyReport[];
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
    reports = Object.values(map?.data ?? {}).map((text) => JSON.parse(text) as ProxyReport).filter((r) => !isStale(r));
    const list = (await kubeConfig.makeApiClient(CustomObjectsApi).listClusterCustomObject({ group: GROUP, version: VERSION, plural: "wasmfilters" })) as { items: WasmFilter[] };
    filters = list.items;
  } catch (e) {
    process.stderr.write(`weft status: ${apiMessage(e)}\n`);
    return 1;
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ replicas: reports, wasmFilters: filters.map((f) => ({ name: `${f.metadata.namespace}/${f.metadata.name}`, status: f.status ?? null })) }, null, 2)}\n`);
    return 0;
  }
  const digests = new Map(filters.map((f) => [`${f.metadata.namespace}/${f.metadata.name}`, f.status?.sha256]));
  const proxies = reports.flatMap((r) => r.proxies.map((p) => ({ ...p, replica: r.replica }))).sort((a, b) => a.pod.localeCompare(b.pod));
  if (proxies.length === 0) {
    process.stdout.write(`no sidecars connected${reports.length === 0 ? ` (no report in ${namespace}/${PROXY_REPORT}: is the control plane running there?)` : ""}\n`);
  } else {
    const cannotLoad = (p: (typeof proxies)[number]) => (p.unavailable?.length ? `; cannot load ${p.unavailable.map((u) => `${u.filter} (${u.reason})`).join(", ")}` : "");
    const state = (p: (typeof proxies)[number]) => (p.rejected ? `rejected ${p.rejected.version}: ${p.rejected.error}` : p.running === null ? "applying" : p.running === p.sent ? `running${cannotLoad(p)}` : "updating");
    const rows = proxies.map((p) => [p.pod, p.running ?? "-", state(p), p.filters.map((f) => `${f}@${digests.get(f)?.slice(0, 12) ?? "?"}`).join(",") || "-", p.replica]);
    process.stdout.write(table([["SIDECAR", "VERSION", "STATE", "FILTERS", "CONTROL PLANE"], ...rows]));
  }
  if (filters.length > 0) {
    const condition = (f: WasmFilter, type: string) => f.status?.conditions?.find((c) => c.type === type);
    const rows = filters.map((f) => {
      const problem = ["Accepted", "Resolved", "Ready"].map((t) => condition(f, t)).find((c) => c && c.status !== "True");
      return [`${f.metadata.namespace}/${f.metadata.name}`, condition(f, "Resolved")?.status ?? "-", f.status?.ready ?? "-", f.status?.sha256?.slice(0, 12) ?? "-", problem ? `${problem.type}: ${problem.reason}: ${problem.message}` : ""];
    });
    process.stdout.write(`\n${table([["WASMFILTER", "RESOLVED", "READY", "SHA256", "PROBLEM"], ...rows])}`);
  }
  return 0;
}
