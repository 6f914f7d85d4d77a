// `weft filter mirror REGISTRY` (its command line: bin/commands/filter/mirror.ts): copies every
// marketplace release to a registry of your own, as oci://REGISTRY/plugins/NAME:VERSION, for
// clusters that should pull filters from there rather than run the copies the control plane
// ships. Each module is the one shipped with weft (MARKETPLACE/NAME/VERSION.wasm, in the Node
// image) or, in a checkout, built from plugins/NAME, and is pushed only if its sha256 is the one
// the index lists.
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import process from "node:process";
import { UsageError } from "../../shared/command.ts";
import { OciReferenceError, RegistryClient, parseOciReference, type Credentials } from "../../shared/oci-registry.ts";
import { sha256Hex } from "../../proxy/filters/module.ts";
import { MARKETPLACE_DIR, readMarketplace, shippedModulePath } from "./marketplace.ts";

const out = (text: string) => process.stdout.write(text);

/** The release's module: the shipped copy, else a build of its sources when they are at that version. */
async function moduleOf(dir: string, name: string, version: string): Promise<Uint8Array> {
  const shipped = shippedModulePath(dir, name, version);
  if (
    await stat(shipped).then(
      (s) => s.isFile(),
      () => false,
    )
  )
    return readFile(shipped);
  const sources = path.join(dir, name);
  const manifest = await readFile(path.join(sources, "filter.json"), "utf8").then(
    (t) => JSON.parse(t) as { version?: string },
    () => null,
  );
  if (manifest?.version !== version) {
    throw new Error(
      `${name}@${version}: there is no ${shipped}, and ${manifest ? `the sources in ${sources} are version ${manifest.version}` : `no sources in ${sources}`}; run the mirror from the Node image (which ships every module) or a checkout at that release`,
    );
  }
  // Only a checkout has the SDK to build with; loaded here so that the image's CLI never needs it.
  const { builtFilter } = await import("../build/cache.ts");
  return (await builtFilter(sources)).wasm;
}

function credentials(): Credentials | undefined {
  const username = process.env.WEFT_REGISTRY_USERNAME;
  const password = process.env.WEFT_REGISTRY_PASSWORD;
  if (username === undefined && password === undefined) return undefined;
  if (!username || password === undefined)
    throw new UsageError("set both WEFT_REGISTRY_USERNAME and WEFT_REGISTRY_PASSWORD, or neither for an anonymous push");
  return { username, password };
}

/** What `weft filter mirror`'s flags give (bin/commands/filter/mirror.ts declares them, and checks at compile time that they fit this). */
export interface MirrorValues {
  "plain-http": boolean;
  marketplace?: string;
  timeout?: number;
}

/** Pushes every release to oci://`target`/plugins/NAME:VERSION; 1 when one could not be pushed (nothing more is). */
export async function mirror(values: MirrorValues, target: string): Promise<number> {
  try {
    const dir = values.marketplace ?? MARKETPLACE_DIR;
    const index = await readMarketplace(dir);
    const creds = credentials();
    const client = new RegistryClient();
    for (const plugin of index.plugins) {
      for (const release of plugin.versions) {
        const wasm = await moduleOf(dir, plugin.name, release.version);
        const sha256 = sha256Hex(wasm);
        if (sha256 !== release.sha256) {
          throw new Error(
            `${plugin.name}@${release.version}: its module has sha256 ${sha256}, not the ${release.sha256} the index lists; nothing more is pushed (a damaged image or changed sources: rebuild, or check with "node sdk/marketplace/index.ts --check")`,
          );
        }
        // OCI tags cannot hold "+", so build metadata becomes "_" (as weft filter push does).
        const ref = parseOciReference(`oci://${target}/plugins/${plugin.name}:${release.version.replaceAll("+", "_")}`);
        const annotations = { "org.opencontainers.image.title": plugin.name, "org.opencontainers.image.version": release.version };
        const pushed = await client.pushWasm(ref, wasm, {
          annotations,
          plainHttp: values["plain-http"],
          ...(creds ? { credentials: creds } : {}),
          ...(values.timeout ? { timeoutMs: values.timeout } : {}),
        });
        out(`${pushed.reference} sha256 ${sha256}\n`);
      }
    }
    out(
      `\nA WasmFilter uses a mirrored release with its url and the sha256 above, e.g.\n  url: oci://${target}/plugins/NAME:VERSION\n  sha256: "<the sha256 printed for it>"\n`,
    );
    return 0;
  } catch (e) {
    if (e instanceof OciReferenceError) throw new UsageError(e.message);
    if (e instanceof UsageError) throw e;
    process.stderr.write(`weft filter mirror: ${(e as Error).message}\n`);
    return 1;
  }
}
