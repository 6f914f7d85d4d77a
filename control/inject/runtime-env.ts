// Each runtime's memory settings for the sidecar, from its container's memory limit, so that its
// memory holds at the operating point (docs/design/sidecar-memory.md has the measurements they
// come from). The injector sets them on every proxy container from that pod's limit; the images
// carry them for the injector's default limit (deploy/image/images.ts).
//
// Left to itself, each engine sizes its heap for the machine's memory, not the container's:
// V8's old generation may then grow fourfold between full collections and its young generation
// to 2 x 32 MB, which took the sidecar to 210-380 MB under load on a 25 GB machine. Node does
// size itself from a container's limit, but with 1 MB semi-spaces, which cost it 9% more CPU
// per request at 1000 requests/s and 43% at full load; Deno and Bun do not read the limit.
import type { Runtime } from "./settings.ts";

/**
 * V8's young-generation semi-space, MB. The old generation's cap is what holds the RSS; the
 * young generation trades memory for scavenges: at 8 MB the sidecar took no more CPU per request
 * than with 32, where 2 MB saved another 8 MB for 8% more at 1000 requests/s and 15% at full load.
 */
const SEMI_SPACE_MB = 8;

/** The environment variables that configure `runtime` for a container that may use `memoryLimitBytes`. */
export function runtimeEnv(runtime: Runtime, memoryLimitBytes: number): Record<string, string> {
  // Half for V8's old generation (past it V8 collects harder, then fails with its own message
  // rather than the kernel's OOM kill); the rest is the runtime's code, the young generation,
  // buffers outside the heap and malloc.
  const oldSpaceMiB = Math.floor(memoryLimitBytes / 2 / 2 ** 20);
  switch (runtime) {
    case "node":
      return {
        // SIGUSR1 would open Node's inspector on the pod's loopback: whoever can signal the
        // sidecar could then run code next to its mTLS key. Profile a sidecar with --cpu-prof.
        NODE_OPTIONS: `--disable-sigusr1 --max-semi-space-size=${SEMI_SPACE_MB} --max-old-space-size=${oldSpaceMiB}`,
      };
    case "deno":
      return {
        DENO_V8_FLAGS: `--max-semi-space-size=${SEMI_SPACE_MB},--max-old-space-size=${oldSpaceMiB}`,
        // Deno reads and parses every module a string-literal import() names before it starts:
        // for the bundle, the whole CLI's chunks (the filter compiler alone is 15 MB), which the
        // sidecar never runs. They cost it 25 MB, and 170 MB on a pod's first start, when Deno
        // also compiles them for its code cache.
        DENO_UNSTABLE_LAZY_DYNAMIC_IMPORTS: "1",
      };
    case "bun":
      // JavaScriptCore sizes its heap and how fast it grows from the RAM it believes it has;
      // --smol picks its small-heap sizing.
      return { BUN_OPTIONS: "--smol", BUN_JSC_forceRAMSize: String(Math.floor(memoryLimitBytes)) };
  }
}
