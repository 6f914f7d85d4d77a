// Builds weft's images into one OCI image layout, from this repository and this Debian machine
// only: no Docker, no base image, no registry. Everything is cached under
// ~/.cache/weft/images (WEFT_IMAGE_CACHE moves it): bundles by what esbuild read, layers by
// their contents, so a second build with nothing changed only re-hashes its inputs.
import { mkdir } from "node:fs/promises";
import { homedir } from "node:os";
import process from "node:process";
import path from "node:path";
import { shopBundle, weftBundle } from "./bundle.ts";
import { imagePlans, SHOP_APPS, type LayerPlan } from "./images.ts";
import { HashMemo } from "./hash.ts";
import { buildLayer, type Layer } from "./layer.ts";
import type { Tree } from "./tree.ts";
import { blobsDir, writeImage, writeIndex, type WrittenImage } from "./oci.ts";

export const defaultCacheDir = () => process.env.WEFT_IMAGE_CACHE || path.join(homedir(), ".cache", "weft", "images");

export interface BuildResult {
  /** The OCI image layout: skopeo and podman read it as oci:LAYOUT:weft:0.1.0. */
  layout: string;
  images: WrittenImage[];
}

/** Builds (or takes from the cache) every image; `log` hears about each step. */
export async function buildImages(options: { cacheDir?: string; log?: (line: string) => void } = {}): Promise<BuildResult> {
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const log = options.log ?? (() => {});
  const layout = path.join(cacheDir, "oci");

  await mkdir(cacheDir, { recursive: true });
  const memo = await HashMemo.load(path.join(cacheDir, "file-hashes.json"));
  const [weft, shop] = await Promise.all([weftBundle(cacheDir, memo), shopBundle(cacheDir, SHOP_APPS, memo)]);
  log(`bundle weft: ${weft.cached ? "cached" : "built"} (${weft.dir})`);
  log(`bundle shop: ${shop.cached ? "cached" : "built"} (${shop.dir})`);

  // A layer shared by several images (the plans give the same object) is listed once.
  const seen = new Set<string>();
  const trees = new Map<LayerPlan, Promise<Tree>>();
  const images: WrittenImage[] = [];
  for (const plan of imagePlans({ weft: weft.dir, shop: shop.dir })) {
    const layers: Layer[] = [];
    const lower: Tree[] = [];
    // One layer at a time: tar | gzip of a runtime keeps two cores busy already.
    for (const layerPlan of plan.layers) {
      if (!trees.has(layerPlan)) trees.set(layerPlan, layerPlan.tree(memo));
      const tree = await trees.get(layerPlan)!;
      const layer = await buildLayer(layerPlan.name, tree.minus(lower), cacheDir, blobsDir(layout), memo);
      lower.push(tree);
      if (!seen.has(layer.digest))
        log(
          `layer ${layer.name}: ${layer.cached ? "cached" : "built"} ${layer.digest.slice(7, 19)} ${mb(layer.tarSize)} (${mb(layer.size)} gzip)`,
        );
      seen.add(layer.digest);
      layers.push(layer);
    }
    images.push(await writeImage(layout, plan.ref, layers, plan.config));
  }
  await memo.save();
  await writeIndex(layout, images);
  return { layout, images };
}

export const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
