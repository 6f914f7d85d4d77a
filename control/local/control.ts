// `weft control --local DIR`: the control plane without Kubernetes. The directory's YAML is
// the API server, LocalWorkloads are the pods, the CA lives in the state directory, and each
// sidecar authenticates with a token this process handed it. The configuration computation,
// filter distribution and push are the cluster's own (control/plane.ts).
import path from "node:path";
import type { Logger } from "../../shared/log.ts";
import { authenticator } from "../api/authenticate.ts";
import type { FetchHandler } from "../api/server.ts";
import { openAuthority } from "../ca/authority.ts";
import { directoryStore } from "../ca/dir-store.ts";
import { ENROLLMENT_PATH, enrollmentHandler } from "../ca/enrollment.ts";
import { wasmFilterStatus } from "../mesh/filter-status.ts";
import { keyOf } from "../mesh/world.ts";
import type { OutboundTraffic } from "../mesh/outbound-traffic.ts";
import { startPlane, type Plane } from "../plane.ts";
import { reportOf } from "../push/report.ts";
import type { WasmFilterStatus } from "../resources/wasm-filter.ts";
import { dashboard, DASHBOARD_PATH, type Dashboard } from "../dashboard/app.ts";
import { localDashboardSource } from "./dashboard.ts";
import { localMarketplace, type BuildProgress } from "./marketplace.ts";
import { LocalMesh } from "./mesh.ts";

export interface LocalControlOptions {
  /** The directory of YAML resources. */
  dir: string;
  /** Where the CA and other state live; default DIR/.weft. */
  stateDir?: string;
  log: Logger;
  address?: string;
  port?: number;
  basePort?: number;
  trustDomain?: string;
  progress?: BuildProgress;
  /** Registries (host:port) spoken to over plain HTTP. */
  insecureRegistries?: string[];
  /** What apps' requests for hosts outside the mesh get (default ALLOW_ANY; docs/egress.md). */
  outboundTraffic?: OutboundTraffic;
}

export interface LocalControl {
  plane: Plane;
  mesh: LocalMesh;
  url: string;
  /** Certificates issued, by SPIFFE ID: the newest one's expiry. */
  certificates: ReadonlyMap<string, { notAfter: Date }>;
  /** Every WasmFilter's status, as a cluster would write it. */
  filterStatus(): Map<string, WasmFilterStatus>;
  stop(): Promise<void>;
}

export async function startLocalControl(options: LocalControlOptions): Promise<LocalControl> {
  const { log } = options;
  const dir = path.resolve(options.dir);
  const stateDir = path.resolve(options.stateDir ?? path.join(dir, ".weft"));
  const trustDomain = options.trustDomain ?? "cluster.local";
  const authority = await openAuthority({ store: directoryStore(path.join(stateDir, "ca")), log });
  const certificates = new Map<string, { notAfter: Date }>();
  // The sidecars' tokens are the mesh's; the mesh needs the plane's world: tied up after both exist.
  let mesh: LocalMesh | null = null;
  const review = (token: string) => mesh!.reviewToken(token);
  // The dashboard reads the control plane it is served by: created once that exists.
  let board: Dashboard | null = null;
  let synced = false;
  const routes: Record<string, FetchHandler> = {
    [ENROLLMENT_PATH]: enrollmentHandler({
      authority: {
        issueWorkload: async (csr, spiffeId, ttlMs) => {
          const issued = await authority.issueWorkload(csr, spiffeId, ttlMs);
          certificates.set(spiffeId, { notAfter: issued.notAfter });
          return issued;
        },
      },
      reviewToken: review,
      trustDomain,
      log,
    }),
    [`${DASHBOARD_PATH}/*`]: (request) => board!.fetch(request),
  };
  const plane = await startPlane({
    log,
    // Every process shares this host: sidecars listen on loopback only, on ports weft up gives them.
    settings: { trustDomain, listenAddress: "127.0.0.1", ...(options.outboundTraffic ? { outboundTraffic: options.outboundTraffic } : {}) },
    resolver: {
      insecureRegistries: new Set(options.insecureRegistries ?? []),
      maxBytes: 32 * 1024 * 1024,
      allowFiles: true,
      marketplace: localMarketplace(options.progress),
    },
    credentials: async (namespace, name) => {
      throw new Error(
        `pull secret ${namespace}/${name}: local mode has no Secrets; use a registry without authentication, a file:// or a marketplace:// url`,
      );
    },
    authenticate: authenticator(review),
    synced: () => synced,
    routes,
    address: options.address ?? "127.0.0.1",
    port: options.port ?? 15012,
  });
  mesh = new LocalMesh({ dir, world: plane.world, log, basePort: options.basePort ?? 16000, changed: plane.schedule });

  const control: LocalControl = {
    plane,
    mesh,
    url: plane.api.url,
    certificates,
    filterStatus() {
      const now = new Date().toISOString();
      const sidecars = reportOf(plane.hub.connected);
      const out = new Map<string, WasmFilterStatus>();
      for (const f of plane.world.wasmFilters.values())
        out.set(keyOf(f.metadata.namespace, f.metadata.name), wasmFilterStatus(plane.world, plane.distribution, f, sidecars, now));
      return out;
    },
    async stop() {
      board?.stop();
      await mesh!.stop();
      await plane.stop();
    },
  };
  board = dashboard(localDashboardSource(control));
  await mesh.reload();
  plane.flush();
  synced = true;
  mesh.watch();
  return control;
}
