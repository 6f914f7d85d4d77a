// Compiles a single AssemblyScript file (test fixtures written straight against the filter
// ABI, without the SDK), cached by source and flags so three runtimes' runs compile once.
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const cacheDir = join(root, "node_modules", ".cache", "weft", "asc");

export const FIXTURE_FLAGS = ["--runtime", "incremental", "--optimize"] as const;

export async function compileAssemblyScript(
  file: string,
  flags: readonly string[] = FIXTURE_FLAGS,
): Promise<{ path: string; wasm: Uint8Array; sha256: string }> {
  // Fixtures import their neighbours (abi.ts), so every source beside the file is part of the key.
  const folder = dirname(file);
  const names = (await readdir(folder)).filter((n) => n.endsWith(".ts")).sort();
  const sources = await Promise.all(names.map((n) => readFile(join(folder, n), "utf8")));
  const { version } = JSON.parse(await readFile(join(root, "node_modules", "assemblyscript", "package.json"), "utf8")) as {
    version: string;
  };
  const key = createHash("sha256")
    .update(JSON.stringify([names, sources, flags, version, file]))
    .digest("hex")
    .slice(0, 32);
  const path = join(cacheDir, `${key}.wasm`);
  let wasm: Uint8Array;
  try {
    wasm = await readFile(path);
  } catch {
    const { default: asc } = await import("assemblyscript/asc");
    const outputs = new Map<string, Uint8Array | string>();
    let diagnostics = "";
    const result = await asc.main([file, "--outFile", "out.wasm", ...flags], {
      writeFile: (name: string, contents: Uint8Array | string) => void outputs.set(name, contents),
      stdout: { write: (s: string) => (diagnostics += s) } as never,
      stderr: { write: (s: string) => (diagnostics += s) } as never,
    });
    const out = outputs.get("out.wasm");
    if (result.error || !(out instanceof Uint8Array))
      throw new Error(`asc could not compile ${file}: ${result.error?.message ?? "no output"}\n${diagnostics}`);
    wasm = out;
    await mkdir(cacheDir, { recursive: true });
    await writeFile(`${path}.tmp`, wasm);
    await rename(`${path}.tmp`, path);
  }
  return { path, wasm, sha256: createHash("sha256").update(wasm).digest("hex") };
}
