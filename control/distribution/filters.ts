// Each WasmFilter's module: resolved from its url when its spec changes, checked the way the
// proxy will check it (digest, metering, ABI, config against the filter's schema), kept by
// digest and served to proxies. A resolution that fails leaves the last good module in
// place, so a typo in a url or a registry outage changes nothing but the status.
import { compileFilter } from "../../proxy/filters/module.ts";
import { checkFilterConfig } from "../../proxy/filters/config-check.ts";
import type { Logger } from "../../proxy/log.ts";
import type { WasmFilter } from "../resources/wasm-filter.ts";
import type { ResolvedFilters } from "../mesh/proxy-config.ts";
import { keyOf } from "../mesh/world.ts";
import type { Credentials } from "./registry.ts";
import type { FilterResolver } from "./resolve.ts";

export interface FilterState {
  /** The spec this state was computed from. */
  generation: number;
  accepted: { ok: boolean; reason: string; message: string };
  resolved: { ok: boolean; reason: string; message: string } | null;
  /** The module in use: this generation's, or the last good one's when this one failed. */
  sha256: string | null;
}

export interface DistributionOptions {
  resolver: FilterResolver;
  log: Logger;
  /** Registry credentials from a pull secret in the filter's namespace. */
  credentials: (namespace: string, secret: string) => Promise<Credentials>;
  /** Called after any filter's state changes. */
  changed: () => void;
}

const specKey = (f: WasmFilter) => JSON.stringify([f.spec.url, f.spec.sha256, f.spec.pullSecret, f.spec.config, f.spec.limits.memoryMiB]);

export class FilterDistribution {
  private readonly options: DistributionOptions;
  private readonly modules = new Map<string, Uint8Array>();
  private readonly states = new Map<string, FilterState>();
  private readonly specs = new Map<string, string>();
  private readonly inFlight = new Set<Promise<void>>();

  constructor(options: DistributionOptions) {
    this.options = options;
  }

  /** Resolves what changed among `filters`; forgets filters that are gone. */
  sync(filters: Iterable<WasmFilter>): void {
    const seen = new Set<string>();
    for (const f of filters) {
      const key = keyOf(f.metadata.namespace, f.metadata.name);
      seen.add(key);
      const spec = specKey(f);
      if (this.specs.get(key) === spec) continue;
      this.specs.set(key, spec);
      const job = this.resolve(key, f).finally(() => this.inFlight.delete(job));
      this.inFlight.add(job);
    }
    for (const key of [...this.states.keys()]) {
      if (!seen.has(key)) {
        this.states.delete(key);
        this.specs.delete(key);
      }
    }
  }

  /** Resolves when every resolution started so far has finished (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  state(namespace: string, name: string): FilterState | undefined {
    return this.states.get(keyOf(namespace, name));
  }

  /** The module each filter runs, for the configuration computation. */
  resolved(): ResolvedFilters {
    const out = new Map<string, { sha256: string }>();
    for (const [key, s] of this.states) if (s.sha256) out.set(key, { sha256: s.sha256 });
    return out;
  }

  module(sha256: string): Uint8Array | undefined {
    return this.modules.get(sha256);
  }

  /** Modules no filter uses any more are dropped (proxies that ran them have them cached). */
  private prune(): void {
    const used = new Set([...this.states.values()].map((s) => s.sha256));
    for (const sha256 of this.modules.keys()) if (!used.has(sha256)) this.modules.delete(sha256);
  }

  private async resolve(key: string, f: WasmFilter): Promise<void> {
    const { log } = this.options;
    const previous = this.states.get(key);
    const generation = (f.metadata as { generation?: number }).generation ?? 0;
    const keep = previous?.sha256 ?? null;
    const settle = (state: FilterState) => {
      // A newer spec may have started resolving meanwhile: only the latest one reports.
      if (this.specs.get(key) !== specKey(f)) return;
      this.states.set(key, state);
      this.prune();
      this.options.changed();
    };
    let bytes: Uint8Array;
    let sha256: string;
    let source: string;
    try {
      const credentials = f.spec.pullSecret ? await this.options.credentials(f.metadata.namespace, f.spec.pullSecret) : undefined;
      ({ bytes, sha256, source } = await this.options.resolver.resolve(f.spec.url, f.spec.sha256, credentials));
    } catch (e) {
      const message = (e as Error).message;
      const reason = /sha256 .* not the/.test(message) ? "DigestMismatch" : "PullFailed";
      log.warn("cannot resolve a WasmFilter; proxies keep the module they have", { filter: key, reason, error: message, kept: keep });
      settle({ generation, accepted: { ok: true, reason: "Accepted", message: "the spec is valid" }, resolved: { ok: false, reason, message }, sha256: keep });
      return;
    }
    const where = `WasmFilter ${key}`;
    try {
      const compiled = await compileFilter(bytes, sha256, f.spec.limits.memoryMiB * 16, where);
      const problems = checkFilterConfig(compiled.manifest, f.spec.config);
      if (problems.length > 0) {
        settle({
          generation,
          accepted: { ok: false, reason: "InvalidConfig", message: `config does not match the filter's schema: ${problems.join("; ")}` },
          resolved: { ok: true, reason: "Resolved", message: `sha256:${sha256} from ${source}` },
          sha256: keep,
        });
        return;
      }
    } catch (e) {
      settle({
        generation,
        accepted: { ok: false, reason: "InvalidModule", message: (e as Error).message },
        resolved: { ok: true, reason: "Resolved", message: `sha256:${sha256} from ${source}` },
        sha256: keep,
      });
      return;
    }
    this.modules.set(sha256, bytes);
    log.info("WasmFilter resolved", { filter: key, sha256, source });
    settle({ generation, accepted: { ok: true, reason: "Accepted", message: "the spec and config are valid" }, resolved: { ok: true, reason: "Resolved", message: `sha256:${sha256} from ${source}` }, sha256 });
  }
}
