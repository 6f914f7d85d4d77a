// The filters bench/micro/filters.ts measures: every marketplace plugin, built from source,
// configured as its first sample request that passes through (test/requests.json), with that
// sample's headers on the request; and the scaffold's filter (weft filter new) in each engine,
// the same logic in AssemblyScript and in full TypeScript (weft's QuickJS engine); and a filter
// built with crates.io's Rust extism-pdk (examples/filters/rust-pdk), which copies its blocks 8
// bytes per kernel call.
import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildFilter } from "../../sdk/build/build.ts";
import { loadFixtures } from "../../sdk/cli/fixtures.ts";
import { scaffoldFilter } from "../../sdk/cli/new.ts";
import { sha256Hex } from "../../proxy/filters/module.ts";
import { buildRustFilter, crateDir } from "../../test/support/rust-filters.ts";

const PLUGINS = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "plugins");
/** A chain of three filters as a service would run them: authenticate, limit, rewrite. */
const CHAIN = ["jwt-auth", "rate-limit", "header-rewrite"];

export interface BenchFilter {
  name: string;
  path: string;
  sha256: string;
  config: unknown;
  headers: Record<string, string>;
  inChain: boolean;
}

async function benchFilter(name: string, dir: string, scratch: string, built?: { wasm: Uint8Array; sha256: string }): Promise<BenchFilter> {
  built ??= await buildFilter(dir);
  const file = path.join(scratch, `${name}.wasm`);
  await writeFile(file, built.wasm);
  const sample = (await loadFixtures(path.join(dir, "test", "requests.json"))).find((f) => f.expect.continue);
  // A rate limit that never refuses measures the common case, not the 429 path.
  const config = name === "rate-limit" ? { ...sample?.config, requestsPerSecond: 1e9, burst: 1e9 } : (sample?.config ?? {});
  return { name, path: file, sha256: built.sha256, config, headers: sample?.request.headers ?? {}, inChain: CHAIN.includes(name) };
}

export async function benchFilters(): Promise<BenchFilter[]> {
  const scratch = await mkdtemp(path.join(tmpdir(), "weft-bench-filters-"));
  const cases: BenchFilter[] = [];
  for (const name of (await readdir(PLUGINS, { withFileTypes: true }))
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort()) {
    cases.push(await benchFilter(name, path.join(PLUGINS, name), scratch));
  }
  for (const engine of ["assemblyscript", "typescript"] as const) {
    const name = `template-${engine}`;
    await scaffoldFilter(path.join(scratch, name), name, engine);
    cases.push(await benchFilter(name, path.join(scratch, name), scratch));
  }
  const rust = await readFile(await buildRustFilter("rust-pdk"));
  cases.push(await benchFilter("rust-pdk", crateDir("rust-pdk"), scratch, { wasm: rust, sha256: sha256Hex(rust) }));
  return cases;
}
