// The marketplace's modules the Node image ships, so that the control plane serves
// marketplace://NAME@VERSION filters without reaching any registry (control/distribution/marketplace.ts):
// every release in plugins/index.json whose sources are in plugins/NAME, built reproducibly
// (sdk/build/cache.ts, so a build already made by the tests or weft up is reused) and placed at
// /opt/plugins/NAME/VERSION.wasm beside the index. A module that does not build to the digest the
// index lists stops the image build: shipping it would put a different filter under the
// release's name, and the control plane would refuse it anyway.
import { copyFile, mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { builtFilter } from "../../sdk/build/cache.ts";
import { readManifest } from "../../sdk/build/build.ts";
import { shippedModulePath } from "../../sdk/cli/marketplace.ts";
import type { MarketplaceIndex } from "../../sdk/marketplace/catalog.ts";
import { Tree } from "./tree.ts";

const ROOT = path.resolve(import.meta.dirname ?? ".", "..", "..");
/** Where the bundle's chunks (/opt/weft/chunks) find the marketplace: ../../plugins. */
export const MARKETPLACE_IMAGE_DIR = "/opt/plugins";

export interface ShippedModule {
  name: string;
  version: string;
  sha256: string;
  /** The built .wasm on this machine. */
  file: string;
  /** Its path under the marketplace folder: NAME/VERSION.wasm. */
  at: string;
}

export interface MarketplaceModules {
  modules: ShippedModule[];
  /** Releases listed in the index whose sources are no longer in plugins/ (an older version): pulled from their artifact. */
  notShipped: string[];
}

/** Builds every release of `pluginsDir`'s index that its sources still make, each checked against the index. */
export async function marketplaceModules(pluginsDir = path.join(ROOT, "plugins")): Promise<MarketplaceModules> {
  const indexFile = path.join(pluginsDir, "index.json");
  const index = JSON.parse(await readFile(indexFile, "utf8")) as MarketplaceIndex;
  const modules: ShippedModule[] = [];
  const notShipped: string[] = [];
  for (const plugin of index.plugins) {
    const dir = path.join(pluginsDir, plugin.name);
    const manifest = await readManifest(dir).catch(() => null);
    for (const release of plugin.versions) {
      // Only the current version's sources are in the tree; older releases stay installable from their artifact.
      if (manifest?.version !== release.version) {
        notShipped.push(`${plugin.name}@${release.version}`);
        continue;
      }
      const built = await builtFilter(dir);
      if (built.sha256 !== release.sha256) {
        throw new Error(
          `marketplace module ${plugin.name}@${release.version}: ${dir} builds to sha256 ${built.sha256}, but ${indexFile} lists ${release.sha256}; ` +
            `the image would ship a different filter under the release's name, so it is not built. A changed plugin needs a new version in its filter.json, ` +
            `then "node sdk/marketplace/index.ts" to update the index ("node sdk/marketplace/index.ts --check" shows every difference)`,
        );
      }
      modules.push({
        name: plugin.name,
        version: release.version,
        sha256: built.sha256,
        file: built.path,
        at: shippedModulePath("", plugin.name, release.version),
      });
    }
  }
  return { modules, notShipped };
}

/** The image's layer: /opt/plugins/NAME/VERSION.wasm for every shipped module (the index is in the bundle's layer). */
export async function marketplaceTree(): Promise<Tree> {
  const tree = new Tree();
  for (const m of (await marketplaceModules()).modules) tree.file(path.join(MARKETPLACE_IMAGE_DIR, m.at), m.file, { mode: 0o644 });
  return tree;
}

/** The same folder on this machine (index.json and the modules), for `weft control --marketplace DIR`. */
export async function writeMarketplaceDir(out: string, pluginsDir = path.join(ROOT, "plugins")): Promise<MarketplaceModules> {
  const shipped = await marketplaceModules(pluginsDir);
  await mkdir(out, { recursive: true });
  await copyFile(path.join(pluginsDir, "index.json"), path.join(out, "index.json"));
  for (const m of shipped.modules) {
    await mkdir(path.join(out, path.dirname(m.at)), { recursive: true });
    await copyFile(m.file, path.join(out, m.at));
  }
  return shipped;
}
