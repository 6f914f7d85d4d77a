// Filter metrics, exported on the proxy's /metrics as weft_filter_<name>{filter="ns/name"}.
// Names are [a-z0-9_], at most 32 per filter.
import { weft_metric } from "./abi";
import { textBlock } from "./blocks";

export namespace metrics {
  export function counter(name: string, delta: f64 = 1): void {
    weft_metric(0, textBlock(name), delta);
  }
  export function gauge(name: string, value: f64): void {
    weft_metric(1, textBlock(name), value);
  }
}
