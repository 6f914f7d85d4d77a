// Building a full-TypeScript filter (filter.json's "engine": "typescript") into a weft filter
// module: esbuild bundles dir/filter.ts with the SDK ("@weft/sdk-ts") and the npm packages it
// imports (from node_modules beside it or above it); weft's engine (QuickJS as a filter module,
// sdk/typescript/engine.ts) evaluates the bundle once, here, metered like a filter call; and the
// engine's memory after that becomes the module's data (sdk/typescript/snapshot.ts). The
// result is an ordinary filter module: sdk/build/build.ts checks it and adds the manifest.
//
// Hermetic and reproducible: esbuild reads no tsconfig.json and resolves paths relative to the
// filter's folder, and the build's host answers 0 for the clock and the random seed, so the
// same sources, packages and engine give the same bytes (on Node, Deno and Bun, in any folder
// as long as the packages sit in the filter's own node_modules: the bundle names their paths).
import { access } from "node:fs/promises";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { Blocks } from "../../proxy/filters/blocks.ts";
import { FilterFault } from "../../proxy/filters/fault.ts";
import { buildImports, type FilterLogLevelName, type InstanceHost } from "../../proxy/filters/imports.ts";
import { PHASES } from "../../proxy/filters/message.ts";
import { meter } from "../../proxy/filters/meter.ts";
import { FilterState } from "../../proxy/filters/state.ts";
import { BuildError } from "../build/error.ts";
import { engineWasm } from "./engine.ts";
import { snapshot } from "./snapshot.ts";

/** The specifier filters import the SDK by. */
export const SDK_SPECIFIER = "@weft/sdk-ts";
const SDK = fileURLToPath(new URL("./index.ts", import.meta.url));
const POLYFILLS = fileURLToPath(new URL("./polyfills.ts", import.meta.url));
const ENTRY = "filter.ts";

// Evaluating the bundle runs under the limits a filter call gets by default, with more time:
// its memory then is where every instance starts, and top-level code that never ends should
// fail the build rather than hang it.
const MEMORY_MIB = 16;
const DEADLINE_MS = 10_000;
const TICK_FUEL = 20_000;

// What the engine may call while the bundle is evaluated: memory blocks, its error message,
// logs and the clock. Everything else needs a request, a config or the proxy's state, which
// do not exist when the filter is built.
const AT_BUILD = new Set([
  "alloc",
  "length",
  "length_unsafe",
  "free",
  "load_u8",
  "load_u64",
  "store_u8",
  "store_u64",
  "error_set",
  "get_log_level",
  "log_trace",
  "log_debug",
  "log_info",
  "log_warn",
  "log_error",
  "weft_read",
  "weft_write",
  "weft_now_ms",
  "seed",
]);

interface Esbuild {
  build(options: Record<string, unknown>): Promise<{ outputFiles?: { contents: Uint8Array }[] }>;
  stop(): void | Promise<void>;
}

interface EsbuildMessage {
  text: string;
  location: { file: string; line: number; column: number } | null;
  notes: { text: string }[];
}

async function loadEsbuild(): Promise<Esbuild> {
  // A computed specifier: weft's own bundle (npm run build) leaves esbuild out instead of
  // trying to bundle a package that drives a native binary.
  const name = "esbuild";
  try {
    return (await import(name)) as Esbuild;
  } catch (e) {
    throw new Error(
      `cannot build a TypeScript filter: the esbuild package is not installed beside weft (${(e as Error).message}); install it with "npm install esbuild@0.28.2"`,
    );
  }
}

/** One ES module: the filter, the SDK and its npm packages, with the polyfills first. */
async function bundle(dir: string): Promise<Uint8Array> {
  try {
    await access(path.join(dir, ENTRY));
  } catch {
    throw new BuildError(`cannot build ${dir}: ${path.join(dir, ENTRY)} is missing (a filter's code is its filter.ts)`, []);
  }
  const esbuild = await loadEsbuild();
  try {
    const result = await esbuild.build({
      entryPoints: [ENTRY],
      absWorkingDir: path.resolve(dir),
      bundle: true,
      write: false,
      format: "esm",
      platform: "neutral",
      target: "es2023",
      // Packages published for browsers and workers are the ones without Node built-ins.
      mainFields: ["module", "main"],
      conditions: ["worker", "browser"],
      alias: { [SDK_SPECIFIER]: SDK },
      inject: [POLYFILLS],
      tsconfigRaw: "{}",
      // Without comments, the bundle does not name where the SDK sits relative to the filter
      // (esbuild marks each module with its path), so neither does the digest. Names stay,
      // so stack traces still name functions.
      minifyWhitespace: true,
      legalComments: "none",
      logLevel: "silent",
    });
    return result.outputFiles![0]!.contents;
  } catch (e) {
    const errors = (e as { errors?: EsbuildMessage[] }).errors;
    if (!errors) throw e;
    throw new BuildError(
      `cannot build ${dir}: ${errors.length} error(s) in its TypeScript or its packages`,
      errors.map((m) => {
        const at = m.location
          ? `${path.join(dir, m.location.file)}:${m.location.line}:${m.location.column + 1}: `
          : `${path.join(dir, ENTRY)}: `;
        const builtIn = m.notes.some((n) => n.text.includes("built into node"));
        return `${at}error: ${m.text}${builtIn ? " (Node's built-in modules do not exist in a filter: use a package that does without them)" : ""}`;
      }),
    );
  } finally {
    // esbuild keeps a child process between builds; a test runner would see it as a leak.
    await esbuild.stop();
  }
}

/** The engine's host while the bundle is evaluated: the ABI's imports, limited to AT_BUILD. */
function buildHost(
  dir: string,
  engine: WebAssembly.Module,
  memory: () => WebAssembly.Memory,
  setError: (message: string) => void,
): WebAssembly.Imports {
  const host: InstanceHost = {
    blocks: new Blocks(MEMORY_MIB << 20),
    message: null,
    state: new FilterState(),
    configJson: "{}",
    config: {},
    filterId: dir,
    logLevel: 0,
    log: (level: FilterLogLevelName, message: string) =>
      process.stderr.write(`${path.join(dir, ENTRY)} (${level}, while it was built): ${message}\n`),
    metric: () => {},
    memory,
    setError,
    // Evaluating the bundle at build time has no deadline.
    extendDeadline: () => {},
  };
  const imports = buildImports(host) as Record<string, Record<string, unknown>>;
  for (const { module, name } of WebAssembly.Module.imports(engine)) {
    if (module === "weft:meter" || AT_BUILD.has(name)) continue;
    imports[module]![name] = () => {
      throw new FilterFault(
        "trap",
        `the top-level code called ${name}, which needs a request, the config or the proxy's state: top-level code runs once, when the filter is built; do this in a phase function`,
      );
    };
  }
  // A snapshot that does not depend on when or where it was taken.
  imports["extism:host/user"]!.weft_now_ms = () => 0n;
  imports.env!.seed = () => 0;
  return imports as WebAssembly.Imports;
}

/** Compiles dir/filter.ts into a weft filter module (no manifest section yet). */
export async function compileTypeScriptFilter(dir: string): Promise<Uint8Array> {
  const source = await bundle(dir);
  const engine = await engineWasm();
  const where = path.join(dir, ENTRY);
  const module = await WebAssembly.compile(meter(engine, { maxMemoryPages: MEMORY_MIB * 16 }).bytes as Uint8Array<ArrayBuffer>);
  let error = "";
  let instance: WebAssembly.Instance | null = null;
  let fuel: WebAssembly.Global | null = null;
  let deadline = Infinity;
  const imports = buildHost(
    dir,
    module,
    () => instance!.exports.memory as WebAssembly.Memory,
    (message) => (error = message),
  );
  imports["weft:meter"] = {
    tick: () => {
      if (performance.now() > deadline)
        throw new BuildError(
          `cannot build ${dir}: its top-level code ran for more than ${DEADLINE_MS / 1000} s when it was evaluated (it runs once, at build time); does it loop forever?`,
          [],
        );
      if (fuel) fuel.value = TICK_FUEL;
    },
  };
  instance = new WebAssembly.Instance(module, imports);
  fuel = instance.exports.weft_fuel as WebAssembly.Global;
  const exports = instance.exports as Record<string, (...args: number[]) => number>;
  const memory = instance.exports.memory as WebAssembly.Memory;
  const at = exports.weft_engine_source!(source.length);
  new Uint8Array(memory.buffer).set(source, at);
  deadline = performance.now() + DEADLINE_MS;
  let mask: number;
  try {
    mask = exports.weft_engine_init!();
  } catch (e) {
    if (e instanceof BuildError) throw e;
    if ((instance.exports.weft_grow as WebAssembly.Global).value === -1) {
      throw new BuildError(
        `cannot build ${dir}: its top-level code ran out of memory when it was evaluated (the limit then is ${MEMORY_MIB} MiB, where every instance would start)`,
        [],
      );
    }
    throw new BuildError(`cannot build ${dir}: its top-level code failed when it was evaluated (it runs once, at build time)`, [
      `${where}: ${(e as Error).message}`,
    ]);
  }
  if (mask < 0)
    throw new BuildError(
      `cannot build ${dir}: its top-level code failed when it was evaluated (it runs once, at build time)`,
      error.split("\n").map((line, i) => (i === 0 ? `${where}: ${line}` : `  ${line.trim()}`)),
    );
  if (mask === 0) {
    throw new BuildError(`cannot build ${dir}: it would not load as a weft filter`, [
      `${where}: filter.ts exports none of the phase functions ${PHASES.join(", ")} (it exports ${error}): export at least one, e.g. "export function on_request_headers(): number"`,
    ]);
  }
  // Bit i of the mask is PHASES[i]: the engine lists the phases in the ABI's order too.
  return snapshot(
    engine,
    new Uint8Array(memory.buffer),
    PHASES.filter((_, i) => mask & (1 << i)),
  );
}
