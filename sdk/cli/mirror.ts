// `weft filter mirror REGISTRY`: copies every marketplace release to a registry of your own, as
// oci://REGISTRY/plugins/NAME:VERSION, for clusters that should pull filters from there rather
// than run the copies the control plane ships. Each module is the one shipped with weft
// (MARKETPLACE/NAME/VERSION.wasm, in the Node image) or, in a checkout, built from plugins/NAME,
// and is pushed only if its sha256 is the one the index lists.
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { OciReferenceError, RegistryClient, parseOciReference, type Credentials } from "../../control/distribution/registry.ts";
import { shippedModulePath } from "../../control/distribution/marketplace.ts";
import { sha256Hex } from "../../proxy/filters/module.ts";
import { MARKETPLACE_DIR, readMarketplace } from "./marketplace.ts";

const USAGE = `usage: weft filter mirror REGISTRY[/PATH] [--plain-http] [--marketplace DIR] [--timeout SECONDS]

Pushes every release in the marketplace index to oci://REGISTRY[/PATH]/plugins/NAME:VERSION and
prints each url with its sha256 (checked against the index before the push). Credentials:
WEFT_REGISTRY_USERNAME and WEFT_REGISTRY_PASSWORD. --plain-http for a registry without TLS.
--marketplace: the folder with index.json and NAME/VERSION.wasm (default: the one shipped with weft).
`;

const out = (text: string) => process.stdout.write(text);
const err = (text: string) => process.stderr.write(text);

class MirrorUsageError extends Error {}

/** The release's module: the shipped copy, else a build of its sources when they are at that version. */
async function moduleOf(dir: string, name: string, version: string): Promise<Uint8Array> {
  const shipped = shippedModulePath(dir, name, version);
  if (await stat(shipped).then((s) => s.isFile(), () => false)) return readFile(shipped);
  const sources = path.join(dir, name);
  const manifest = await readFile(path.join(sources, "filter.json"), "utf8").then((t) => JSON.parse(t) as { version?: string }, () => null);
  if (manifest?.version !== version) {
    throw new Error(`${name}@${version}: there is no ${shipped}, and ${manifest ? `the sources in ${sources} are version ${manifest.version}` : `no sources in ${sources}`}; run the mirror from the Node image (which ships every module) or a checkout at that release`);
  }
  // Only a checkout has the SDK to build with; loaded here so that the image's CLI never needs it.
  const { builtFilter } = await import("../build/cache.ts");
  return (await builtFilter(sources)).wasm;
}

function credentials(): Credentials | undefined {
  const username = process.env.WEFT_REGISTRY_USERNAME;
  const password = process.env.WEFT_REGISTRY_PASSWORD;
  if (username === undefined && password === undefined) return undefined;
  if (!username || password === undefined) throw new MirrorUsageError("set both WEFT_REGISTRY_USERNAME and WEFT_REGISTRY_PASSWORD, or neither for an anonymous push");
  return { username, password };
}

export async function mirrorCommand(args: string[]): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { "plain-http": { type: "boolean" }, marketplace: { type: "string" }, timeout: { type: "string" }, help: { type: "boolean", short: "h" } },
    });
    if (values.help) {
      out(USAGE);
      return 0;
    }
    const target = positionals[0]?.replace(/^oci:\/\//, "").replace(/\/+$/, "");
    if (!target) throw new MirrorUsageError(`give the registry to mirror to, e.g. "weft filter mirror registry.example.com:5000" or "weft filter mirror ghcr.io/acme"`);
    const timeout = values.timeout === undefined ? undefined : Number(values.timeout);
    if (timeout !== undefined && !(Number.isInteger(timeout) && timeout >= 1 && timeout <= 86_400)) throw new MirrorUsageError(`--timeout ${values.timeout}: give each push's deadline in whole seconds, 1 to 86400`);
    const dir = values.marketplace ?? MARKETPLACE_DIR;
    const index = await readMarketplace(dir);
    const creds = credentials();
    const client = new RegistryClient();
    for (const plugin of index.plugins) {
      for (const release of plugin.versions) {
        const wasm = await moduleOf(dir, plugin.name, release.version);
        const sha256 = sha256Hex(wasm);
        if (sha256 !== release.sha256) {
          throw new Error(`${plugin.name}@${release.version}: its module has sha256 ${sha256}, not the ${release.sha256} the index lists; nothing more is pushed (a damaged image or changed sources: rebuild, or check with "node sdk/marketplace/index.ts --check")`);
        }
        // OCI tags cannot hold "+", so build metadata becomes "_" (as weft filter push does).
        const ref = parseOciReference(`oci://${target}/plugins/${plugin.name}:${release.version.replaceAll("+", "_")}`);
        const annotations = { "org.opencontainers.image.title": plugin.name, "org.opencontainers.image.version": release.version };
        const pushed = await client.pushWasm(ref, wasm, { annotations, plainHttp: values["plain-http"] ?? false, ...(creds ? { credentials: creds } : {}), ...(timeout ? { timeoutMs: timeout * 1000 } : {}) });
        out(`${pushed.reference} sha256 ${sha256}\n`);
      }
    }
    out(`\nA WasmFilter uses a mirrored release with its url and the sha256 above, e.g.\n  url: oci://${target}/plugins/NAME:VERSION\n  sha256: "<the sha256 printed for it>"\n`);
    return 0;
  } catch (e) {
    const usage = e instanceof OciReferenceError || e instanceof MirrorUsageError || String((e as { code?: unknown }).code).startsWith("ERR_PARSE_ARGS");
    err(`weft filter mirror: ${(e as Error).message}\n${usage ? `\n${USAGE}` : ""}`);
    return usage ? 2 : 1;
  }
}
