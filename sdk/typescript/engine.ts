// weft's TypeScript filter engine (the Rust crate in sdk/typescript/engine/: QuickJS as a weft
// filter module) as WebAssembly. It is built once per version of the crate's sources, with
//   cargo build --release --locked --target wasm32-unknown-unknown
// and kept in ~/.cache/weft/ts-engine/<hash of the sources>/engine.wasm (WEFT_TS_ENGINE_CACHE
// moves it). The build needs cargo, Rust's wasm32-unknown-unknown target, clang (QuickJS is C)
// and llvm-ar; without one of them it fails and says how to install it.
//
// Reproducible: the engine's bytes depend only on its sources and the toolchain's versions,
// not on where the checkout, the cargo home or the cache are (their paths, which end up in
// panic and assertion messages, are remapped), so the same toolchain gives the same bytes.
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { findCargo, findExecutable, runTool, WASM_TARGET as TARGET } from "../build/rust-toolchain.ts";

const CRATE = fileURLToPath(new URL("./engine/", import.meta.url));
const OUTPUT = path.join(TARGET, "release", "weft_ts_engine.wasm");

export interface EngineOptions {
  /** Where built engines are kept (default: $WEFT_TS_ENGINE_CACHE or ~/.cache/weft/ts-engine). */
  readonly cacheDir?: string;
  /** The environment the tools are looked up in and run with (default: process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** A hash of everything cargo reads from the crate: the manifest, the lock file, the sources. */
async function sourceHash(): Promise<string> {
  const hash = createHash("sha256");
  const walk = async (dir: string): Promise<void> => {
    for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const file = path.join(dir, e.name);
      // An in-tree `cargo build` leaves target/: it is output, not source.
      if (e.isDirectory()) {
        if (e.name !== "target") await walk(file);
      } else
        hash
          .update(`${path.relative(CRATE, file)}\0`)
          .update(await readFile(file))
          .update("\0");
    }
  };
  await walk(CRATE);
  return hash.digest("hex").slice(0, 16);
}

const MISSING = "cannot build weft's TypeScript filter engine (sdk/typescript/engine, once per version, cached in ~/.cache/weft/ts-engine)";

interface Tools {
  cargo: string;
  clang: string;
  llvmAr: string;
  cargoHome: string;
}

/** Finds the toolchain, or throws naming what is missing and the command that installs it. */
async function findTools(env: Record<string, string | undefined>): Promise<Tools> {
  const { cargo, cargoHome } = await findCargo(env, MISSING);
  const clang = await findExecutable(["clang"], env);
  if (!clang) {
    throw new Error(
      `${MISSING}: clang is not installed (it compiles QuickJS, which is C, to WebAssembly). Install it with:\n  apt-get install clang llvm     # Debian, Ubuntu\n  brew install llvm              # macOS (Apple's clang has no WebAssembly target)`,
    );
  }
  // Debian's llvm package links llvm-ar; llvm-N alone only has llvm-ar-N, N being clang's version.
  const major = /version (\d+)/.exec((await runTool(clang, ["--version"], env)).stdout)?.[1];
  const llvmAr = await findExecutable(["llvm-ar", ...(major ? [`llvm-ar-${major}`] : [])], env);
  if (!llvmAr)
    throw new Error(
      `${MISSING}: llvm-ar is not installed (it archives the compiled QuickJS). Install it with:\n  apt-get install llvm           # Debian, Ubuntu\n  brew install llvm              # macOS`,
    );
  return { cargo, clang, llvmAr, cargoHome };
}

async function build(tools: Tools, cacheDir: string, env: Record<string, string | undefined>): Promise<Uint8Array> {
  const targetDir = path.join(cacheDir, "target");
  const { cargo, clang, llvmAr, cargoHome } = tools;
  const result = await runTool(
    cargo,
    ["build", "--release", "--locked", "--target", TARGET, "--manifest-path", path.join(CRATE, "Cargo.toml")],
    {
      ...env,
      PATH: `${path.dirname(cargo)}${path.delimiter}${env.PATH ?? ""}`,
      CARGO_TARGET_DIR: targetDir,
      [`CC_${TARGET.replaceAll("-", "_")}`]: clang,
      [`AR_${TARGET.replaceAll("-", "_")}`]: llvmAr,
      // Paths that would otherwise land in the module (C assertions, Rust panic locations).
      [`CFLAGS_${TARGET.replaceAll("-", "_")}`]: `-ffile-prefix-map=${targetDir}=/target -ffile-prefix-map=${cargoHome}=/cargo`,
      // (The crate's own files are named relative to it already.)
      RUSTFLAGS: `--remap-path-prefix=${cargoHome}=/cargo`,
    },
    CRATE,
  );
  if (!result.ok) {
    const tail = result.stderr.trim().split("\n").slice(-30).join("\n");
    throw new Error(`cannot build weft's TypeScript filter engine: cargo build failed in ${CRATE}:\n${tail}`);
  }
  return readFile(path.join(targetDir, OUTPUT));
}

/** The engine module, built now if this version of its sources has not been built before. */
export async function engineWasm(options: EngineOptions = {}): Promise<Uint8Array> {
  const env = { ...(options.env ?? process.env) };
  const cacheDir = options.cacheDir ?? env.WEFT_TS_ENGINE_CACHE ?? path.join(env.HOME ?? homedir(), ".cache", "weft", "ts-engine");
  const file = path.join(cacheDir, await sourceHash(), "engine.wasm");
  try {
    return await readFile(file);
  } catch {
    // not built yet
  }
  const tools = await findTools(env);
  process.stderr.write(`building weft's TypeScript filter engine into ${file} (once; about a minute)\n`);
  const wasm = await build(tools, cacheDir, env);
  await mkdir(path.dirname(file), { recursive: true });
  // Renamed into place: a build running beside this one never reads half a file.
  await writeFile(`${file}.${process.pid}.tmp`, wasm);
  await rename(`${file}.${process.pid}.tmp`, file);
  return wasm;
}
