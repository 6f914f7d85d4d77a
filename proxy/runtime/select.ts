// Picks the adapter for the runtime we are on. All three run the node:net adapter today:
// it is the one measured in bench/, and a native adapter replaces it on a runtime only
// where a benchmark shows it faster (docs/runtimes.md).
import { nodeRuntime } from "./node.ts";
import { currentRuntime } from "./current.ts";
import type { Runtime } from "./types.ts";

export function selectRuntime(): Runtime {
  return { ...nodeRuntime, name: currentRuntime().name };
}
