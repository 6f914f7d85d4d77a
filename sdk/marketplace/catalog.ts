// The marketplace index (plugins/index.json): every plugin in plugins/, its versions, and the
// digest each version builds to. Builds are reproducible, so the index can be checked by
// rebuilding: a digest that differs means the sources changed without a new version, or the
// index was edited by hand. Each plugin's README shows the same digest in its WasmFilter, and its
// config is the example `weft filter add` prints (so what the README shows is what a user gets).
import { readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { loadAll } from "js-yaml";
import { readManifest } from "../build/build.ts";
import { validateConfig } from "../../shared/filter-config-schema.ts";

const ARTIFACT_REPOSITORY = "oci://ghcr.io/weft-dev/plugins";

export interface IndexVersion {
  version: string;
  sha256: string;
  artifact: string;
  /** The manifest's default phase and priority, which `weft filter add` writes into the WasmFilter. */
  phase?: string;
  priority?: number;
  /** A config that fits the filter's schema: the one in its README's WasmFilter, which `weft filter add` prints. */
  example?: Record<string, unknown>;
}

export interface IndexPlugin {
  name: string;
  description: string;
  versions: IndexVersion[];
}

export interface MarketplaceIndex {
  plugins: IndexPlugin[];
}

/** Builds a plugin folder to its digest (buildFilter, or a cached build in tests). */
export type DigestOf = (dir: string) => Promise<{ sha256: string }>;

// The digest in the README's WasmFilter: `sha256: "<64 hex digits>"`.
const README_DIGEST = /^(\s*sha256:\s*)"?([0-9a-f]{64})"?\s*$/m;

/** Newest first (a release is newer than its pre-releases). */
function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const [core, pre] = v.split("+")[0]!.split(/-(.*)/s);
    return { parts: core!.split(".").map(Number), pre: pre ?? null };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i++) if (x.parts[i] !== y.parts[i]) return y.parts[i]! - x.parts[i]!;
  if (x.pre === y.pre) return 0;
  if (x.pre === null) return -1;
  if (y.pre === null) return 1;
  return y.pre.localeCompare(x.pre);
}

async function pluginDirs(pluginsDir: string): Promise<string[]> {
  const entries = await readdir(pluginsDir, { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory())
    .map((e) => path.join(pluginsDir, e.name))
    .sort();
}

interface Current {
  dir: string;
  name: string;
  description: string;
  version: IndexVersion;
}

/** The config of the WasmFilter in a plugin's README (its first yaml block with kind: WasmFilter). */
async function readmeExample(dir: string, configSchema: unknown): Promise<Record<string, unknown>> {
  const file = path.join(dir, "README.md");
  const text = await readFile(file, "utf8");
  for (const block of text.matchAll(/```yaml\n([\s\S]*?)```/g)) {
    const docs = loadAll(block[1]!) as { kind?: string; spec?: { config?: unknown } }[];
    const filter = docs.find((d) => d?.kind === "WasmFilter");
    if (!filter) continue;
    const config = filter.spec?.config;
    if (typeof config !== "object" || config === null || Array.isArray(config))
      throw new Error(`${file}: its WasmFilter example has no config object; give one that fits the filter's configSchema`);
    const problems = validateConfig(configSchema, config);
    if (problems.length > 0)
      throw new Error(`${file}: its WasmFilter example's config does not fit the filter's configSchema: ${problems.join("; ")}`);
    return config as Record<string, unknown>;
  }
  throw new Error(`${file}: has no yaml block with a WasmFilter example; add one (weft filter add prints its config)`);
}

async function current(pluginsDir: string, digestOf: DigestOf): Promise<Current[]> {
  const out: Current[] = [];
  for (const dir of await pluginDirs(pluginsDir)) {
    const manifest = await readManifest(dir);
    if (manifest.name !== path.basename(dir))
      throw new Error(
        `${dir}/filter.json: name is "${manifest.name}" but the folder is ${path.basename(dir)}; a plugin's folder is named after it`,
      );
    const { sha256 } = await digestOf(dir);
    out.push({
      dir,
      name: manifest.name,
      description: manifest.description,
      version: {
        version: manifest.version,
        sha256,
        artifact: `${ARTIFACT_REPOSITORY}/${manifest.name}:${manifest.version}`,
        ...(manifest.phase ? { phase: manifest.phase } : {}),
        ...(manifest.priority !== undefined ? { priority: manifest.priority } : {}),
        example: await readmeExample(dir, manifest.configSchema ?? {}),
      },
    });
  }
  return out;
}

// Older versions listed before stay listed: published versions stay installable.
function indexFor(plugins: Current[], previous: MarketplaceIndex | null): MarketplaceIndex {
  return {
    plugins: plugins.map((plugin) => {
      const older =
        previous?.plugins.find((p) => p.name === plugin.name)?.versions.filter((v) => v.version !== plugin.version.version) ?? [];
      return {
        name: plugin.name,
        description: plugin.description,
        versions: [plugin.version, ...older].sort((a, b) => compareVersions(a.version, b.version)),
      };
    }),
  };
}

/** Builds every plugin, writes the index and the digest in each plugin's README. */
export async function writeIndex(pluginsDir: string, indexFile: string, digestOf: DigestOf): Promise<MarketplaceIndex> {
  const plugins = await current(pluginsDir, digestOf);
  const previous = await readFile(indexFile, "utf8").then(
    (t) => JSON.parse(t) as MarketplaceIndex,
    () => null,
  );
  const index = indexFor(plugins, previous);
  for (const plugin of plugins) {
    const file = path.join(plugin.dir, "README.md");
    const text = await readFile(file, "utf8");
    if (!README_DIGEST.test(text)) throw new Error(`${file}: has no "sha256: <digest>" line in its WasmFilter example; add one`);
    await writeFile(file, text.replace(README_DIGEST, `$1"${plugin.version.sha256}"`));
  }
  await writeFile(indexFile, `${JSON.stringify(index, null, 2)}\n`);
  return index;
}

/** What does not match between the plugins' builds, the index and the READMEs; empty when all do. */
export async function checkIndex(pluginsDir: string, indexFile: string, digestOf: DigestOf): Promise<string[]> {
  const index = JSON.parse(await readFile(indexFile, "utf8")) as MarketplaceIndex;
  const problems: string[] = [];
  const plugins = await current(pluginsDir, digestOf);
  for (const plugin of plugins) {
    const listed = index.plugins.find((p) => p.name === plugin.name)?.versions.find((v) => v.version === plugin.version.version);
    if (!listed) problems.push(`${plugin.name} ${plugin.version.version} is not in ${indexFile}`);
    else if (listed.sha256 !== plugin.version.sha256) {
      problems.push(
        `${plugin.name} ${plugin.version.version}: ${indexFile} says sha256 ${listed.sha256}, but ${plugin.dir} builds to ${plugin.version.sha256} (a changed plugin needs a new version in filter.json)`,
      );
    } else if (JSON.stringify(listed.example) !== JSON.stringify(plugin.version.example)) {
      problems.push(`${plugin.name} ${plugin.version.version}: ${indexFile}'s example config is not the one in ${plugin.dir}/README.md`);
    }
    const readme = README_DIGEST.exec(await readFile(path.join(plugin.dir, "README.md"), "utf8"));
    if (readme?.[2] !== plugin.version.sha256)
      problems.push(
        `${plugin.dir}/README.md: its WasmFilter shows sha256 ${readme?.[2] ?? "(none)"}, but the plugin builds to ${plugin.version.sha256}`,
      );
  }
  for (const p of index.plugins)
    if (!plugins.some((c) => c.name === p.name))
      problems.push(`${p.name} is in ${indexFile} but ${path.join(pluginsDir, p.name)} does not exist`);
  return problems;
}
