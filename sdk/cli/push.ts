// `weft filter push oci://REF [DIR | FILE.wasm]` (its command line: bin/commands/filter/push.ts):
// publishes a filter as a Wasm OCI artifact and prints what a WasmFilter needs to run it (url and
// sha256).
import { Buffer } from "node:buffer";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import process from "node:process";
import { UsageError } from "../../shared/command.ts";
import { OciReferenceError, RegistryClient, RegistryError, parseOciReference, type Credentials } from "../../shared/oci-registry.ts";
import { buildFilter } from "../build/build.ts";
import { readManifest, type FilterManifest } from "../../proxy/filters/module.ts";

const out = (text: string) => process.stdout.write(text);

interface Source {
  wasm: Uint8Array;
  name: string;
  version: string | undefined;
}

/** A filter folder is built; a .wasm is taken as is, with name and version from its weft.manifest section if it has one. */
async function readSource(source: string): Promise<Source> {
  const info = await stat(source).catch(() => null);
  if (!info) throw new UsageError(`${source} does not exist: give a filter folder (default .) or a .wasm file`);
  if (info.isDirectory()) {
    const built = await buildFilter(source);
    return { wasm: built.wasm, name: built.manifest.name, version: built.manifest.version };
  }
  const wasm = await readFile(source);
  if (!WebAssembly.validate(wasm))
    throw new UsageError(`${source} is not a WebAssembly module: give a filter folder or a .wasm made by "weft filter build"`);
  let manifest: FilterManifest | null;
  try {
    manifest = readManifest(new WebAssembly.Module(wasm), source);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return {
    wasm,
    name: typeof manifest?.name === "string" ? manifest.name : path.basename(source, ".wasm"),
    version: typeof manifest?.version === "string" ? manifest.version : undefined,
  };
}

async function readStdin(): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Uint8Array);
  // As `docker login --password-stdin`: the line's end is not part of the password.
  return Buffer.concat(chunks)
    .toString("utf8")
    .replace(/[\r\n]+$/, "");
}

/** --username / WEFT_REGISTRY_USERNAME with --password-stdin / WEFT_REGISTRY_PASSWORD; none means anonymous. */
async function credentials(username: string | undefined, passwordStdin: boolean): Promise<Credentials | undefined> {
  const user = username || process.env.WEFT_REGISTRY_USERNAME || undefined;
  const password = passwordStdin ? await readStdin() : process.env.WEFT_REGISTRY_PASSWORD || undefined;
  if (user === undefined && password === undefined) return undefined;
  if (user === undefined) throw new UsageError("a password needs a username: give --username U or WEFT_REGISTRY_USERNAME");
  if (password === undefined)
    throw new UsageError(`--username ${user} needs a password: pipe it to --password-stdin or set WEFT_REGISTRY_PASSWORD`);
  return { username: user, password };
}

/** What `weft filter push`'s flags give (bin/commands/filter/push.ts declares them, and checks at compile time that they fit this). */
export interface PushValues {
  "plain-http": boolean;
  username?: string;
  "password-stdin": boolean;
  timeout: number;
}

/** Pushes `from` (a filter folder or a .wasm) to `reference`; 1 when the registry failed. */
export async function push(values: PushValues, reference: string, from: string): Promise<number> {
  try {
    const ref = parseOciReference(reference);
    const creds = await credentials(values.username, values["password-stdin"]);
    const source = await readSource(from);
    // OCI tags cannot hold "+", so build metadata becomes "_" (as Helm does).
    const tag = ref.tag ?? source.version?.replaceAll("+", "_");
    if (!tag) throw new UsageError(`${reference} has no tag and ${from} carries no version: add a tag, e.g. ${reference}:1.0.0`);
    const annotations: Record<string, string> = { "org.opencontainers.image.title": source.name };
    if (source.version) annotations["org.opencontainers.image.version"] = source.version;
    const pushed = await new RegistryClient().pushWasm({ ...ref, tag }, source.wasm, {
      annotations,
      credentials: creds,
      plainHttp: values["plain-http"],
      timeoutMs: values.timeout,
    });
    const wasmSha256 = pushed.layerDigest.slice("sha256:".length);
    out(
      `pushed ${pushed.reference}\nmanifest ${pushed.manifestDigest}\nwasm sha256 ${wasmSha256} (${source.wasm.length} bytes)\n\n` +
        `for a WasmFilter's spec:\n  url: ${pushed.reference}\n  sha256: "${wasmSha256}"\n`,
    );
    return 0;
  } catch (e) {
    if (e instanceof OciReferenceError) throw new UsageError(e.message);
    if (!(e instanceof RegistryError)) throw e;
    process.stderr.write(`weft filter push: ${e.message}\n`);
    return 1;
  }
}
