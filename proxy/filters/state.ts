// State a filter keeps in this proxy beyond one call: Extism variables and shared counters.
// It belongs to the filter's namespace/name, not to one instance or module version, so a
// reloaded instance or a hot-swapped version carries on where the previous one was.

const MAX_VARIABLE_BYTES = 1024 * 1024;
const MAX_COUNTERS = 100_000;

export class FilterState {
  private readonly variables = new Map<string, Uint8Array>();
  private variableBytes = 0;
  private readonly counters = new Map<string, number>();

  getVariable(key: string): Uint8Array | undefined {
    return this.variables.get(key);
  }

  /** Oldest-written entries are evicted past 1 MiB, so a filter keyed by client cannot grow without bound. */
  setVariable(key: string, value: Uint8Array | null): void {
    const old = this.variables.get(key);
    if (old) {
      this.variables.delete(key);
      this.variableBytes -= old.length + key.length;
    }
    if (value === null) return;
    this.variables.set(key, value.slice());
    this.variableBytes += value.length + key.length;
    for (const [k, v] of this.variables) {
      if (this.variableBytes <= MAX_VARIABLE_BYTES) break;
      this.variables.delete(k);
      this.variableBytes -= v.length + k.length;
    }
  }

  addToCounter(key: string, delta: number): number {
    const value = (this.counters.get(key) ?? 0) + delta;
    if (delta !== 0) {
      this.counters.delete(key);
      this.counters.set(key, value);
      if (this.counters.size > MAX_COUNTERS) this.counters.delete(this.counters.keys().next().value!);
    }
    return value;
  }
}
