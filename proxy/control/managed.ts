// `weft proxy --control-plane URL`: a sidecar whose configuration and filters come from the
// control plane. It starts with its admin port only (not ready), applies each pushed version
// and keeps the last good one when a version is rejected or the control plane goes away.
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import process from "node:process";
import { parseConfig } from "../config/validate.ts";
import type { Identity, ProxyConfig } from "../config/schema.ts";
import { createLogger } from "../log.ts";
import { selectRuntime } from "../runtime/select.ts";
import { Sidecar } from "../sidecar/sidecar.ts";
import { createTelemetry } from "../telemetry/telemetry.ts";
import { ControlClient, type ConfigPush } from "./client.ts";
import { controlPlaneFilters } from "./filter-cache.ts";
import type { ControlEndpoint } from "./http.ts";

export interface ManagedProxyOptions {
  controlPlane: string;
  namespace: string;
  pod: string;
  /** The projected ServiceAccount token, re-read for every request (the kubelet rotates it). */
  tokenFile: string;
  /** PEM bundle for an https control plane. */
  caFile?: string;
  adminAddress: string;
  adminPort: number;
  /** Where this proxy binds its listeners, by listener name, over what the control plane says (several proxies on one host: tests, local mode). */
  bind?: Record<string, { address?: string; port?: number }>;
  filterCacheDir?: string;
  /** The workload certificate, when it is not pushed (until the proxy enrolls with the CA itself). */
  identity?: () => Identity | undefined;
}

export interface ManagedProxy {
  sidecar: Sidecar;
  client: ControlClient;
  stop(): Promise<void>;
}

export async function startManagedProxy(options: ManagedProxyOptions): Promise<ManagedProxy> {
  const log = createLogger({ component: "proxy", pod: `${options.namespace}/${options.pod}` });
  const endpoint: ControlEndpoint = {
    base: options.controlPlane.replace(/\/+$/, ""),
    ...(options.caFile ? { ca: await readFile(options.caFile, "utf8") } : {}),
    token: async () => (await readFile(options.tokenFile, "utf8")).trim(),
  };
  const admin = { address: options.adminAddress, port: options.adminPort };
  const bootstrap = parseConfig({ version: "bootstrap", admin, listeners: [], clusters: [] }, "bootstrap");
  const telemetry = createTelemetry(bootstrap.node, bootstrap.accessLog);
  const sidecar = await Sidecar.start(bootstrap, selectRuntime(), log, telemetry, {
    fetchFilter: controlPlaneFilters(endpoint, options.filterCacheDir ?? path.join(tmpdir(), "weft-filters")),
    notReady: `waiting for the first configuration from the control plane at ${endpoint.base}`,
  });
  const apply = async ({ version, config }: ConfigPush) => {
    const identity = options.identity?.();
    // The admin server was bound at start and stays where it is.
    const pushed = config as { listeners?: { name: string; tls?: string }[]; node?: object };
    const listeners = (pushed.listeners ?? []).map((l) => ({
      ...l,
      ...options.bind?.[l.name],
      // PERMISSIVE serves plaintext too; without a certificate yet, that is all it can serve.
      ...(l.tls === "PERMISSIVE" && !identity ? { tls: "DISABLE" } : {}),
    }));
    const node = { ...pushed.node, id: `${options.pod}.${options.namespace}` };
    const next: ProxyConfig = parseConfig({ ...pushed, version, node, admin, listeners, ...(identity ? { identity } : {}) }, `control plane version ${version}`);
    await sidecar.apply(next);
    sidecar.notReady = null;
  };
  const client = new ControlClient({ endpoint, namespace: options.namespace, pod: options.pod, log, apply });
  client.start();
  return {
    sidecar,
    client,
    async stop() {
      await client.stop();
      await sidecar.drain();
    },
  };
}

/** The process entry point: options from flags and the injected environment. */
export async function runManagedProxy(options: ManagedProxyOptions): Promise<void> {
  const proxy = await startManagedProxy(options);
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    await proxy.stop();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown());
  process.on("SIGINT", () => void shutdown());
}
