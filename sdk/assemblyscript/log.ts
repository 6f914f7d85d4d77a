// Log lines from the filter: the proxy writes them as JSON lines with the filter's name,
// kept when at or above the WasmFilter's logLevel.
import { get_log_level, log_debug, log_error, log_info, log_trace, log_warn } from "./abi";
import { textBlock } from "./blocks";

export namespace log {
  export const TRACE: i32 = 0;
  export const DEBUG: i32 = 1;
  export const INFO: i32 = 2;
  export const WARN: i32 = 3;
  export const ERROR: i32 = 4;

  /** Whether a line at `level` is kept: check before building an expensive message. */
  export function enabled(level: i32): bool {
    return level >= get_log_level();
  }
  export function trace(message: string): void {
    log_trace(textBlock(message));
  }
  export function debug(message: string): void {
    log_debug(textBlock(message));
  }
  export function info(message: string): void {
    log_info(textBlock(message));
  }
  export function warn(message: string): void {
    log_warn(textBlock(message));
  }
  export function error(message: string): void {
    log_error(textBlock(message));
  }
}
