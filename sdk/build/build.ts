// `weft filter build`: a filter folder (filter.json + filter.ts) to a module that carries its
// manifest, in the engine the manifest names (AssemblyScript or full TypeScript). The same
// folder always builds to the same bytes, so a digest names a build.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { PHASES } from "../../proxy/filters/message.ts";
import { importProblems } from "../../proxy/filters/imports.ts";
import { meter } from "../../proxy/filters/meter.ts";
import { MANIFEST_SECTION, validateManifest, type Manifest } from "../manifest/manifest.ts";
import { compileTypeScriptFilter } from "../typescript/build.ts";
import { compileFilter } from "./asc.ts";
import { BuildError } from "./error.ts";
import { appendCustomSection } from "./custom-section.ts";

export interface BuiltFilter {
  wasm: Uint8Array;
  sha256: string;
  manifest: Manifest;
}

/** Reads and checks `dir/filter.json`. */
export async function readManifest(dir: string): Promise<Manifest> {
  const file = path.join(dir, "filter.json");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    throw new BuildError(`cannot build ${dir}: ${file} is missing (scaffold a filter with "weft filter new")`, []);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new BuildError(`cannot build ${dir}: ${file} is not JSON: ${(e as Error).message}`, []);
  }
  const check = validateManifest(parsed);
  if (!check.ok)
    throw new BuildError(
      `cannot build ${dir}: ${file} is not a valid manifest`,
      check.problems.map((p) => `${file}: ${p}`),
    );
  return check.manifest;
}

/** What the proxy would refuse at load (docs/filter-abi.md), caught at build time instead. */
function checkAbi(wasm: Uint8Array, dir: string): void {
  const module = new WebAssembly.Module(wasm as Uint8Array<ArrayBuffer>);
  const problems: string[] = [];
  const exported = WebAssembly.Module.exports(module).map((e) => e.name);
  if (!PHASES.some((p) => exported.includes(p)))
    problems.push(
      `filter.ts exports none of the phase functions ${PHASES.join(", ")}: export at least one, e.g. "export function on_request_headers(): i32"`,
    );
  // The meter reads the imports' signatures (the engines do not reveal them); the limit does not matter here.
  const { functionImports } = meter(wasm, { maxMemoryPages: 65536 });
  problems.push(
    ...importProblems(
      functionImports,
      WebAssembly.Module.imports(module).filter((i) => i.kind !== "function"),
    ),
  );
  if (problems.length)
    throw new BuildError(
      `cannot build ${dir}: it would not load as a weft filter`,
      problems.map((p) => `${path.join(dir, "filter.ts")}: ${p}`),
    );
}

export async function buildFilter(dir: string): Promise<BuiltFilter> {
  const manifest = await readManifest(dir);
  // The manifest's engine: AssemblyScript compiled by asc, or full TypeScript run by weft's QuickJS engine.
  const compiled = manifest.engine === "typescript" ? await compileTypeScriptFilter(dir) : await compileFilter(dir);
  checkAbi(compiled, dir);
  const wasm = appendCustomSection(compiled, MANIFEST_SECTION, new TextEncoder().encode(JSON.stringify(manifest)));
  return { wasm, sha256: createHash("sha256").update(wasm).digest("hex"), manifest };
}
