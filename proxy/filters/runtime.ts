// The proxy's filters across configurations: loads each configuration's modules before it is
// applied, keeps a filter's Filter object (and so its warm instance) when a configuration
// leaves it unchanged, and keeps per-filter state across versions. A filter that cannot be
// loaded or configured does not stop the configuration: it is reported, and requests it is
// attached to get its failStrategy.
//
// The engine itself (compiling and metering modules, instances, the ABI's host side) is loaded
// by the first configuration that has filters: a sidecar that never runs one never pays for its
// code (docs/design/sidecar-memory.md).
import type { Registry } from "prom-client";
import type { FilterConfig } from "../config/filters.ts";
import type { Logger } from "../../shared/log.ts";
import { FilterChain } from "./chain.ts";
import type { Filter } from "./filter.ts";
import { FilterMetrics } from "./metrics.ts";
import type { CompiledFilter, FilterModuleCache, ModuleFetcher } from "./module.ts";
import type { QuarantineStatus } from "./quarantine.ts";
import { FilterState } from "./state.ts";

export interface FilterStatus {
  readonly filter: string;
  readonly sha256: string;
  readonly ready: boolean;
  readonly reason?: string;
  readonly manifest?: { name?: string; version?: string };
  /** While the filter is quarantined: for how long, and why. */
  readonly quarantine?: QuarantineStatus;
}

interface Engine {
  Filter: typeof import("./filter.ts").Filter;
  checkFilterConfig: typeof import("./config-check.ts").checkFilterConfig;
  modules: FilterModuleCache;
}

export class FilterRuntime {
  private readonly log: Logger;
  private readonly metrics: FilterMetrics;
  private readonly fetchByDigest: ModuleFetcher | null;
  /** Set once the engine is loaded: `install` runs in the synchronous switch and cannot wait for it. */
  private engine: Engine | undefined;
  private loading: Promise<Engine> | undefined;
  private readonly states = new Map<string, FilterState>();
  private current = new Map<string, Filter>();
  chain: FilterChain = FilterChain.EMPTY;
  /** Called when one of the filters is quarantined (managed.ts tells the control plane); never per request. */
  onQuarantine: () => void = () => {};

  constructor(log: Logger, registry: Registry, fetchByDigest: ModuleFetcher | null = null) {
    this.log = log;
    this.fetchByDigest = fetchByDigest;
    this.metrics = new FilterMetrics(registry, () => this.chain.filters.map((f) => [f.id, f.quarantined() !== null] as const));
  }

  private loadEngine(): Promise<Engine> {
    this.loading ??= Promise.all([import("./filter.ts"), import("./module.ts"), import("./config-check.ts")]).then(
      ([{ Filter }, { FilterModuleCache }, { checkFilterConfig }]) =>
        (this.engine = { Filter, checkFilterConfig, modules: new FilterModuleCache(this.fetchByDigest) }),
      (e: unknown) => {
        this.loading = undefined; // the next configuration tries again
        throw e;
      },
    );
    return this.loading;
  }

  /** Loads what `configs` need; the result is installed with `install` in the synchronous switch. */
  async prepare(configs: readonly FilterConfig[]): Promise<Map<string, Filter>> {
    const next = new Map<string, Filter>();
    if (configs.length === 0) return next;
    const { Filter, checkFilterConfig, modules } = await this.loadEngine();
    await Promise.all(
      configs.map(async (config, index) => {
        const key = JSON.stringify(config);
        const kept = this.current.get(key);
        // One that could not be loaded is tried again: its module may be reachable now.
        if (kept && !kept.unavailable) {
          next.set(key, kept);
          return;
        }
        const id = `${config.namespace}/${config.name}`;
        const where = `filter ${id} (filters[${index}])`;
        let compiled: CompiledFilter | null = null;
        let unavailable = "";
        try {
          if (!config.module) throw new Error(`${where} is not in force: ${config.unavailable}`);
          compiled = await modules.load(config.module, config.limits.memoryMiB * 16, where);
          const problems = checkFilterConfig(compiled.manifest, config.config);
          if (problems.length) {
            unavailable = `${where}: its config does not match the filter's schema: ${problems.join("; ")}`;
            compiled = null;
          }
        } catch (e) {
          unavailable = (e as Error).message;
        }
        if (unavailable)
          this.log.error("filter unavailable; requests it is attached to get its failStrategy", {
            filter: id,
            failStrategy: config.failStrategy,
            reason: unavailable,
          });
        let state = this.states.get(id);
        if (!state) this.states.set(id, (state = new FilterState()));
        const filter = new Filter(config, compiled, unavailable, {
          log: this.log,
          metrics: this.metrics,
          state,
          onQuarantine: () => this.onQuarantine(),
        });
        filter.warm();
        next.set(key, filter);
      }),
    );
    return next;
  }

  install(filters: Map<string, Filter>): void {
    const kept = new Set(filters.values());
    for (const f of this.current.values()) if (!kept.has(f)) f.retire();
    this.current = filters;
    this.chain = new FilterChain([...filters.values()]);
    this.engine?.modules.retain([...filters.values()].flatMap((f) => (f.compiled ? [f.compiled] : [])));
    const ids = new Set([...filters.values()].map((f) => f.id));
    for (const id of this.states.keys()) if (!ids.has(id)) this.states.delete(id);
  }

  status(): FilterStatus[] {
    return this.chain.filters.map((f) => {
      const quarantine = f.quarantined();
      return {
        filter: f.id,
        sha256: f.config.module?.sha256 ?? "",
        ready: f.compiled !== null,
        ...(f.unavailable ? { reason: f.unavailable } : {}),
        ...(f.compiled?.manifest ? { manifest: { name: f.compiled.manifest.name, version: f.compiled.manifest.version } } : {}),
        ...(quarantine ? { quarantine } : {}),
      };
    });
  }
}
