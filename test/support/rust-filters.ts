// The Rust example filters (examples/filters/rust-pdk: Extism's Rust PDK from crates.io;
// examples/filters/rust-raw: plain externs), built with
//   cargo build --release --locked --target wasm32-unknown-unknown
// into a target directory under ~/.cache/weft/rust-filters (WEFT_RUST_FILTERS_CACHE moves it),
// one per crate and version of its Cargo.lock, so a changed source rebuilds only the crate and a
// changed lock file starts a fresh one. Offline once the crates are in cargo's own cache: the
// build runs with --offline first and fetches (cargo fetch --locked) only if that fails.
// `npm test` builds them for the suites that declare `// needs: rust-filters` (test/setup.ts);
// by hand:
//   node_modules/.bin/node test/support/rust-filters.ts     # builds both, prints where and how long
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { findCargo, runTool, WASM_TARGET as TARGET } from "../../sdk/build/rust-toolchain.ts";

export const RUST_FILTERS = ["rust-pdk", "rust-raw"] as const;
export type RustFilter = (typeof RUST_FILTERS)[number];

const EXAMPLES = fileURLToPath(new URL("../../examples/filters/", import.meta.url));

/** The crate's folder (its test/requests.json is the samples). */
export const crateDir = (name: RustFilter) => path.join(EXAMPLES, name);

const CANNOT = "cannot build the Rust example filters (examples/filters/rust-pdk, rust-raw)";

/** Where a crate's builds go: keyed by its Cargo.lock, so a new lock file never reuses stale dependencies. */
async function targetDir(name: RustFilter, env: NodeJS.ProcessEnv): Promise<string> {
  const cache = env.WEFT_RUST_FILTERS_CACHE ?? path.join(env.HOME ?? homedir(), ".cache", "weft", "rust-filters");
  const lock = createHash("sha256")
    .update(await readFile(path.join(crateDir(name), "Cargo.lock")))
    .digest("hex")
    .slice(0, 16);
  return path.join(cache, `${name}-${lock}`);
}

/** Builds one example (cargo does nothing when it is up to date) and returns its module's path. */
export async function buildRustFilter(name: RustFilter, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const { cargo, cargoHome } = await findCargo(env, CANNOT);
  const dir = crateDir(name);
  const target = await targetDir(name, env);
  const cargoEnv = {
    ...env,
    CARGO_TARGET_DIR: target,
    PATH: `${path.dirname(cargo)}${path.delimiter}${env.PATH ?? ""}`,
    // The same bytes whatever the cargo home (its path lands in panic locations), as for the TypeScript engine.
    RUSTFLAGS: `--remap-path-prefix=${cargoHome}=/cargo`,
  };
  const build = ["build", "--release", "--locked", "--offline", "--target", TARGET];
  let result = await runTool(cargo, build, cargoEnv, dir);
  if (!result.ok) {
    // Most likely the crates are not in cargo's cache yet: fetch exactly what Cargo.lock names.
    const fetched = await runTool(cargo, ["fetch", "--locked", "--target", TARGET], cargoEnv, dir);
    if (!fetched.ok)
      throw new Error(`${CANNOT}: cargo fetch --locked failed in ${dir}:\n${fetched.stderr.trim().split("\n").slice(-20).join("\n")}`);
    result = await runTool(cargo, build, cargoEnv, dir);
  }
  if (!result.ok) throw new Error(`${CANNOT}: cargo build failed in ${dir}:\n${result.stderr.trim().split("\n").slice(-30).join("\n")}`);
  return path.join(target, TARGET, "release", `weft_${name.replaceAll("-", "_")}_filter.wasm`);
}

/** Builds one example if needed and returns its module. */
export async function rustFilterWasm(name: RustFilter, env: NodeJS.ProcessEnv = process.env): Promise<Uint8Array> {
  return readFile(await buildRustFilter(name, env));
}

if (import.meta.main) {
  try {
    for (const name of RUST_FILTERS) {
      const started = performance.now();
      const wasm = await rustFilterWasm(name);
      process.stdout.write(
        `${name}: ${wasm.length} bytes in ${((performance.now() - started) / 1000).toFixed(1)} s (${await targetDir(name, process.env)})\n`,
      );
    }
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(1);
  }
}
