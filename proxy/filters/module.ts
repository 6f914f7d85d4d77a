// Loading a filter module: the digest must match before anything else happens, then the
// module is metered (deadline and memory ceiling, see docs/design/filter-deadlines.md),
// compiled once and checked against the ABI (docs/filter-abi.md). Compiled modules are kept
// by digest and memory limit, so a configuration push that keeps a filter recompiles nothing.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { meter, type FunctionImport } from "./meter.ts";
import { PHASES, type FilterPhaseName } from "./message.ts";
import { importProblems } from "./imports.ts";

export interface FilterManifest {
  readonly name?: string;
  readonly version?: string;
  /** "assemblyscript" (or absent) or "typescript": the QuickJS engine, warmed before its first call. */
  readonly engine?: string;
  readonly configSchema?: unknown;
}

export interface CompiledFilter {
  readonly sha256: string;
  readonly module: WebAssembly.Module;
  readonly phases: ReadonlySet<FilterPhaseName>;
  readonly manifest: FilterManifest | null;
  readonly maxMemoryPages: number;
}

export class FilterLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FilterLoadError";
  }
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** The manifest `weft filter build` puts in the weft.manifest custom section, or null. */
export function readManifest(module: WebAssembly.Module, where: string): FilterManifest | null {
  const sections = WebAssembly.Module.customSections(module, "weft.manifest");
  if (sections.length === 0) return null;
  try {
    const manifest = JSON.parse(new TextDecoder().decode(sections[0])) as unknown;
    if (typeof manifest !== "object" || manifest === null || Array.isArray(manifest)) throw new Error("not a JSON object");
    return manifest as FilterManifest;
  } catch (e) {
    throw new FilterLoadError(
      `${where}: its weft.manifest section is not a JSON object (${(e as Error).message}); rebuild it with "weft filter build"`,
    );
  }
}

/** Checks the ABI's shape: its own exported memory, at least one phase, only imports weft provides. */
function checkAbi(module: WebAssembly.Module, functionImports: readonly FunctionImport[], where: string): Set<FilterPhaseName> {
  const exports = WebAssembly.Module.exports(module);
  const phases = new Set<FilterPhaseName>();
  let memory = false;
  for (const e of exports) {
    if (e.kind === "memory" && e.name === "memory") memory = true;
    if (e.kind === "function" && (PHASES as readonly string[]).includes(e.name)) phases.add(e.name as FilterPhaseName);
  }
  if (!memory) throw new FilterLoadError(`${where}: the module does not export its memory as "memory" (docs/filter-abi.md)`);
  if (phases.size === 0) {
    const names = exports.filter((e) => e.kind === "function").map((e) => e.name);
    throw new FilterLoadError(
      `${where}: the module exports none of the phase functions ${PHASES.join(", ")} (it exports ${names.length ? names.join(", ") : "no functions"}); is it a weft filter? See docs/filter-abi.md`,
    );
  }
  const problems = importProblems(
    functionImports,
    WebAssembly.Module.imports(module).filter((i) => i.kind !== "function"),
  );
  if (problems.length) throw new FilterLoadError(`${where}: ${problems[0]}`);
  return phases;
}

export async function compileFilter(
  bytes: Uint8Array,
  expectedSha256: string,
  maxMemoryPages: number,
  where: string,
): Promise<CompiledFilter> {
  const sha256 = sha256Hex(bytes);
  if (sha256 !== expectedSha256) {
    throw new FilterLoadError(
      `${where}: the module's sha256 is ${sha256} but the configuration expects ${expectedSha256}; it was not loaded`,
    );
  }
  let module: WebAssembly.Module;
  let functionImports: readonly FunctionImport[];
  try {
    const metered = meter(bytes, { maxMemoryPages });
    functionImports = metered.functionImports;
    module = await WebAssembly.compile(metered.bytes as Uint8Array<ArrayBuffer>);
  } catch (e) {
    throw new FilterLoadError(`${where}: ${(e as Error).message}`);
  }
  const phases = checkAbi(module, functionImports, where);
  return { sha256, module, phases, manifest: readManifest(module, where), maxMemoryPages };
}

/** Compiled modules by digest and memory limit; `retain` drops those no configuration uses. */
/** Fetches a module that the configuration names only by digest (from the control plane). */
export type ModuleFetcher = (sha256: string) => Promise<Uint8Array>;

export class FilterModuleCache {
  private readonly compiled = new Map<string, Promise<CompiledFilter>>();
  private readonly fetchByDigest: ModuleFetcher | null;

  constructor(fetchByDigest: ModuleFetcher | null = null) {
    this.fetchByDigest = fetchByDigest;
  }

  load(module: { path?: string | undefined; sha256: string }, maxMemoryPages: number, where: string): Promise<CompiledFilter> {
    const { path, sha256 } = module;
    const key = `${sha256}/${maxMemoryPages}`;
    let found = this.compiled.get(key);
    if (!found) {
      found = this.read(path, sha256, where).then((bytes) => compileFilter(bytes, sha256, maxMemoryPages, where));
      // A failed load is not cached: the file may be fixed before the next configuration.
      found.catch(() => this.compiled.delete(key));
      this.compiled.set(key, found);
    }
    return found;
  }

  private async read(path: string | undefined, sha256: string, where: string): Promise<Uint8Array> {
    if (path !== undefined) {
      return readFile(path).catch((e: Error) => {
        throw new FilterLoadError(`${where}: cannot read the module at ${path}: ${e.message}`);
      });
    }
    if (!this.fetchByDigest) {
      throw new FilterLoadError(
        `${where}: module has no path and this proxy has no control plane to fetch sha256 ${sha256} from; give module.path`,
      );
    }
    return this.fetchByDigest(sha256).catch((e: Error) => {
      throw new FilterLoadError(`${where}: cannot fetch module sha256 ${sha256} from the control plane: ${e.message}`);
    });
  }

  retain(keys: Iterable<{ sha256: string; maxMemoryPages: number }>): void {
    const keep = new Set([...keys].map((k) => `${k.sha256}/${k.maxMemoryPages}`));
    for (const key of this.compiled.keys()) if (!keep.has(key)) this.compiled.delete(key);
  }
}
