// Which runtime this process runs on. Adapters use it for the few places where the
// runtimes' node: APIs behave differently (each such place says why).
import process from "node:process";

export const RUNTIME_NAMES = ["node", "deno", "bun"] as const;
export type RuntimeName = (typeof RUNTIME_NAMES)[number];

export function currentRuntime(): { name: RuntimeName; version: string } {
  const g = globalThis as { Bun?: { version: string }; Deno?: { version: { deno: string } } };
  if (g.Bun) return { name: "bun", version: g.Bun.version };
  if (g.Deno) return { name: "deno", version: g.Deno.version.deno };
  return { name: "node", version: process.versions.node };
}
