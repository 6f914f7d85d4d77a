// A WebAssembly engine's words for a trap, made the same on Node, Deno and Bun, so that a
// filter's 500 (x-weft-error) and its log line do not depend on the runtime. JavaScriptCore
// (Bun) says "Unreachable code should not be executed (evaluating 'fn()')", naming the
// JavaScript that called the module; V8 (Node, Deno) says "unreachable". The engines do not even
// draw the same lines (JavaScriptCore's "Division by zero" is V8's "divide by zero" and
// "remainder by zero"; Deno's V8 says "null function" where Node's adds "or function signature
// mismatch"), so each known trap gets the WebAssembly spec tests' wording, or weft's where the
// engines merge two of the spec's.
import { FilterFault } from "./fault.ts";

const TRAPS: Record<string, string> = {
  unreachable: "unreachable",
  "unreachable code should not be executed": "unreachable",
  "memory access out of bounds": "out of bounds memory access",
  "out of bounds memory access": "out of bounds memory access",
  "divide by zero": "integer divide by zero",
  "remainder by zero": "integer divide by zero",
  "division by zero": "integer divide by zero",
  "divide result unrepresentable": "integer overflow",
  "integer overflow": "integer overflow",
  "float unrepresentable in integer range": "invalid conversion to integer",
  "out of bounds trunc operation": "invalid conversion to integer",
  "table index is out of bounds": "table index out of bounds",
  "out of bounds call_indirect": "table index out of bounds",
  "out of bounds table access": "table index out of bounds",
  "null function": "indirect call to a null function or one of another signature",
  "null function or function signature mismatch": "indirect call to a null function or one of another signature",
  "call_indirect to a null table entry": "indirect call to a null function or one of another signature",
  "call_indirect to a signature that does not match": "indirect call to a null function or one of another signature",
};

/** The engine's message without what only one engine adds. */
export function engineNeutral(message: string): string {
  const bare = message.replace(/ \(evaluating '[\s\S]*'\)$/, "");
  return TRAPS[bare.toLowerCase()] ?? bare;
}

/** What an exception out of a filter call says, in the same words on every engine and host. */
export function engineFault(e: unknown): FilterFault {
  if (e instanceof FilterFault) return e;
  const message = engineNeutral((e as Error)?.message ?? String(e));
  // The engines' words for it differ ("Maximum call stack size exceeded", with or without a period).
  if (e instanceof RangeError && /stack/i.test(message)) return new FilterFault("trap", "the filter exhausted the call stack");
  if (e instanceof WebAssembly.RuntimeError) return new FilterFault("trap", `the filter trapped: ${message}`);
  return new FilterFault("trap", `the filter failed: ${message}`);
}
