import { weft_now_ms } from "./abi";

/** Wall-clock time in milliseconds since the Unix epoch. */
export function now(): i64 {
  return weft_now_ms();
}
