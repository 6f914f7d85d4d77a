// The marketplace folder shipped with weft as `weft filter search/add/mirror` and the control
// plane read it: its index (plugins/index.json), where a release's module is shipped beside it,
// and a WasmFilter that attaches a listed filter.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { IndexPlugin, IndexVersion, MarketplaceIndex } from "../marketplace/catalog.ts";

/**
 * The marketplace folder shipped with weft: plugins/ in a checkout, /opt/plugins in the images
 * (the bundle's chunks are in /opt/weft/chunks, two levels down). Besides index.json, the Node
 * image's has the built modules (NAME/VERSION.wasm) the control plane serves.
 */
export const MARKETPLACE_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "plugins");

/** Where the module of NAME@VERSION is shipped inside the marketplace folder `dir`. */
export function shippedModulePath(dir: string, name: string, version: string): string {
  return path.join(dir, name, `${version}.wasm`);
}

export async function readMarketplace(dir = MARKETPLACE_DIR): Promise<MarketplaceIndex> {
  const file = path.join(dir, "index.json");
  const text = await readFile(file, "utf8").catch((e: Error) => {
    throw new Error(`cannot read the marketplace index ${file}: ${e.message} (it ships with weft; a --marketplace folder needs one too)`);
  });
  return JSON.parse(text) as MarketplaceIndex;
}

/** `name` or `name@version`; the newest version when none is given. */
export function findPlugin(index: MarketplaceIndex, ref: string): { plugin: IndexPlugin; version: IndexVersion } {
  const [name, wanted] = ref.split("@");
  const plugin = index.plugins.find((p) => p.name === name);
  if (!plugin) throw new Error(`no marketplace filter named "${name}"; the marketplace has ${index.plugins.map((p) => p.name).join(", ")}`);
  const version = wanted ? plugin.versions.find((v) => v.version === wanted) : plugin.versions[0];
  if (!version)
    throw new Error(`marketplace filter "${name}" has no version ${wanted}; it has ${plugin.versions.map((v) => v.version).join(", ")}`);
  return { plugin, version };
}

/** A WasmFilter for `kubectl apply -f -` that works as printed: its config is the filter's example, which fits its schema. */
export function wasmFilterYaml(plugin: IndexPlugin, version: IndexVersion, target: { namespace?: string; app?: string }): string {
  return [
    "apiVersion: weft.dev/v1alpha1",
    "kind: WasmFilter",
    "metadata:",
    `  name: ${plugin.name}`,
    ...(target.namespace ? [`  namespace: ${target.namespace}`] : []),
    "spec:",
    ...(target.app ? ["  selector:", "    matchLabels:", `      app: ${target.app}`] : []),
    // The control plane serves the module it ships, so this works where ghcr.io cannot be reached.
    `  url: marketplace://${plugin.name}@${version.version} # the module shipped with weft; also ${version.artifact}`,
    `  sha256: "${version.sha256}"`,
    ...(version.phase ? [`  phase: ${version.phase}`] : []),
    ...(version.priority !== undefined ? [`  priority: ${version.priority}`] : []),
    "  failStrategy: FailClose",
    // The README's example, as JSON (which is YAML): values such as "{{request.path}}" keep their quotes.
    `  config: ${JSON.stringify(version.example ?? {})} # the filter's example config; its README explains every field`,
    "",
  ].join("\n");
}
