// Where a cluster's control plane gets a marketplace://NAME@VERSION module. The Node image
// carries the marketplace's reproducible builds next to its index (/opt/plugins/NAME/VERSION.wasm,
// deploy/image/marketplace.ts), so a release is served from that copy and a cluster that cannot
// reach the release's registry (air-gapped, or nothing published yet) still runs marketplace
// filters. Only a release with no copy in the image is pulled from its OCI artifact.
//
// The answer is where the module is and the digest the index lists: the resolver checks whatever
// it fetched against the index, so a damaged shipped file or a registry serving other bytes is
// refused instead of run.
import { stat } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { readMarketplace, shippedModulePath } from "../../sdk/cli/marketplace.ts";

/** Where a marketplace release's module is, and its digest by the index (null: the index gives none). */
export interface MarketplaceRelease {
  url: string;
  sha256: string | null;
}

/**
 * The control plane's marketplace: NAME@VERSION -> its module shipped in `dir` when there is
 * one, else the release's OCI artifact, each with the index's sha256; null when the index does
 * not list the release. `dir` holds index.json (read on every lookup: cheap, and a replaced
 * folder is seen without a restart).
 */
export function shippedMarketplace(dir: string): (name: string, version: string) => Promise<MarketplaceRelease | null> {
  return async (name, version) => {
    const index = await readMarketplace(dir);
    const release = index.plugins.find((p) => p.name === name)?.versions.find((v) => v.version === version);
    if (!release) return null;
    const file = shippedModulePath(dir, name, version);
    const shipped = await stat(file).then(
      (s) => s.isFile(),
      () => false,
    );
    return { url: shipped ? pathToFileURL(file).href : release.artifact, sha256: release.sha256 };
  };
}
