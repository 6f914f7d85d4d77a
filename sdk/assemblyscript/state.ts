// State that outlives a call: Extism variables (per filter, across instances and versions in
// this proxy; the oldest are evicted past 1 MiB) and shared counters.
import { var_get, var_set, weft_counter_add } from "./abi";
import { bytesBlock, readBytes, readText, textBlock } from "./blocks";

export class state {
  static get(key: string): string | null {
    return readText(var_get(textBlock(key)));
  }
  static set(key: string, value: string): void {
    var_set(textBlock(key), textBlock(value));
  }
  static getBytes(key: string): Uint8Array | null {
    return readBytes(var_get(textBlock(key)));
  }
  static setBytes(key: string, value: Uint8Array): void {
    var_set(textBlock(key), bytesBlock(value));
  }
  static delete(key: string): void {
    var_set(textBlock(key), 0);
  }
}

export class counter {
  /** Adds `delta` to the counter shared by every instance of this filter; returns the new value. */
  static add(key: string, delta: i64): i64 {
    return weft_counter_add(textBlock(key), delta);
  }
  static get(key: string): i64 {
    return weft_counter_add(textBlock(key), 0);
  }
}
