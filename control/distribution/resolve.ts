// Turns a WasmFilter's url into the module's bytes: an OCI registry (with the pull secret's
// credentials), HTTPS, a local file (local mode), or a marketplace release (its artifact in
// the index). The digest is checked against the WasmFilter's sha256 before anything is kept.
// Every fetch is bounded in size and in time, so a hostile or broken server can neither fill
// the control plane's memory nor hold a resolution forever.
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { sha256Hex } from "../../proxy/filters/module.ts";
import type { MarketplaceRelease } from "./marketplace.ts";
import {
  PULL_TIMEOUT_MS,
  RegistryClient,
  failureText,
  parseOciReference,
  readLimited,
  type Credentials,
} from "../../shared/oci-registry.ts";

export interface ResolveOptions {
  /** Registries (host[:port]) spoken to over plain HTTP, like Docker's insecure-registries. */
  insecureRegistries: ReadonlySet<string>;
  /** Largest module accepted. */
  maxBytes: number;
  /** How long fetching one module may take (default PULL_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Whether file:// urls may be read (local mode only: in a cluster they would read the control plane's disk). */
  allowFiles: boolean;
  /**
   * name@version -> where its module is (the artifact's url, or a file:// the control plane
   * ships) and the digest the index lists (marketplace.ts); null when the index does not list it.
   */
  marketplace: (name: string, version: string) => Promise<MarketplaceRelease | null>;
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

/** A url that can never resolve, whatever the network does (a file:// in a cluster, a release the index lacks): not worth a retry. */
export class UnresolvableUrl extends ResolveError {
  override name = "UnresolvableUrl";
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
      throw new ResolveError(
        `${url} has sha256 ${sha256}, not the ${expected} the WasmFilter pins; it is not loaded (fix sha256 if the new module is intended)`,
      );
    }
    return { bytes: got.bytes, sha256, source: got.source };
  }

  private async fetch(url: string, credentials: Credentials | undefined): Promise<{ bytes: Uint8Array; source: string }> {
    const scheme = /^([a-z]+):\/\//.exec(url)?.[1];
    if (scheme === "file") {
      if (!this.options.allowFiles)
        throw new UnresolvableUrl(
          `${url}: file:// urls are for local mode only; in a cluster publish the module to a registry (weft filter push)`,
        );
      const bytes = await readFile(fileURLToPath(url)).catch((e: Error) => {
        throw new ResolveError(`${url}: cannot read it: ${e.message}`);
      });
      return { bytes: this.bounded(bytes, url), source: url };
    }
    if (scheme === "https") return { bytes: await this.fetchHttps(url), source: url };
    if (scheme === "marketplace") return this.fetchMarketplace(url);
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
    throw new UnresolvableUrl(`${url}: unsupported scheme "${scheme}://"; use oci://, https://, file:// (local mode) or marketplace://`);
  }

  /**
   * A marketplace release, from where the marketplace callback says: a module shipped with
   * weft (file://, allowed whatever allowFiles says, since the control plane chose the path,
   * not the WasmFilter), or the release's artifact. With the index's digest the bytes must be
   * the release's: a damaged copy is refused, never run.
   */
  private async fetchMarketplace(url: string): Promise<{ bytes: Uint8Array; source: string }> {
    const [name, version] = url.slice("marketplace://".length).split("@");
    const release = await this.options.marketplace(name!, version!);
    if (!release)
      throw new UnresolvableUrl(`${url}: the marketplace index has no ${name} ${version} (weft filter search lists what it has)`);
    const { url: from, sha256: listed } = release;
    const shipped = from.startsWith("file://");
    let got: { bytes: Uint8Array; source: string };
    if (shipped) {
      const file = fileURLToPath(from);
      const bytes = await readFile(file).catch((e: Error) => {
        throw new ResolveError(`${url}: cannot read this control plane's own copy, ${file}: ${e.message}`);
      });
      got = { bytes: this.bounded(bytes, url), source: `${url}, this control plane's own copy ${file} (no registry involved)` };
    } else {
      try {
        const pulled = await this.fetch(from, undefined);
        got = { bytes: pulled.bytes, source: `${url}, pulled from ${pulled.source}: this control plane has no copy of it` };
      } catch (e) {
        throw new ResolveError(
          `${url}: this control plane has no copy of it, and the pull of its artifact failed: ${(e as Error).message}; ship it in the image (npm run image) or mirror the marketplace to a registry the cluster reaches (weft filter mirror, docs/filters.md)`,
        );
      }
    }
    const sha256 = sha256Hex(got.bytes);
    if (listed && sha256 !== listed) {
      const what = shipped ? `this control plane's own copy ${fileURLToPath(from)}` : `its artifact ${from}`;
      const fix = shipped
        ? "the file is damaged or was not built from this release's sources; rebuild the image (npm run image checks every module against the index) or delete the file so that the artifact is pulled"
        : "the registry serves other bytes under the release's tag; push the release again (weft filter mirror)";
      throw new ResolveError(
        `${url}: ${what} has sha256 ${sha256}, not the ${listed} the marketplace index lists for ${name} ${version}, so it is not loaded: ${fix}`,
      );
    }
    return got;
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
      return await readLimited(
        res,
        maxBytes,
        (n) => new ResolveError(`${url}: ${n} bytes or more, more than the ${maxBytes} a filter may have`),
      );
    } catch (e) {
      if (signal.aborted)
        throw new ResolveError(
          `${url}: no complete answer within ${this.timeoutMs / 1000} s: the server is too slow or does not answer, so the fetch was stopped; try again later, or check the server`,
        );
      if (e instanceof ResolveError) throw e;
      throw new ResolveError(`${url}: cannot fetch it: ${failureText(e)}`);
    }
  }

  private bounded(bytes: Uint8Array, url: string): Uint8Array {
    if (bytes.length > this.options.maxBytes)
      throw new ResolveError(`${url}: ${bytes.length} bytes, more than the ${this.options.maxBytes} a filter may have`);
    return bytes;
  }
}
