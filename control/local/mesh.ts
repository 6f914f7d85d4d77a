// Local mode's source for the mesh model: the directory's resources, plus what the cluster
// would have added — a pod per LocalWorkload replica and the endpoints of the Services that
// select them. Processes share one host, so each replica gets its own block of ports on
// 127.0.0.1 (app, sidecar admin, outbound, inbound) and peers dial a replica's inbound port
// directly, where a pod would have had iptables send them.
import { randomBytes } from "node:crypto";
import { watch, type FSWatcher } from "node:fs";
import type { Logger } from "../../shared/log.ts";
import type { TokenReviewer } from "../ca/token-review.ts";
import { keyOf, labelsMatch, type EndpointSliceInfo, type MeshWorld, type PodInfo } from "../mesh/world.ts";
import { readDirectory, type DirectoryRead } from "./directory.ts";
import type { LocalWorkload } from "./workload.ts";

/** One running copy of a LocalWorkload, as a pod would be. */
export interface LocalInstance {
  namespace: string;
  pod: string;
  /** The LocalWorkload's name. */
  workload: string;
  spec: LocalWorkload["spec"];
  labels: Record<string, string>;
  /** The directory of the YAML file that declared it: relative paths in the command start there. */
  dir: string;
  ports: { app: number; admin: number; outbound: number; inbound: number };
  /** The sidecar's credential, as a projected ServiceAccount token would be. */
  token: string;
}

export interface LocalMeshOptions {
  dir: string;
  world: MeshWorld;
  log: Logger;
  /** The first port of the blocks handed to replicas (4 each, 10 apart). */
  basePort: number;
  /** Called after the world changed. */
  changed: () => void;
}

const BLOCK = 10;

export class LocalMesh {
  private readonly options: LocalMeshOptions;
  private read: DirectoryRead | undefined;
  /** By namespace/pod; kept across reloads so a replica keeps its ports and token. */
  private readonly byPod = new Map<string, LocalInstance>();
  private readonly blocks = new Map<string, number>();
  private watcher: FSWatcher | null = null;
  private reloadTimer: ReturnType<typeof setTimeout> | null = null;
  private reloading = Promise.resolve();
  private readonly listeners = new Set<(read: DirectoryRead) => void>();

  constructor(options: LocalMeshOptions) {
    this.options = options;
  }

  instances(): LocalInstance[] {
    return [...this.byPod.values()];
  }

  problems(): ReadonlyMap<string, string> {
    return this.read?.problems ?? new Map();
  }

  /** Called after every reload with what was read (weft up starts and stops processes). */
  onReload(listener: (read: DirectoryRead) => void): void {
    this.listeners.add(listener);
  }

  /** Local mode's TokenReview: the tokens handed to this mesh's sidecars. */
  readonly reviewToken: TokenReviewer = async (token) => {
    for (const i of this.byPod.values()) {
      if (i.token === token) return { authenticated: true, username: `system:serviceaccount:${i.namespace}:${i.spec.serviceAccount}` };
    }
    return { authenticated: false, reason: "InvalidToken", message: "the token is not one weft up handed to a sidecar of this mesh" };
  };

  /** Reads the directory and updates the world. */
  reload(): Promise<void> {
    this.reloading = this.reloading.then(async () => {
      this.read = await readDirectory(this.options.dir, this.read);
      for (const [file, problem] of this.read.problems) this.options.log.error("resource file not applied", { file, problem });
      this.apply(this.read);
      for (const l of this.listeners) l(this.read);
    });
    return this.reloading;
  }

  /** Reloads on every change under the directory, a burst of saves at once. */
  watch(): void {
    this.watcher = watch(this.options.dir, { recursive: true }, (_event, file) => {
      if (file && /(^|[/\\])\./.test(String(file))) return;
      if (this.reloadTimer) clearTimeout(this.reloadTimer);
      this.reloadTimer = setTimeout(() => {
        this.reloadTimer = null;
        void this.reload();
      }, 100);
    });
  }

  async stop(): Promise<void> {
    this.watcher?.close();
    if (this.reloadTimer) clearTimeout(this.reloadTimer);
    await this.reloading;
  }

  private block(pod: string): number {
    let block = this.blocks.get(pod);
    if (block === undefined) {
      const used = new Set(this.blocks.values());
      for (block = 0; used.has(block); block++);
      this.blocks.set(pod, block);
    }
    return block;
  }

  private apply(read: DirectoryRead): void {
    const { world } = this.options;
    for (const map of [
      world.namespaces,
      world.services,
      world.endpointSlices,
      world.pods,
      world.httpRoutes,
      world.wasmFilters,
      world.trafficPolicies,
      world.accessPolicies,
    ])
      map.clear();
    const seen = new Set<string>();
    for (const contents of read.files.values()) {
      for (const [name, labels] of contents.namespaces) world.namespaces.set(name, labels);
      for (const s of contents.services) world.services.set(keyOf(s.namespace, s.name), s);
      for (const r of contents.httpRoutes) world.httpRoutes.set(keyOf(r.namespace, r.name), r);
      for (const f of contents.wasmFilters) world.wasmFilters.set(keyOf(f.metadata.namespace, f.metadata.name), f);
      for (const p of contents.trafficPolicies) world.trafficPolicies.set(keyOf(p.metadata.namespace, p.metadata.name), p);
      for (const p of contents.accessPolicies) world.accessPolicies.set(keyOf(p.metadata.namespace, p.metadata.name), p);
      for (const { workload, dir } of contents.workloads) {
        const { namespace, name } = workload.metadata;
        const labels = workload.metadata.labels ?? { app: name };
        for (let replica = 0; replica < workload.spec.replicas; replica++) {
          const pod = workload.spec.replicas === 1 ? name : `${name}-${replica}`;
          const key = keyOf(namespace, pod);
          seen.add(key);
          const base = this.options.basePort + this.block(key) * BLOCK;
          const ports = { app: workload.spec.port ?? base, admin: base + 1, outbound: base + 2, inbound: base + 3 };
          const token = this.byPod.get(key)?.token ?? randomBytes(24).toString("base64url");
          this.byPod.set(key, { namespace, pod, workload: name, spec: workload.spec, labels, dir, ports, token });
        }
      }
    }
    for (const key of [...this.byPod.keys()]) {
      if (!seen.has(key)) {
        this.byPod.delete(key);
        this.blocks.delete(key);
      }
    }
    for (const i of this.byPod.values()) {
      const pod: PodInfo = {
        namespace: i.namespace,
        name: i.pod,
        labels: i.labels,
        workload: i.workload,
        serviceAccount: i.spec.serviceAccount,
        ip: "127.0.0.1",
        inMesh: true,
        containerPorts: [{ name: "http", port: i.ports.app }],
        app: { address: "127.0.0.1", port: i.ports.app },
      };
      world.pods.set(keyOf(i.namespace, i.pod), pod);
    }
    // One slice per Service and replica: a slice has one port number per port name, and every
    // replica's sidecar listens on its own inbound port.
    for (const s of world.services.values()) {
      if (Object.keys(s.selector).length === 0) continue;
      for (const i of this.byPod.values()) {
        if (i.namespace !== s.namespace || !labelsMatch(s.selector, i.labels)) continue;
        const slice: EndpointSliceInfo = {
          namespace: s.namespace,
          name: `${s.name}-${i.pod}`,
          service: s.name,
          ports: s.ports.map((p) => ({ name: p.name, port: i.ports.inbound })),
          endpoints: [{ address: "127.0.0.1", pod: { namespace: i.namespace, name: i.pod } }],
        };
        world.endpointSlices.set(keyOf(slice.namespace, slice.name), slice);
      }
    }
    this.options.changed();
  }
}
