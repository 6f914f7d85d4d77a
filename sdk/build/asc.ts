// Compiling a filter's AssemblyScript. The build is hermetic: the compiler sees only the
// filter's own .ts files and the SDK (as "@weft/sdk"), and its flags are fixed here, never
// taken from an asconfig.json, so the same sources always give the same bytes.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { DiagnosticMessage } from "assemblyscript/asc";
import { BuildError } from "./error.ts";

/** The specifier filters import the SDK by. */
const SDK_SPECIFIER = "@weft/sdk";
const SDK_DIR = fileURLToPath(new URL("../assemblyscript/", import.meta.url));

/**
 * incremental: the runtime whose memory stays bounded across calls (minimal and stub grow
 * without bound). -O3 with shrink level 1: small output without slowing hot paths much.
 * Assertions stay on: their aborts reach the proxy's log with a source location.
 */
export const ASC_FLAGS = ["--runtime", "incremental", "--optimizeLevel", "3", "--shrinkLevel", "1"] as const;

const ENTRY = "filter.ts";
const ERROR = 3; // AssemblyScript's DiagnosticCategory.Error
// asc asks for a package's files under every node_modules it might live in; the SDK is
// served for any of them.
const SDK_REQUEST = new RegExp(`^.*node_modules/${SDK_SPECIFIER}/(.+)$`);

function inside(root: string, file: string): string | null {
  const resolved = path.resolve(root, file);
  const relative = path.relative(root, resolved);
  return relative.startsWith("..") || path.isAbsolute(relative) ? null : resolved;
}

/** Compiles `dir/filter.ts` into a module (no manifest section yet). */
export async function compileFilter(dir: string): Promise<Uint8Array> {
  const { default: asc } = await import("assemblyscript/asc");
  const sources = new Map<string, { file: string; text: string }>();
  const diagnostics: string[] = [];
  let output: Uint8Array | null = null;
  let log = "";
  const result = await asc.main([ENTRY, "--baseDir", dir, "--outFile", "filter.wasm", "--noColors", ...ASC_FLAGS], {
    readFile: async (name: string) => {
      if (!name.endsWith(".ts")) return null; // asconfig.json and the like: flags are fixed here
      const sdk = SDK_REQUEST.exec(name.replaceAll("\\", "/"));
      const file = sdk ? inside(SDK_DIR, sdk[1]!) : inside(dir, name);
      if (!file) return null;
      try {
        const text = await readFile(file, "utf8");
        // asc names sources by their path without node_modules/...: "~lib/@weft/sdk/json.ts".
        sources.set(sdk ? `~lib/${SDK_SPECIFIER}/${sdk[1]}` : name.replaceAll("\\", "/"), {
          file: sdk ? file : path.join(dir, name),
          text,
        });
        return text;
      } catch {
        return null;
      }
    },
    writeFile: (name: string, contents: Uint8Array | string) => {
      if (name === "filter.wasm" && contents instanceof Uint8Array) output = contents;
    },
    listFiles: () => [],
    stdout: { write: (s: Uint8Array | string) => void (log += String(s)) },
    stderr: { write: (s: Uint8Array | string) => void (log += String(s)) },
    reportDiagnostic: (d: DiagnosticMessage) => {
      if (d.category !== ERROR) return;
      const range = d.range;
      if (!range) return void diagnostics.push(`error AS${d.code}: ${d.message}`);
      // Standard-library sources are not read through readFile: they keep asc's name and an offset.
      const source = sources.get(range.source.normalizedPath);
      const before = source?.text.slice(0, range.start).split("\n");
      const at = before ? `${before.length}:${before[before.length - 1]!.length + 1}` : `${range.start}`;
      diagnostics.push(`${source?.file ?? range.source.normalizedPath}:${at}: error AS${d.code}: ${d.message}`);
    },
  });
  if (result.error || !output) {
    if (!sources.has(ENTRY))
      throw new BuildError(`cannot build ${dir}: ${path.join(dir, ENTRY)} is missing (a filter's code is its filter.ts)`, []);
    throw new BuildError(
      `cannot build ${dir}: ${diagnostics.length ? `${diagnostics.length} error(s) in its AssemblyScript` : (result.error?.message ?? "no output")}`,
      diagnostics.length ? diagnostics : log.trim().split("\n"),
    );
  }
  return output;
}
