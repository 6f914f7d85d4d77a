// Each WasmFilter's module: resolved from its url when its spec changes, checked the way the
// proxy will check it (digest, metering, ABI, config against the filter's schema), kept by
// digest and served to proxies. A resolution that fails leaves the last good module in
// place, so a typo in a url or a registry outage changes nothing but the status.
//
// The rule (docs/resources.md): a change that cannot be applied never widens access. A spec whose
// module does not resolve, or whose config the filter's schema refuses, leaves the last good
// module and config in force. A filter with nothing good yet (new, or never resolved by any
// control plane) is still sent to the sidecars, as unavailable with the reason: its failStrategy
// applies to the requests it is attached to, so a FailClose auth filter refuses them rather than
// let them through unchecked.
//
// The last good module and config survive a control plane restart and a change of leader: the
// leader writes them to the filter's status (status.sha256, status.inForce), and a control plane
// that has not resolved a filter itself, or cannot, keeps what its status reports (what a control
// plane accepted before, so what the sidecars run). A restart with a refused config in the spec
// therefore still sends the last accepted one. Pull failures are tried again with backoff, so a
// registry that comes back is used again without anyone touching the filter.
import { compileFilter } from "../../proxy/filters/module.ts";
import { checkFilterConfig } from "../../proxy/filters/config-check.ts";
import type { Logger } from "../../shared/log.ts";
import type { WasmFilter, WasmFilterInForce } from "../resources/wasm-filter.ts";
import type { FilterInForce, ResolvedFilters } from "../mesh/proxy-config.ts";
import { keyOf } from "../mesh/world.ts";
import type { Credentials } from "../../shared/oci-registry.ts";
import { UnresolvableUrl, type FilterResolver } from "./resolve.ts";

export interface FilterState {
  /** The spec this state was computed from. */
  generation: number;
  accepted: { ok: boolean; reason: string; message: string };
  resolved: { ok: boolean; reason: string; message: string } | null;
  /** The module in use: this generation's, or the last good one's when this one failed. */
  sha256: string | null;
  /**
   * The config the module in use runs with, and the generation it was accepted in (this control
   * plane's, or its status's); null when none was accepted.
   */
  applied: WasmFilterInForce | null;
}

export interface DistributionOptions {
  resolver: FilterResolver;
  log: Logger;
  /** Registry credentials from a pull secret in the filter's namespace. */
  credentials: (namespace: string, secret: string) => Promise<Credentials>;
  /** Called after any filter's state changes. */
  changed: () => void;
}

// A pull that failed is tried again after 2 s, 4 s, 8 s, ... at most every 5 minutes (jittered).
const RETRY_FIRST_MS = 2_000;
const RETRY_MAX_MS = 300_000;

/** The digest sidecars run before this control plane resolved the filter: the one its status reports. */
const lastResolved = (f: WasmFilter): string | null => f.status?.sha256 ?? null;
/** The config sidecars run the module of its status with before this control plane accepted one: the one its status reports. */
const lastAccepted = (f: WasmFilter): WasmFilterInForce | null => f.status?.inForce ?? null;

const specKey = (f: WasmFilter) => JSON.stringify([f.spec.url, f.spec.sha256, f.spec.pullSecret, f.spec.config, f.spec.limits.memoryMiB]);

export class FilterDistribution {
  private readonly options: DistributionOptions;
  private readonly modules = new Map<string, Uint8Array>();
  private readonly states = new Map<string, FilterState>();
  private readonly specs = new Map<string, string>();
  private readonly filters = new Map<string, WasmFilter>();
  private readonly inFlight = new Set<Promise<void>>();
  /** Digests of filters seen but not resolved yet by this control plane (lastResolved). */
  private readonly assumed = new Map<string, string>();
  private readonly retries = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(options: DistributionOptions) {
    this.options = options;
  }

  /** Resolves what changed among `filters`; forgets filters that are gone. */
  sync(filters: Iterable<WasmFilter>): void {
    const seen = new Set<string>();
    for (const f of filters) {
      const key = keyOf(f.metadata.namespace, f.metadata.name);
      seen.add(key);
      this.filters.set(key, f);
      const spec = specKey(f);
      if (this.specs.get(key) === spec) continue;
      this.specs.set(key, spec);
      const known = lastResolved(f);
      if (!this.states.has(key) && known) this.assumed.set(key, known);
      this.start(key, f, 0);
    }
    for (const key of new Set([...this.specs.keys(), ...this.states.keys()])) {
      if (!seen.has(key)) {
        this.states.delete(key);
        this.specs.delete(key);
        this.filters.delete(key);
        this.assumed.delete(key);
        this.cancelRetry(key);
      }
    }
  }

  /** Cancels pending retries (the control plane is stopping). */
  stop(): void {
    for (const key of [...this.retries.keys()]) this.cancelRetry(key);
  }

  /** Resolves when every resolution started so far has finished (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  state(namespace: string, name: string): FilterState | undefined {
    return this.states.get(keyOf(namespace, name));
  }

  /** What each filter puts in force, for the configuration computation: a module and its config, or why nothing. */
  resolved(): ResolvedFilters {
    const out = new Map<string, FilterInForce>();
    for (const key of this.filters.keys()) out.set(key, this.inForceOf(key)!);
    return out;
  }

  /** What one filter puts in force (undefined: a filter the distribution has not seen). */
  inForce(namespace: string, name: string): FilterInForce | undefined {
    return this.inForceOf(keyOf(namespace, name));
  }

  /**
   * The config a filter's module runs with and the generation it was accepted in: this control
   * plane's, else its status's; null when none is known.
   */
  applied(namespace: string, name: string): WasmFilterInForce | null {
    const key = keyOf(namespace, name);
    const f = this.filters.get(key);
    return f ? (this.states.get(key)?.applied ?? lastAccepted(f)) : null;
  }

  private inForceOf(key: string): FilterInForce | undefined {
    const f = this.filters.get(key);
    if (!f) return undefined;
    const state = this.states.get(key);
    const sha256 = state?.sha256 ?? this.assumed.get(key) ?? null;
    if (sha256 === null) return { unavailable: state ? this.refusal(state) : "the control plane is still resolving its url" };
    // The spec's own config where none was accepted (a digest kept from a status written before
    // weft kept status.inForce): sidecars check it too.
    const applied = this.applied(f.metadata.namespace, f.metadata.name) ?? { config: f.spec.config, limits: f.spec.limits };
    return { sha256, config: applied.config, limits: applied.limits };
  }

  /** Why a filter has nothing in force: what its state reports as wrong. */
  private refusal(state: FilterState): string {
    if (!state.accepted.ok) return `${state.accepted.reason}: ${state.accepted.message}`;
    return state.resolved && !state.resolved.ok ? `${state.resolved.reason}: ${state.resolved.message}` : "its module has not resolved";
  }

  module(sha256: string): Uint8Array | undefined {
    return this.modules.get(sha256);
  }

  /** The pull secret's credentials; what goes wrong is said about the Secret, never with what is in it. */
  private async pullCredentials(namespace: string, name: string): Promise<Credentials> {
    try {
      return await this.options.credentials(namespace, name);
    } catch (e) {
      // A JSON parser's error quotes the text it could not parse, here a Secret's content,
      // which would end up in the WasmFilter's status and the log.
      if (e instanceof SyntaxError)
        throw new Error(
          `pull secret ${namespace}/${name}: its .dockerconfigjson is not JSON (kubectl create secret docker-registry makes one that is)`,
        );
      throw e;
    }
  }

  /** What the configuration does with a filter whose spec cannot be applied, for its status. */
  private keeping(f: WasmFilter, keep: string | null, applied: FilterState["applied"]): string {
    if (keep === null) {
      const strategy = f.spec.failStrategy;
      return `nothing of it is in force yet, so its failStrategy ${strategy} applies where it is attached: ${strategy === "FailOpen" ? "those requests skip it" : "those requests are refused (500)"}`;
    }
    if (this.modules.has(keep) && applied)
      return `sidecars keep running sha256:${keep} with its last accepted config (generation ${applied.generation})`;
    if (this.modules.has(keep)) return `sidecars keep running sha256:${keep}, the last module that resolved`;
    return `the configuration keeps it at sha256:${keep}, the module its status reports, which this control plane cannot serve until a pull succeeds: sidecars that run it keep running it, sidecars without it apply its failStrategy ${f.spec.failStrategy}`;
  }

  /** Modules no filter uses any more are dropped (proxies that ran them have them cached). */
  private prune(): void {
    const used = new Set([...this.states.values()].map((s) => s.sha256));
    for (const sha256 of this.modules.keys()) if (!used.has(sha256)) this.modules.delete(sha256);
  }

  private start(key: string, f: WasmFilter, attempt: number): void {
    this.cancelRetry(key);
    const job = this.resolve(key, f, attempt).finally(() => this.inFlight.delete(job));
    this.inFlight.add(job);
  }

  private cancelRetry(key: string): void {
    clearTimeout(this.retries.get(key));
    this.retries.delete(key);
  }

  private retry(key: string, f: WasmFilter, attempt: number): void {
    const delay = Math.min(RETRY_FIRST_MS * 2 ** attempt, RETRY_MAX_MS) * (0.5 + Math.random() / 2);
    const timer = setTimeout(() => {
      this.retries.delete(key);
      if (this.specs.get(key) === specKey(f)) this.start(key, f, attempt + 1);
    }, delay);
    // A pending retry never keeps the process alive on its own.
    timer.unref?.();
    this.retries.set(key, timer);
  }

  private async resolve(key: string, f: WasmFilter, attempt: number): Promise<void> {
    const { log } = this.options;
    const previous = this.states.get(key);
    const generation = (f.metadata as { generation?: number }).generation ?? 0;
    const keep = previous ? previous.sha256 : lastResolved(f);
    const kept = previous ? previous.applied : lastAccepted(f);
    const settle = (state: FilterState) => {
      // A newer spec may have started resolving meanwhile: only the latest one reports.
      if (this.specs.get(key) !== specKey(f)) return;
      this.states.set(key, state);
      this.assumed.delete(key);
      this.prune();
      this.options.changed();
    };
    let bytes: Uint8Array;
    let sha256: string;
    let source: string;
    try {
      const credentials = f.spec.pullSecret ? await this.pullCredentials(f.metadata.namespace, f.spec.pullSecret) : undefined;
      ({ bytes, sha256, source } = await this.options.resolver.resolve(f.spec.url, f.spec.sha256, credentials));
    } catch (e) {
      const error = (e as Error).message;
      // A url that can never resolve is not retried: only a new spec can fix it.
      const reason = e instanceof UnresolvableUrl ? "InvalidURL" : /sha256 .* not the/.test(error) ? "DigestMismatch" : "PullFailed";
      const message = `${error}; ${this.keeping(f, keep, kept)}${reason === "PullFailed" ? "; the pull is tried again with backoff" : ""}`;
      log.warn("cannot resolve a WasmFilter; proxies keep the module they have", { filter: key, reason, error, kept: keep });
      settle({
        generation,
        accepted: { ok: true, reason: "Accepted", message: "the spec is valid" },
        resolved: { ok: false, reason, message },
        sha256: keep,
        applied: kept,
      });
      if (reason === "PullFailed" && this.specs.get(key) === specKey(f)) this.retry(key, f, attempt);
      return;
    }
    const where = `WasmFilter ${key}`;
    try {
      const compiled = await compileFilter(bytes, sha256, f.spec.limits.memoryMiB * 16, where);
      // The module in force, fetched again (a restarted control plane): served to sidecars even
      // when this generation's config is refused, as it would be had this control plane kept it.
      if (sha256 === keep) this.modules.set(sha256, bytes);
      const problems = checkFilterConfig(compiled.manifest, f.spec.config);
      if (problems.length > 0) {
        settle({
          generation,
          accepted: {
            ok: false,
            reason: "InvalidConfig",
            message: `config does not match the filter's schema: ${problems.join("; ")}; ${this.keeping(f, keep, kept)}`,
          },
          resolved: { ok: true, reason: "Resolved", message: `sha256:${sha256} from ${source}` },
          sha256: keep,
          applied: kept,
        });
        return;
      }
    } catch (e) {
      settle({
        generation,
        accepted: { ok: false, reason: "InvalidModule", message: `${(e as Error).message}; ${this.keeping(f, keep, kept)}` },
        resolved: { ok: true, reason: "Resolved", message: `sha256:${sha256} from ${source}` },
        sha256: keep,
        applied: kept,
      });
      return;
    }
    this.modules.set(sha256, bytes);
    log.info("WasmFilter resolved", { filter: key, sha256, source });
    settle({
      generation,
      accepted: { ok: true, reason: "Accepted", message: "the spec and config are valid" },
      resolved: { ok: true, reason: "Resolved", message: `sha256:${sha256} from ${source}` },
      sha256,
      applied: { generation, config: f.spec.config, limits: f.spec.limits },
    });
  }
}
