// Filters built with the SDK, cached by everything the build reads — the filter's folder, the
// SDK, the build code and the compiler's version — so that test suites on Node, Deno and Bun
// and every `weft up` compile each filter once.
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import process from "node:process";
import { buildFilter } from "./build.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..", "..");
const defaultCacheDir = path.join(root, "node_modules", ".cache", "weft", "filters");
// The SDKs (AssemblyScript; TypeScript with its engine's sources), the build (flags, manifest
// section) and the manifest validation.
const BUILD_INPUTS = ["sdk/assemblyscript", "sdk/typescript", "sdk/build", "sdk/manifest"].map((d) => path.join(root, d));

// Names are hashed relative to `base`, so the same filter in another folder is the same build.
async function hashTree(hash: ReturnType<typeof createHash>, dir: string, base: string): Promise<void> {
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const e of entries) {
    const file = path.join(dir, e.name);
    if (e.isDirectory()) await hashTree(hash, file, base);
    else
      hash
        .update(`${path.relative(base, file)}\0`)
        .update(await readFile(file))
        .update("\0");
  }
}

/** Builds `plugins/<name>`, or the filter folder at a path (anything with a "/"). */
export async function builtFilter(
  dirOrPluginName: string,
  cacheDir = defaultCacheDir,
): Promise<{ path: string; sha256: string; wasm: Uint8Array }> {
  const dir = dirOrPluginName.includes("/") ? path.resolve(dirOrPluginName) : path.join(root, "plugins", dirOrPluginName);
  const hash = createHash("sha256");
  const { version } = JSON.parse(await readFile(path.join(root, "node_modules", "assemblyscript", "package.json"), "utf8")) as {
    version: string;
  };
  hash.update(`asc ${version}\0`);
  for (const input of BUILD_INPUTS) await hashTree(hash, input, root);
  await hashTree(hash, dir, dir);
  const file = path.join(cacheDir, `${hash.digest("hex").slice(0, 32)}.wasm`);
  let wasm: Uint8Array;
  try {
    wasm = await readFile(file);
  } catch {
    wasm = (await buildFilter(dir)).wasm;
    await mkdir(cacheDir, { recursive: true });
    // Renamed into place, so a suite running beside this one never reads half a file.
    await writeFile(`${file}.${process.pid}.tmp`, wasm);
    await rename(`${file}.${process.pid}.tmp`, file);
  }
  return { path: file, sha256: createHash("sha256").update(wasm).digest("hex"), wasm };
}
