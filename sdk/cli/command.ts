// What `weft filter new|build|test|search|add` do once their command lines are read
// (bin/commands/filter/): each writes its result to stdout and returns the exit code.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import process from "node:process";
import { readManifest as readEmbeddedManifest, sha256Hex, type FilterManifest } from "../../proxy/filters/module.ts";
import { UsageError } from "../../shared/command.ts";
import { createLogger } from "../../shared/log.ts";
import { buildFilter } from "../build/build.ts";
import { BuildError } from "../build/error.ts";
import { loadFixtures } from "./fixtures.ts";
import { testFilter, type FilterHost } from "./filter-test.ts";
import { scaffoldFilter, type Engine } from "./new.ts";
import { findPlugin, readMarketplace, wasmFilterYaml } from "./marketplace.ts";

const out = (text: string) => process.stdout.write(text);

/** A filter that does not build is its author's to fix: the diagnostics, plain ("file:line:column: ..." for editors), and exit 1. */
export async function reportingBuildErrors(work: () => Promise<number>): Promise<number> {
  try {
    return await work();
  } catch (e) {
    if (!(e instanceof BuildError)) throw e;
    process.stderr.write(`${e.message}\n`);
    return 1;
  }
}

export async function newFilter(name: string, dir: string, engine: Engine): Promise<number> {
  const written = await scaffoldFilter(dir, name, engine);
  out(`${written.join("\n")}\nnext: cd ${dir} && weft filter test\n`);
  return 0;
}

export async function build(dir: string, outFile: string | undefined): Promise<number> {
  const built = await buildFilter(dir);
  const file = outFile ?? path.join(dir, "dist", `${built.manifest.name}.wasm`);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, built.wasm);
  await writeFile(`${file}.sha256`, `${built.sha256}  ${path.basename(file)}\n`);
  out(`${file}\nsha256 ${built.sha256}\n${built.wasm.length} bytes\n`);
  return 0;
}

/** The flags of `weft filter test` (bin/commands/filter/test.ts). */
export interface TestValues {
  host: FilterHost;
  /** A built module to test instead of building the folder. */
  wasm?: string | undefined;
}

export async function test(dir: string, values: TestValues = { host: "weft" }): Promise<number> {
  const built = values.wasm === undefined ? await buildFilter(dir) : await readBuilt(values.wasm);
  const fixtures = await loadFixtures(path.join(dir, "test", "requests.json"));
  const results = await testFilter(built.wasm, fixtures, createLogger({ filter: built.manifest.name }, "warn"), values.host);
  let failed = 0;
  for (const r of results) {
    if (r.problems.length === 0) out(`ok    ${r.name}\n`);
    else {
      failed++;
      out(`FAIL  ${r.name}\n${r.problems.map((p) => `      ${p}\n`).join("")}`);
    }
  }
  out(
    `${results.length - failed} passed, ${failed} failed (${built.manifest.name} ${built.manifest.version}, sha256 ${built.sha256.slice(0, 12)}, ${values.host === "extism" ? "on @extism/extism" : "on weft's host"})\n`,
  );
  return failed === 0 ? 0 : 1;
}

/** A module built elsewhere (any Extism PDK): its manifest is the one it embeds, if any. */
async function readBuilt(file: string): Promise<{ wasm: Uint8Array; sha256: string; manifest: { name: string; version: string } }> {
  let wasm: Uint8Array;
  try {
    wasm = await readFile(file);
  } catch (e) {
    throw new UsageError(`--wasm ${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
  let manifest: FilterManifest | null = null;
  try {
    manifest = readEmbeddedManifest(new WebAssembly.Module(wasm as Uint8Array<ArrayBuffer>), file);
  } catch (e) {
    throw new UsageError(`--wasm ${file}: ${(e as Error).message}`);
  }
  return {
    wasm,
    sha256: sha256Hex(wasm),
    manifest: { name: manifest?.name ?? path.basename(file, ".wasm"), version: manifest?.version ?? "(no manifest)" },
  };
}

export async function search(term: string): Promise<number> {
  const found = (await readMarketplace()).plugins.filter((p) => p.name.includes(term) || p.description.toLowerCase().includes(term));
  if (found.length === 0) out(`no marketplace filter matches "${term}"\n`);
  for (const p of found) out(`${p.name.padEnd(16)} ${p.versions[0]!.version.padEnd(8)} ${p.description}\n`);
  return 0;
}

export async function add(ref: string, target: { namespace?: string; app?: string }): Promise<number> {
  const { plugin, version } = findPlugin(await readMarketplace(), ref);
  out(wasmFilterYaml(plugin, version, target));
  return 0;
}
