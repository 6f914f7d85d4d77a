// Finding and running Rust's toolchain for WebAssembly builds: weft's TypeScript filter engine
// (sdk/typescript/engine.ts) and the Rust example filters (test/support/rust-filters.ts) both
// build with cargo for wasm32-unknown-unknown, and say the same things when a tool is missing.
import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { homedir } from "node:os";
import path from "node:path";

export const WASM_TARGET = "wasm32-unknown-unknown";

type Env = Readonly<Record<string, string | undefined>>;

/** Runs a tool to its end; `ok` is whether it exited 0. */
export function runTool(
  file: string,
  args: readonly string[],
  env: Env,
  cwd?: string,
): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { env, cwd, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolve({ ok: !error, stdout: String(stdout), stderr: String(stderr) }),
    );
  });
}

async function executable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/** The first of `names` found on PATH or in `extraDirs`, or null. */
export async function findExecutable(names: readonly string[], env: Env, extraDirs: readonly string[] = []): Promise<string | null> {
  const dirs = [...(env.PATH ?? "").split(path.delimiter).filter(Boolean), ...extraDirs];
  for (const name of names) for (const dir of dirs) if (await executable(path.join(dir, name))) return path.join(dir, name);
  return null;
}

/**
 * cargo, with Rust's wasm32 target installed, and the cargo home; or an error that starts with
 * `cannot` (what could not be built) and gives the command that installs what is missing.
 */
export async function findCargo(env: Env, cannot: string): Promise<{ cargo: string; cargoHome: string }> {
  const cargoHome = env.CARGO_HOME ?? path.join(env.HOME ?? homedir(), ".cargo");
  // rustup installs into ~/.cargo/bin, which a non-login shell may not have on its PATH.
  const cargo = await findExecutable(["cargo"], env, [path.join(cargoHome, "bin")]);
  if (!cargo) {
    throw new Error(
      `${cannot}: cargo (Rust) is not installed. Install it with rustup:\n  curl --proto '=https' -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --target ${WASM_TARGET}`,
    );
  }
  const rustc = path.join(path.dirname(cargo), "rustc");
  const sysroot = await runTool(rustc, ["--print", "sysroot"], env);
  const hasTarget =
    sysroot.ok &&
    (await stat(path.join(sysroot.stdout.trim(), "lib", "rustlib", WASM_TARGET)).then(
      () => true,
      () => false,
    ));
  if (!hasTarget)
    throw new Error(
      `${cannot}: Rust's ${WASM_TARGET} target is not installed (${rustc}). Add it with:\n  rustup target add ${WASM_TARGET}`,
    );
  return { cargo, cargoHome };
}
