// Local mode's marketplace: a marketplace://NAME@VERSION url is built from the plugin's
// sources in plugins/ (builds are reproducible, so the digest is the index's), cached across
// runs. No registry is needed to try a marketplace filter on one machine.
import type { MarketplaceRelease } from "../distribution/marketplace.ts";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { readManifest } from "../../sdk/build/build.ts";
import { builtFilter } from "../../sdk/build/cache.ts";

const PLUGINS = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), "..", "..", "plugins");

/** Progress of one build, for weft up's display. */
export type BuildProgress = (event: { filter: string; state: "building" | "built" | "failed"; ms?: number; error?: string }) => void;

export function localMarketplace(
  progress: BuildProgress = () => {},
): (name: string, version: string) => Promise<MarketplaceRelease | null> {
  return async (name, version) => {
    const dir = path.join(PLUGINS, name);
    const manifest = await readManifest(dir).catch(() => null);
    if (!manifest || manifest.version !== version) return null;
    const filter = `${name}@${version}`;
    const started = Date.now();
    progress({ filter, state: "building" });
    try {
      const built = await builtFilter(dir);
      progress({ filter, state: "built", ms: Date.now() - started });
      // Built from this checkout's sources, which may be ahead of the index: no digest to hold it to.
      return { url: pathToFileURL(built.path).href, sha256: null };
    } catch (e) {
      progress({ filter, state: "failed", error: (e as Error).message });
      throw e;
    }
  };
}
