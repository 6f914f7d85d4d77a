// Picks the adapter for the runtime we are on. Node and Deno run the node:net adapter (node.ts);
// Bun runs its own sockets (bun.ts) for plaintext listeners and upstream connections, which
// measured 15% less CPU per proxied request than node:net on Bun (docs/design/bun-sockets.md),
// and node.ts for TLS and the admin server. bun.ts is loaded only on Bun, so Node and Deno never
// evaluate it. A native adapter replaces node:net on a runtime only where it is measured faster.
import { nodeRuntime } from "./node.ts";
import { currentRuntime } from "./current.ts";
import type { Runtime } from "./types.ts";

const bun = currentRuntime().name === "bun" ? (await import("./bun.ts")).bunRuntime : null;

export function selectRuntime(): Runtime {
  return bun ?? { ...nodeRuntime, name: currentRuntime().name };
}
