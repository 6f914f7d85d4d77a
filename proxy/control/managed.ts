// `weft proxy --control-plane URL`: a sidecar whose certificate, configuration and filters
// come from the control plane. It starts with its admin port only (not ready), gets a
// workload certificate for its ServiceAccount (renewed before it expires), then applies each
// pushed version and keeps the last good one when a version is rejected or the control plane
// goes away.
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseConfig } from "../config/validate.ts";
import type { AppProbes } from "../admin/app-health.ts";
import type { ProxyConfig } from "../config/schema.ts";
import { enroll, startRenewal, type EnrolledIdentity, type Renewal } from "../identity/enroll.ts";
import { createLogger } from "../../shared/log.ts";
import { selectRuntime } from "../runtime/select.ts";
import { Sidecar } from "../sidecar/sidecar.ts";
import { createTelemetry } from "../telemetry/telemetry.ts";
import { ControlClient, type ConfigPush } from "./client.ts";
import { controlPlaneFilters } from "./filter-cache.ts";
import { QuarantineReporter } from "./quarantine-report.ts";
import type { ControlEndpoint } from "./http.ts";

// A filter that could not be loaded is tried again after 2 s, 4 s, ... at most every minute.
const FILTER_RETRY_FIRST_MS = 2_000;
const FILTER_RETRY_MAX_MS = 60_000;

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
  /**
   * Where this proxy binds its listeners, by listener name, over what the control plane says
   * (several proxies on one host: tests, local mode).
   */
  bind?: Record<string, { address?: string; port?: number }>;
  filterCacheDir?: string;
  /** The app's kubelet probes (WEFT_APP_PROBES), answered on the admin port. */
  appProbes?: AppProbes;
}

export interface ManagedProxy {
  sidecar: Sidecar;
  client: ControlClient;
  stop(): Promise<void>;
  readonly stopDeadlineMs: number;
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
    managedBy: endpoint.base,
    appProbes: options.appProbes ?? {},
  });
  // The workload certificate comes first: a configuration is applied only with an identity
  // to serve and call the mesh with, as Envoy waits for its SDS secret.
  let identity: EnrolledIdentity | null = null;
  let renewal: Renewal | null = null;
  const stopping = new AbortController();
  let last: ConfigPush | null = null;
  const install = async ({ version, config }: ConfigPush, current: EnrolledIdentity) => {
    const pushed = config as { listeners?: { name: string }[]; node?: object };
    // The admin server was bound at start and stays where it is; listeners bind where told.
    const listeners = (pushed.listeners ?? []).map((l) => ({ ...l, ...options.bind?.[l.name] }));
    const node = { ...pushed.node, id: `${options.pod}.${options.namespace}` };
    const { certificateChain, privateKey, trustBundle } = current;
    const next: ProxyConfig = parseConfig(
      { ...pushed, version, node, admin, listeners, identity: { certificateChain, privateKey, trustBundle } },
      `control plane version ${version}`,
    );
    await sidecar.apply(next);
    sidecar.notReady = null;
  };
  const enrolled = (async () => {
    let backoff = 1000;
    while (!stopping.signal.aborted) {
      try {
        identity = await enroll({ endpoint });
        log.info("workload certificate issued", { spiffeId: identity.spiffeId, notAfter: identity.notAfter.toISOString() });
        break;
      } catch (e) {
        sidecar.notReady = `waiting for a workload certificate from ${endpoint.base}: ${(e as Error).message}`;
        log.warn("cannot get a workload certificate yet; retrying", { error: (e as Error).message, retryInMs: backoff });
        await sleep(backoff, undefined, { signal: stopping.signal }).catch(() => {}); // stopping: the loop ends
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
    if (stopping.signal.aborted || !identity) return null;
    renewal = startRenewal({
      endpoint,
      current: identity,
      log,
      onRenewed: async (renewed) => {
        identity = renewed;
        // The same configuration with the new certificate: new connections use it at once.
        if (last) await install(last, renewed);
      },
    });
    return identity;
  })();
  const unavailable = () =>
    sidecar.filters.status().flatMap((f) => (f.ready ? [] : [{ filter: f.filter, reason: f.reason ?? "not loaded" }]));
  // A filter whose module could not be fetched (the control plane restarted and cannot pull it
  // yet) is fetched again with backoff; once it loads, the control plane is told.
  let retry: ReturnType<typeof setTimeout> | null = null;
  let retryMs = FILTER_RETRY_FIRST_MS;
  const retryUnavailable = () => {
    if (retry) clearTimeout(retry);
    retry = null;
    if (stopping.signal.aborted || unavailable().length === 0) {
      retryMs = FILTER_RETRY_FIRST_MS;
      return;
    }
    retry = setTimeout(async () => {
      retry = null;
      retryMs = Math.min(retryMs * 2, FILTER_RETRY_MAX_MS);
      const before = unavailable().length;
      if (last && identity)
        await install(last, identity).catch((e: Error) =>
          log.warn("cannot apply the configuration again to load its filters", { error: e.message }),
        );
      if (unavailable().length < before) await client.reacknowledge();
      retryUnavailable();
    }, retryMs);
  };
  const apply = async (push: ConfigPush) => {
    last = push;
    const current = identity ?? (await enrolled);
    if (!current) throw new Error("the proxy is stopping");
    await install(push, current);
    retryMs = FILTER_RETRY_FIRST_MS;
    retryUnavailable();
  };
  // A filter quarantined, or its back-off over: the control plane is told (the WasmFilter's status says so).
  const quarantines = new QuarantineReporter({ filters: () => sidecar.filters.status(), send: () => client.reacknowledge() });
  sidecar.filters.onQuarantine = () => quarantines.changed();
  const client = new ControlClient({
    endpoint,
    namespace: options.namespace,
    pod: options.pod,
    log,
    apply,
    unavailable,
    quarantined: () => quarantines.report(),
  });
  client.start();
  return {
    sidecar,
    client,
    // Past the drain timeout, a stop that has not finished is cut short by the runner, with
    // the last step logged here as what hung (Kubernetes would SIGKILL it later, without a word).
    get stopDeadlineMs() {
      return sidecar.stopDeadlineMs;
    },
    async stop() {
      stopping.abort();
      if (retry) clearTimeout(retry);
      quarantines.stop();
      renewal?.stop();
      log.info("stopping: closing the configuration stream");
      await client.stop();
      await sidecar.drain();
    },
  };
}
