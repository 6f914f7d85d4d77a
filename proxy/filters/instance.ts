// One instance of a filter module and its calls. Calls are synchronous and one at a time
// (the proxy is single-threaded), so one instance serves every request of its filter. The
// metering inserted at load time calls `tick` every TICK_FUEL loop iterations or function
// entries; tick ends the call once its deadline has passed.
import { Blocks } from "./blocks.ts";
import { FilterFault } from "./fault.ts";
import { buildImports, LOG_LEVELS, type FilterLogLevelName, type InstanceHost } from "./imports.ts";
import type { CompiledFilter } from "./module.ts";
import type { FilterMessage, FilterPhaseName } from "./message.ts";
import type { FilterState } from "./state.ts";
import { engineFault, engineNeutral } from "./trap-text.ts";

// How much metered work runs between two clock reads: small enough that a 1 ms deadline
// is kept to within a fraction of itself, large enough that reading the clock costs nothing.
const TICK_FUEL = 20_000;
// The first call of each phase of a module also pays for compiling what it runs (engines
// compile WebAssembly functions lazily) and for first uses in the host (a key import for a
// signature check): several ms on a slow machine, none of it the filter's doing. That one
// call gets this much time if its own deadline is shorter; a filter that loops forever is
// still stopped, once at this deadline and at its own after that.
const FIRST_CALL_DEADLINE_MS = 50;
const calledPhases = new WeakMap<WebAssembly.Module, Set<FilterPhaseName>>();

/** What an instance gets from its filter (shared by every instance and version of it). */
export interface InstanceServices {
  readonly filterId: string;
  readonly state: FilterState;
  readonly config: Readonly<Record<string, unknown>>;
  readonly configJson: string;
  readonly logLevel: FilterLogLevelName;
  readonly callTimeoutMs: number;
  log(level: FilterLogLevelName, message: string): void;
  metric(kind: number, name: string, value: number): void;
}

export class FilterInstance implements InstanceHost {
  readonly blocks: Blocks;
  message: FilterMessage | null = null;
  readonly state: FilterState;
  readonly config: Readonly<Record<string, unknown>>;
  readonly configJson: string;
  readonly filterId: string;
  readonly logLevel: number;
  private readonly services: InstanceServices;
  private readonly compiled: CompiledFilter;
  private readonly exports: WebAssembly.Exports;
  private readonly fuel: WebAssembly.Global;
  private readonly grow: WebAssembly.Global;
  private deadline = 0;
  private allowedMs = 0;
  private error = "";

  constructor(compiled: CompiledFilter, services: InstanceServices) {
    this.compiled = compiled;
    this.services = services;
    this.state = services.state;
    this.config = services.config;
    this.configJson = services.configJson;
    this.filterId = services.filterId;
    this.logLevel = LOG_LEVELS.indexOf(services.logLevel);
    this.blocks = new Blocks(compiled.maxMemoryPages * 65536);
    const imports = buildImports(this);
    imports["weft:meter"] = { tick: () => this.tick() };
    let instance: WebAssembly.Instance;
    // The module's start function runs inside the constructor under the same deadline as a call.
    this.allowedMs = services.callTimeoutMs;
    this.deadline = performance.now() + this.allowedMs;
    try {
      instance = new WebAssembly.Instance(compiled.module, imports);
    } catch (e) {
      if (e instanceof FilterFault) throw e;
      // A LinkError names the import whose signature does not match the ABI.
      throw new FilterFault("trap", `cannot instantiate the module: ${engineNeutral((e as Error).message)}`);
    }
    this.exports = instance.exports;
    this.fuel = this.exports.weft_fuel as WebAssembly.Global;
    this.grow = this.exports.weft_grow as WebAssembly.Global;
  }

  memory(): WebAssembly.Memory {
    return this.exports.memory as WebAssembly.Memory;
  }

  log(level: FilterLogLevelName, message: string): void {
    this.services.log(level, message);
  }

  metric(kind: number, name: string, value: number): void {
    this.services.metric(kind, name, value);
  }

  setError(message: string): void {
    this.error = message;
  }

  extendDeadline(ms: number): void {
    this.deadline += ms;
  }

  private tick(): void {
    if (performance.now() > this.deadline) {
      throw new FilterFault(
        "deadline",
        `the call ran past its deadline of ${this.allowedMs} ms (limits.callTimeoutMs${this.allowedMs !== this.services.callTimeoutMs ? "; a phase's first call may take longer while it compiles" : ""}) and was stopped`,
      );
    }
    // During the start function the exports (and so the fuel) are not reachable yet: tick
    // then runs at every check until the start function returns or its deadline passes.
    if (this.fuel) this.fuel.value = TICK_FUEL;
  }

  /** Runs one phase function; throws a FilterFault when it does not complete with 0. */
  call(phase: FilterPhaseName, message: FilterMessage): void {
    const fn = this.exports[phase] as () => number;
    this.message = message;
    this.error = "";
    this.fuel.value = TICK_FUEL;
    let called = calledPhases.get(this.compiled.module);
    if (!called) calledPhases.set(this.compiled.module, (called = new Set()));
    const first = !called.has(phase);
    called.add(phase);
    this.allowedMs = first ? Math.max(this.services.callTimeoutMs, FIRST_CALL_DEADLINE_MS) : this.services.callTimeoutMs;
    this.deadline = performance.now() + this.allowedMs;
    try {
      const code: unknown = fn();
      // JavaScript calls an export whatever its signature: a phase declared with another
      // result than i32 would otherwise fail as "returned 0" (an i64 0n) or "returned undefined".
      if (typeof code !== "number")
        throw new FilterFault(
          "error",
          `${phase} returned ${typeof code === "undefined" ? "no value" : `a ${typeof code}`}: a phase function is () -> i32 (docs/filter-abi.md)`,
        );
      if (code !== 0) throw new FilterFault("error", this.error ? `${phase} failed: ${this.error}` : `${phase} returned ${code}`);
    } catch (e) {
      throw this.describe(e);
    } finally {
      this.message = null;
      this.blocks.reset();
    }
  }

  private describe(e: unknown): FilterFault {
    if (e instanceof FilterFault) return e;
    // A trap in the kernel's block functions says what the filter did wrong.
    const kernelFault = this.blocks.explain(e);
    if (kernelFault) return kernelFault;
    // An allocator gives up (AssemblyScript's traps with "unreachable") once memory.grow is
    // refused at the ceiling; the metering records the last grow's result in weft_grow.
    if (e instanceof WebAssembly.RuntimeError && this.grow.value === -1) {
      const mib = this.memory().buffer.byteLength / (1 << 20);
      return new FilterFault(
        "memory",
        `the filter ran out of memory: it asked for more than its limit of ${this.compiled.maxMemoryPages / 16} MiB (limits.memoryMiB; it had ${mib} MiB) and trapped: ${engineNeutral(e.message)}`,
      );
    }
    return engineFault(e);
  }
}
