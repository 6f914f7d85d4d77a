// Turns a WasmFilter's url into the module's bytes: an OCI registry (with the pull secret's
// credentials), HTTPS, a local file (local mode), or a marketplace release (its artifact in
// the index). The digest is checked against the WasmFilter's sha256 before anything is kept.
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { sha256Hex } from "../../proxy/filters/module.ts";
import { RegistryClient, parseOciReference, type Credentials } from "./registry.ts";

export interface ResolveOptions {
  /** Registries (host[:port]) spoken to over plain HTTP, like Docker's insecure-registries. */
  insecureRegistries: ReadonlySet<string>;
  /** Largest module accepted. */
  maxBytes: number;
  /** Whether file:// urls may be read (local mode only: in a cluster they would read the control plane's disk). */
  allowFiles: boolean;
  /** name@version -> artifact url, from the marketplace index. */
  marketplace: (name: string, version: string) => Promise<string | null>;
}

export interface Resolved {
  bytes: Uint8Array;
  sha256: string;
  /** What was fetched, for status messages (the OCI digest or the url). */
  source: string;
}

export class ResolveError extends Error {
  override name = "ResolveError";
}

export class FilterResolver {
  private readonly options: ResolveOptions;
  private readonly registry = new RegistryClient();

  constructor(options: ResolveOptions) {
    this.options = options;
  }

  async resolve(url: string, expected: string | undefined, credentials?: Credentials): Promise<Resolved> {
    const got = await this.fetch(url, credentials);
    const sha256 = sha256Hex(got.bytes);
    if (expected && sha256 !== expected) {
      throw new ResolveError(`${url} has sha256 ${sha256}, not the ${expected} the WasmFilter pins; it is not loaded (fix sha256 if the new module is intended)`);
    }
    return { bytes: got.bytes, sha256, source: got.source };
  }

  private async fetch(url: string, credentials: Credentials | undefined): Promise<{ bytes: Uint8Array; source: string }> {
    const scheme = /^([a-z]+):\/\//.exec(url)?.[1];
    if (scheme === "file") {
      if (!this.options.allowFiles) throw new ResolveError(`${url}: file:// urls are for local mode only; in a cluster publish the module to a registry (weft filter push)`);
      const bytes = await readFile(fileURLToPath(url)).catch((e: Error) => {
        throw new ResolveError(`${url}: cannot read it: ${e.message}`);
      });
      return { bytes: this.bounded(bytes, url), source: url };
    }
    if (scheme === "https") {
      const res = await fetch(url, { redirect: "follow" }).catch((e: Error) => {
        throw new ResolveError(`${url}: cannot fetch it: ${e.message}`);
      });
      if (!res.ok) throw new ResolveError(`${url}: HTTP ${res.status} ${res.statusText}`);
      const length = Number(res.headers.get("content-length") ?? 0);
      if (length > this.options.maxBytes) throw new ResolveError(`${url}: ${length} bytes, more than the ${this.options.maxBytes} a filter may have`);
      return { bytes: this.bounded(new Uint8Array(await res.arrayBuffer()), url), source: url };
    }
    if (scheme === "marketplace") {
      const [name, version] = url.slice("marketplace://".length).split("@");
      const artifact = await this.options.marketplace(name!, version!);
      if (!artifact) throw new ResolveError(`${url}: the marketplace index has no ${name} ${version} (weft filter search lists what it has)`);
      return this.fetch(artifact, undefined);
    }
    if (scheme === undefined || scheme === "oci") {
      const ref = parseOciReference(scheme ? url : `oci://${url}`);
      const pulled = await this.registry.pullWasm(ref, {
        maxBytes: this.options.maxBytes,
        plainHttp: this.options.insecureRegistries.has(ref.registry),
        ...(credentials ? { credentials } : {}),
      });
      return { bytes: pulled.wasm, source: `${url} (${pulled.manifestDigest})` };
    }
    throw new ResolveError(`${url}: unsupported scheme "${scheme}://"; use oci://, https://, file:// (local mode) or marketplace://`);
  }

  private bounded(bytes: Uint8Array, url: string): Uint8Array {
    if (bytes.length > this.options.maxBytes) throw new ResolveError(`${url}: ${bytes.length} bytes, more than the ${this.options.maxBytes} a filter may have`);
    return bytes;
  }
}
