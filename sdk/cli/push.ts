// `weft filter push oci://REF [DIR | FILE.wasm]`: publishes a filter as a Wasm OCI artifact and
// prints what a WasmFilter needs to run it (url and sha256).
import { Buffer } from "node:buffer";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { OciReferenceError, PUSH_TIMEOUT_MS, RegistryClient, RegistryError, parseOciReference, type Credentials } from "../../control/distribution/registry.ts";
import { buildFilter } from "../build/build.ts";
import { readManifest, type FilterManifest } from "../../proxy/filters/module.ts";

const EXAMPLE = '"weft filter push oci://localhost:5000/filters/my-auth --plain-http" in the filter\'s folder';

/** Bad arguments (exit 2), as opposed to a registry that failed (exit 1). */
class PushUsageError extends Error {}

const out = (text: string) => process.stdout.write(text);
const err = (text: string) => process.stderr.write(text);

interface Source {
  wasm: Uint8Array;
  name: string;
  version: string | undefined;
}

/** A filter folder is built; a .wasm is taken as is, with name and version from its weft.manifest section if it has one. */
async function readSource(source: string): Promise<Source> {
  const info = await stat(source).catch(() => null);
  if (!info) throw new PushUsageError(`${source} does not exist: give a filter folder (default .) or a .wasm file`);
  if (info.isDirectory()) {
    const built = await buildFilter(source);
    return { wasm: built.wasm, name: built.manifest.name, version: built.manifest.version };
  }
  const wasm = await readFile(source);
  if (!WebAssembly.validate(wasm)) throw new PushUsageError(`${source} is not a WebAssembly module: give a filter folder or a .wasm made by "weft filter build"`);
  let manifest: FilterManifest | null;
  try {
    manifest = readManifest(new WebAssembly.Module(wasm), source);
  } catch (e) {
    throw new PushUsageError((e as Error).message);
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
  return Buffer.concat(chunks).toString("utf8").replace(/[\r\n]+$/, "");
}

/** --username / WEFT_REGISTRY_USERNAME with --password-stdin / WEFT_REGISTRY_PASSWORD; none means anonymous. */
async function credentials(username: string | undefined, passwordStdin: boolean): Promise<Credentials | undefined> {
  const user = username || process.env.WEFT_REGISTRY_USERNAME || undefined;
  const password = passwordStdin ? await readStdin() : process.env.WEFT_REGISTRY_PASSWORD || undefined;
  if (user === undefined && password === undefined) return undefined;
  if (user === undefined) throw new PushUsageError("a password needs a username: give --username U or WEFT_REGISTRY_USERNAME");
  if (password === undefined) throw new PushUsageError(`--username ${user} needs a password: pipe it to --password-stdin or set WEFT_REGISTRY_PASSWORD`);
  return { username: user, password };
}

/** --timeout's value: whole seconds from 1 to a day. */
function seconds(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 86_400) throw new PushUsageError(`--timeout ${text}: give the push's deadline in whole seconds, 1 to 86400 (default ${PUSH_TIMEOUT_MS / 1000})`);
  return n * 1000;
}

export async function pushCommand(args: string[]): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { "plain-http": { type: "boolean" }, username: { type: "string" }, "password-stdin": { type: "boolean" }, timeout: { type: "string" } },
    });
    if (!positionals[0]) throw new PushUsageError(`give the artifact's reference, e.g. ${EXAMPLE}`);
    const ref = parseOciReference(positionals[0]);
    const creds = await credentials(values.username, values["password-stdin"] ?? false);
    const from = positionals[1] ?? ".";
    const source = await readSource(from);
    // OCI tags cannot hold "+", so build metadata becomes "_" (as Helm does).
    const tag = ref.tag ?? source.version?.replaceAll("+", "_");
    if (!tag) throw new PushUsageError(`${positionals[0]} has no tag and ${from} carries no version: add a tag, e.g. ${positionals[0]}:1.0.0`);
    const annotations: Record<string, string> = { "org.opencontainers.image.title": source.name };
    if (source.version) annotations["org.opencontainers.image.version"] = source.version;
    const timeoutMs = values.timeout === undefined ? undefined : seconds(values.timeout);
    const pushed = await new RegistryClient().pushWasm({ ...ref, tag }, source.wasm, { annotations, credentials: creds, plainHttp: values["plain-http"], timeoutMs });
    const wasmSha256 = pushed.layerDigest.slice("sha256:".length);
    out(
      `pushed ${pushed.reference}\nmanifest ${pushed.manifestDigest}\nwasm sha256 ${wasmSha256} (${source.wasm.length} bytes)\n\n` +
        `for a WasmFilter's spec:\n  url: ${pushed.reference}\n  sha256: "${wasmSha256}"\n`,
    );
    return 0;
  } catch (e) {
    const usage = e instanceof OciReferenceError || e instanceof PushUsageError || String((e as { code?: unknown }).code).startsWith("ERR_PARSE_ARGS");
    if (!usage && !(e instanceof RegistryError)) throw e;
    err(`weft filter push: ${(e as Error).message}\n`);
    return usage ? 2 : 1;
  }
}
