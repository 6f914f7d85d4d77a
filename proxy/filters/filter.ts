// One configured filter: its compiled module (or why it has none), its instances
// (instance-pool.ts), and what happens when a call fails — FailClose answers 500, FailOpen skips
// the filter, FailReload calls a fresh instance once more. After a trap, an abort, a deadline or
// a memory failure the instance is dropped, since the module stopped mid-call and its memory may
// be half-updated. After an error return (but for FailReload's second call) it is kept: the
// phase function ran to its end, as after a success (instance.ts makes a fault of kind "error"
// only once it has returned), and the rest of an instance's per-call state (the current message,
// the error text, the memory blocks, the fuel and deadline) is reset by every call, whatever its
// outcome; state beyond a call lives in FilterState, outside the instance. A filter that keeps
// failing is quarantined (quarantine.ts): its failStrategy answers without running it,
// FailReload as FailClose, since reloading is what the quarantine saves.
import type { FilterConfig } from "../config/filters.ts";
import type { Logger } from "../../shared/log.ts";
import { diagnosticHeaderValue } from "../http/headers.ts";
import { FilterFault } from "./fault.ts";
import { FilterInstance, type InstanceServices } from "./instance.ts";
import { InstancePool } from "./instance-pool.ts";
import type { FilterLogLevelName } from "./imports.ts";
import type { CompiledFilter } from "./module.ts";
import { isResponsePhase, PHASES, snapshot, type FilterMessage, type FilterPhaseName, type LocalReply } from "./message.ts";
import type { FilterMetrics } from "./metrics.ts";
import { Quarantine, type QuarantineStatus } from "./quarantine.ts";
import { FilterState } from "./state.ts";

export type FilterOutcome = { readonly reply: LocalReply | null };

const CONTINUE: FilterOutcome = { reply: null };

export interface FilterDependencies {
  readonly log: Logger;
  readonly metrics: FilterMetrics;
  readonly state: FilterState;
  /**
   * This filter's own quarantine (tests give one a clock); a new one by default; null never
   * quarantines it (`weft filter test`, where each sample shows its own fault).
   */
  readonly quarantine?: Quarantine | null;
  /**
   * Called when the filter is quarantined (or its back-off doubles), on the failure that trips it:
   * never on the request path otherwise. The end of a back-off is a time (`quarantined()`), not an event.
   */
  readonly onQuarantine?: () => void;
  /** Builds an instance (tests count them); `new FilterInstance` by default. */
  readonly instantiate?: (compiled: CompiledFilter, services: InstanceServices) => FilterInstance;
}

// V8 and JavaScriptCore compile a module's functions on their first call, and JavaScriptCore
// interprets them until they are hot. A module of weft's TypeScript engine is ~1 MB of
// interpreter, so a fresh module's first calls spend 10-40 ms compiling: past a 5 ms deadline
// for a filter that does some work. So, once per compiled module before its first request, a
// throwaway instance runs its phases on a made-up request a few times; the code a request
// takes is compiled, and hot, by then. What it does stays in the throwaway: its own state, no
// logs, no metrics. AssemblyScript modules are small, and do not take this path.
const WARM_ROUNDS = 32;
const WARM_BUDGET_MS = 30;
const WARM_CALL_TIMEOUT_MS = 100;
const warmedModules = new WeakSet<WebAssembly.Module>();

function compileAhead(compiled: CompiledFilter, services: InstanceServices): void {
  if (compiled.manifest?.engine !== "typescript" || warmedModules.has(compiled.module)) return;
  warmedModules.add(compiled.module);
  const started = performance.now();
  try {
    const instance = new FilterInstance(compiled, {
      ...services,
      state: new FilterState(),
      callTimeoutMs: WARM_CALL_TIMEOUT_MS,
      log: () => {},
      metric: () => {},
    });
    for (let round = 0; round < WARM_ROUNDS && performance.now() - started < WARM_BUDGET_MS; round++) {
      const message: FilterMessage = {
        phase: "on_request_headers",
        request: {
          method: "GET",
          path: "/",
          authority: "localhost",
          scheme: "http",
          headers: ["host", "localhost", "user-agent", "weft-warm-up", "accept", "*/*"],
        },
        response: null,
        body: null,
        attributes: { direction: "inbound", sourceAddress: "127.0.0.1", sourcePrincipal: "", requestId: "weft-warm-up" },
        reply: null,
      };
      for (const phase of PHASES.filter((p) => compiled.phases.has(p))) {
        message.phase = phase;
        if (isResponsePhase(phase)) message.response ??= { status: 200, headers: ["content-type", "text/plain"] };
        message.body = phase.endsWith("_body") ? new Uint8Array(0) : null;
        instance.call(phase, message);
      }
    }
  } catch {
    // A filter that fails on the made-up request compiles the rest on its first real one.
  }
}

/** FailClose's answer (FailReload's once it has reloaded): a 500 whose x-weft-error says why. */
/** FailClose's answer: 500 saying what failed (the reference host answers the same, sdk/cli/extism-host.ts). */
export function failClosedReply(text: string): LocalReply {
  return {
    status: 500,
    headers: ["content-type", "text/plain; charset=utf-8", "x-weft-error", diagnosticHeaderValue(text)],
    body: new TextEncoder().encode(`${text}\n`),
  };
}

function failClosed(text: string): FilterOutcome {
  return { reply: failClosedReply(text) };
}

export class Filter {
  readonly id: string;
  readonly config: FilterConfig;
  readonly compiled: CompiledFilter | null;
  /** Why the filter cannot run (load or configuration error), or "". */
  readonly unavailable: string;
  private readonly instances: InstancePool;
  private readonly quarantine: Quarantine | null;
  private readonly onQuarantine: (() => void) | undefined;
  private readonly services: InstanceServices;
  private readonly log: Logger;
  private readonly metrics: FilterMetrics;

  constructor(config: FilterConfig, compiled: CompiledFilter | null, unavailable: string, deps: FilterDependencies) {
    this.id = `${config.namespace}/${config.name}`;
    this.quarantine = deps.quarantine === undefined ? new Quarantine() : deps.quarantine;
    this.onQuarantine = deps.onQuarantine;
    this.config = config;
    this.compiled = compiled;
    this.unavailable = unavailable;
    this.metrics = deps.metrics;
    const log = (this.log = deps.log.child({ filter: this.id, sha256: config.module?.sha256.slice(0, 12) ?? "none" }));
    const filterLog = log.child({ source: "filter" });
    const settings = (config.config ?? {}) as Record<string, unknown>;
    this.services = {
      filterId: this.id,
      state: deps.state,
      config: typeof settings === "object" && settings !== null ? settings : {},
      configJson: JSON.stringify(config.config ?? {}),
      logLevel: config.logLevel,
      callTimeoutMs: config.limits.callTimeoutMs,
      log: (level: FilterLogLevelName, message: string) =>
        filterLog[level === "trace" ? "debug" : level](message, level === "trace" ? { trace: true } : undefined),
      metric: (kind, name, value) => {
        const problem = deps.metrics.record(this.id, kind, name, value);
        if (problem) log.warn("filter metric refused", { problem });
      },
    };
    // Asked for an instance only when there is a module (attempt, warm).
    const instantiate = deps.instantiate ?? ((c, s) => new FilterInstance(c, s));
    this.instances = new InstancePool(
      () => instantiate(compiled!, this.services),
      log,
      () => this.quarantined() !== null,
      // FailReload promises a fresh instance on every failure: it keeps one ready from the start.
      config.failStrategy === "FailReload",
    );
  }

  /** Whether the filter takes part in this phase (a filter that cannot load takes part in all it might). */
  handles(phase: FilterPhaseName): boolean {
    return this.compiled ? this.compiled.phases.has(phase) : phase === "on_request_headers";
  }

  /** Builds the instance now (and compiles ahead, see above), so that the first request does not pay for it. */
  warm(): void {
    if (!this.compiled) return;
    compileAhead(this.compiled, this.services);
    try {
      this.instances.get();
    } catch (e) {
      this.log.error("filter cannot start", { error: (e as Error).message });
    }
  }

  /** The filter left the configuration: calls in flight still run, but no spare instance is built for it. */
  retire(): void {
    this.instances.retire();
  }

  /** The quarantine in force now, or null. */
  quarantined(): QuarantineStatus | null {
    return this.quarantine?.status() ?? null;
  }

  run(phase: FilterPhaseName, message: FilterMessage): FilterOutcome {
    const strategy = this.config.failStrategy;
    const held = this.quarantined();
    if (held) {
      this.metrics.failure(this.id, phase, "quarantined");
      if (strategy === "FailOpen") return CONTINUE;
      return failClosed(
        `filter ${this.id} is quarantined for ${held.backoffMs} ms (${held.remainingMs} ms left): ${held.reason}; it is not run until then`,
      );
    }
    const restore = strategy === "FailClose" ? null : snapshot(message);
    let fault = this.attempt(phase, message);
    if (fault && strategy === "FailReload" && fault.kind !== "unavailable") {
      restore!();
      // FailReload's promise is a fresh instance, whatever the fault: an error return may come
      // from state the filter keeps in its own memory.
      if (fault.kind === "error") this.instances.drop();
      this.log.warn("filter failed; reloading it and calling it again (FailReload)", { phase, kind: fault.kind, error: fault.message });
      fault = this.attempt(phase, message);
    }
    if (!fault) {
      this.quarantine?.succeeded();
      return message.reply ? { reply: message.reply } : CONTINUE;
    }
    this.metrics.failure(this.id, phase, fault.kind);
    // One failure per request: a FailReload retry that succeeded made it a success.
    const tripped = this.quarantine?.failed(fault);
    if (tripped) {
      this.metrics.quarantine(this.id);
      this.log.error("filter quarantined: its failStrategy answers without running it", { failStrategy: strategy, ...tripped });
      this.onQuarantine?.();
    }
    if (strategy === "FailOpen") {
      restore!();
      this.log.warn("filter failed; skipping it (FailOpen)", { phase, kind: fault.kind, error: fault.message });
      return CONTINUE;
    }
    this.log.error("filter failed; answering 500 (FailClose)", { phase, kind: fault.kind, error: fault.message });
    return failClosed(`filter ${this.id} failed: ${fault.message}`);
  }

  private attempt(phase: FilterPhaseName, message: FilterMessage): FilterFault | null {
    if (!this.compiled) return new FilterFault("unavailable", this.unavailable);
    try {
      this.instances.get().call(phase, message);
      return null;
    } catch (e) {
      const fault = e instanceof FilterFault ? e : new FilterFault("trap", (e as Error).message);
      if (fault.kind !== "error") this.instances.drop();
      return fault;
    }
  }
}
