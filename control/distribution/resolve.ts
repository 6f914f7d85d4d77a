// Turns a WasmFilter's url into the module's bytes: an OCI registry (with the pull secret's
// credentials), HTTPS, a local file (local mode), or a marketplace release (its artifact in
// the index). The digest is checked against the WasmFilter's sha256 before anything is kept.
// Every fetch is bounded in size and in time, so a hostile or broken server can neither fill
// the control plane's memory nor hold a resolution forever.
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { sha256Hex } from "../../proxy/filters/module.ts";
import { PULL_TIMEOUT_MS, RegistryClient, failureText, parseOciReference, readLimited, type Credentials } from "./registry.ts";

export interface ResolveOptions {
  /** Registries (host[:port]) spoken to over plain HTTP, like Docker's insecure-registries. */
  insecureRegistries: ReadonlySet<string>;
  /** Largest module accepted. */
  maxBytes: number;
  /** How long fetching one module may take (default PULL_TIMEOUT_MS). */
  timeoutMs?: number;
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
    if (scheme === "https") return { bytes: await this.fetchHttps(url), source: url };
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
        timeoutMs: this.timeoutMs,
        plainHttp: this.options.insecureRegistries.has(ref.registry),
        ...(credentials ? { credentials } : {}),
      });
      return { bytes: pulled.wasm, source: `${url} (${pulled.manifestDigest})` };
    }
    throw new ResolveError(`${url}: unsupported scheme "${scheme}://"; use oci://, https://, file:// (local mode) or marketplace://`);
  }

  private get timeoutMs(): number {
    return this.options.timeoutMs ?? PULL_TIMEOUT_MS;
  }

  private async fetchHttps(url: string): Promise<Uint8Array> {
    const { maxBytes } = this.options;
    const signal = AbortSignal.timeout(this.timeoutMs);
    try {
      const res = await fetch(url, { redirect: "follow", signal });
      if (!res.ok) {
        await res.body?.cancel();
        throw new ResolveError(`${url}: HTTP ${res.status} ${res.statusText}`);
      }
      // Read with the limit as the bytes arrive: a missing or lying Content-Length cannot make it buffer more.
      return await readLimited(res, maxBytes, (n) => new ResolveError(`${url}: ${n} bytes or more, more than the ${maxBytes} a filter may have`));
    } catch (e) {
      if (signal.aborted) throw new ResolveError(`${url}: no complete answer within ${this.timeoutMs / 1000} s: the server is too slow or does not answer, so the fetch was stopped; try again later, or check the server`);
      if (e instanceof ResolveError) throw e;
      throw new ResolveError(`${url}: cannot fetch it: ${failureText(e)}`);
    }
  }

  private bounded(bytes: Uint8Array, url: string): Uint8Array {
    if (bytes.length > this.options.maxBytes) throw new ResolveError(`${url}: ${bytes.length} bytes, more than the ${this.options.maxBytes} a filter may have`);
    return bytes;
  }
}
