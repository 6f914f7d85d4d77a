// An OCI distribution client for WebAssembly filters stored as Wasm OCI artifacts (CNCF TAG
// Runtime layout: an OCI image manifest, config application/vnd.wasm.config.v0+json, one
// application/vnd.wasm.content.layer.v1+wasm layer). `weft filter push` publishes with it and
// the control plane pulls with it, so it uses only global fetch and node:crypto: it runs on
// Node, Deno and Bun alike. Auth: anonymous, HTTP Basic, and the Docker/OCI bearer-token flow.
import { Buffer } from "node:buffer";
import { createHash, type Hash } from "node:crypto";

export const MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json";
export const WASM_CONFIG_MEDIA_TYPE = "application/vnd.wasm.config.v0+json";
export const WASM_LAYER_MEDIA_TYPE = "application/vnd.wasm.content.layer.v1+wasm";

// containerd refuses manifests above 4 MiB too; a Wasm artifact's manifest is under 1 KiB.
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const MAX_REDIRECTS = 5;
/** How long a whole pull (manifest, token, blob) may take unless told otherwise: a 32 MiB module at ~10 Mbit/s. */
export const PULL_TIMEOUT_MS = 30_000;
/** How long a whole push may take unless told otherwise: uplinks are slower than downlinks (32 MiB at ~2.5 Mbit/s). */
export const PUSH_TIMEOUT_MS = 120_000;
const EXAMPLE = "oci://registry.example.com/filters/my-auth:1.0.0";
const CREDENTIALS_HELP =
  "give credentials with --username and --password-stdin, or WEFT_REGISTRY_USERNAME and WEFT_REGISTRY_PASSWORD (a WasmFilter: its pullSecret)";

export interface OciReference {
  /** host[:port] as written. */
  registry: string;
  repository: string;
  tag: string | null;
  /** sha256:<64 hex>; when set, it is what a pull fetches (the tag is then only informative). */
  digest: string | null;
}

export interface Credentials {
  username: string;
  password: string;
}

export interface ConnectOptions {
  credentials?: Credentials;
  /** Talk plain HTTP instead of HTTPS (a local registry); off unless asked for. */
  plainHttp?: boolean;
  /**
   * The whole push or pull is stopped after this long (default PUSH_TIMEOUT_MS or PULL_TIMEOUT_MS):
   * a registry that trickles or hangs cannot hold it forever.
   */
  timeoutMs?: number;
}

export interface PushOptions extends ConnectOptions {
  /** Manifest annotations, e.g. org.opencontainers.image.title and .version. */
  annotations: Record<string, string>;
}

export interface PullOptions extends ConnectOptions {
  /** The largest .wasm accepted: checked against the manifest's size and as the bytes arrive. */
  maxBytes: number;
}

export interface PushResult {
  manifestDigest: string;
  layerDigest: string;
  /** oci://registry/repository:tag */
  reference: string;
}

export interface PullResult {
  wasm: Uint8Array;
  /** sha256:<hex> of the .wasm (the hex is what a WasmFilter's sha256 pins). */
  layerDigest: string;
  manifestDigest: string;
}

export class OciReferenceError extends Error {
  override name = "OciReferenceError";
}

export class RegistryError extends Error {
  override name = "RegistryError";
  readonly registry: string;
  readonly repository: string;
  readonly operation: string;
  /** The HTTP status, or null when no answer came or the answer's content was refused. */
  readonly status: number | null;
  /** The registry's own error codes (MANIFEST_UNKNOWN, UNAUTHORIZED, ...) from its JSON body. */
  readonly codes: string[];
  constructor(ref: OciReference, operation: string, status: number | null, codes: string[], detail: string) {
    super(`${operation} in ${ref.registry}/${ref.repository} failed: ${detail}`);
    this.registry = ref.registry;
    this.repository = ref.repository;
    this.operation = operation;
    this.status = status;
    this.codes = codes;
  }
}

// The grammar of github.com/distribution/reference, with the registry always explicit.
const LABEL = "[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
const HOST = new RegExp(`^(?:${LABEL}(?:\\.${LABEL})*|\\[[0-9a-fA-F:.]+\\])(?::([0-9]{1,5}))?$`);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** Parses oci://host[:port]/repo/path[:tag][@sha256:...]. */
export function parseOciReference(text: string): OciReference {
  const bad = (why: string): never => {
    throw new OciReferenceError(
      `"${text}" is not an OCI reference: ${why}; a good one looks like ${EXAMPLE} (or ...@sha256:<64 hex digits>)`,
    );
  };
  if (!text.startsWith("oci://")) bad(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? "the scheme must be oci://" : "it must start with oci://");
  const rest = text.slice("oci://".length);
  const slash = rest.indexOf("/");
  if (slash < 0) bad("the repository is missing after the registry");
  if (slash === 0) bad("the registry host is missing");
  const registry = rest.slice(0, slash);
  const host = HOST.exec(registry);
  if (!host) bad(`the registry "${registry}" is not a host name or host:port`);
  if (host![1] !== undefined && (Number(host![1]) < 1 || Number(host![1]) > 65535)) bad(`the port of "${registry}" is not 1-65535`);
  let repository = rest.slice(slash + 1);
  let digest: string | null = null;
  const at = repository.indexOf("@");
  if (at >= 0) {
    digest = repository.slice(at + 1);
    repository = repository.slice(0, at);
    if (!DIGEST.test(digest)) bad(`the digest "${digest}" is not sha256: followed by 64 lower-case hex digits`);
  }
  let tag: string | null = null;
  const colon = repository.lastIndexOf(":");
  if (colon > repository.lastIndexOf("/")) {
    tag = repository.slice(colon + 1);
    repository = repository.slice(0, colon);
    if (!TAG.test(tag)) bad(`the tag "${tag}" must be 1-128 letters, digits, "_", "." or "-", not starting with "." or "-"`);
  }
  if (repository === "") bad("the repository is missing after the registry");
  for (const part of repository.split("/")) {
    if (!PATH_COMPONENT.test(part))
      bad(`"${part}" in the repository "${repository}" must be lower-case letters and digits, joined by ".", "_", "__" or "-"`);
  }
  if (repository.length > 255) bad("the repository is longer than 255 characters");
  return { registry, repository, tag, digest };
}

export function formatOciReference(ref: OciReference): string {
  return `oci://${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ""}${ref.digest ? `@${ref.digest}` : ""}`;
}

const sha256 = (bytes: Uint8Array): string => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
const encode = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));
const short = (digest: string): string => digest.slice(0, "sha256:".length + 12);

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** The first challenge of a WWW-Authenticate header: `Bearer realm="...",service="...",scope="a:b:pull,push"`. */
function parseChallenge(header: string | null): Challenge | null {
  const m = header ? /^\s*([A-Za-z]+)\s*(.*)$/.exec(header) : null;
  if (!m) return null;
  const params: Record<string, string> = {};
  for (const p of m[2].matchAll(/([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g))
    params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : p[3];
  return { scheme: m[1].toLowerCase(), params };
}

/** What one push or pull talks to, and for whom. */
interface Session {
  ref: OciReference;
  /** https://host[:port] (http:// with plainHttp). */
  origin: string;
  /** The token scope's actions. */
  actions: "pull" | "pull,push";
  credentials?: Credentials;
  plainHttp: boolean;
  /** Aborts every request and body read of the operation (its deadline). */
  signal: AbortSignal;
}

/** What a fetch threw, with its causes: runtimes put the useful part ("ECONNREFUSED") in `cause`. */
export function failureText(error: unknown): string {
  const parts: string[] = [];
  for (
    let e = error as { message?: string; code?: string; cause?: unknown } | undefined, depth = 0;
    e && depth < 5;
    e = e.cause as typeof e, depth++
  ) {
    if (e.code) parts.push(e.code);
    if (e.message) parts.push(e.message.replace(/\s+/g, " ").trim());
  }
  return parts.join(": ") || String(error);
}

/** Why a request got no answer, and what to do; the regular expressions cover Node's, Deno's and Bun's wording. */
function unreachable(session: Session, url: string, error: unknown): string {
  const text = failureText(error);
  const { host } = new URL(url);
  if (/ECONNREFUSED|connection refused/i.test(text))
    return `nothing answers at ${url} (connection refused): is the registry running, and is ${host} its host and port?`;
  if (/WRONG_VERSION_NUMBER|wrong version number|InvalidContentType|EPROTO|speak TLS|packet length too long/i.test(text)) {
    return `${url} did not answer in TLS: the server seems to give HTTP responses to an HTTPS client, as a local registry serving plain HTTP does; if so, add --plain-http`;
  }
  if (/ENOTFOUND|EAI_AGAIN|dns error|failed to lookup/i.test(text))
    return `the host of ${url} could not be resolved (${text}): check the registry's name`;
  if (/certificate|CERT_|self[- ]signed|UnknownIssuer/i.test(text)) {
    return `the TLS certificate of ${host} was not accepted (${text}): trust its CA (NODE_EXTRA_CA_CERTS on Node and Bun, DENO_CERT on Deno)${session.plainHttp ? "" : ", or if it serves plain HTTP, add --plain-http"}`;
  }
  return `no answer from ${url}: ${text}`;
}

/**
 * Reads a body of at most `limit` bytes, refusing by Content-Length before reading and while
 * reading (a lying or missing Content-Length cannot make it buffer more). `hash` sees every chunk.
 */
export async function readLimited(response: Response, limit: number, tooBig: (bytes: number) => Error, hash?: Hash): Promise<Uint8Array> {
  const declared = Number(response.headers.get("content-length") ?? NaN);
  if (declared > limit) {
    await response.body?.cancel();
    throw tooBig(declared);
  }
  const chunks: Uint8Array[] = [];
  let received = 0;
  if (response.body) {
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      received += value.length;
      if (received > limit) {
        await reader.cancel();
        throw tooBig(received);
      }
      hash?.update(value);
      chunks.push(value);
    }
  }
  const out = new Uint8Array(received);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * A registry client. It keeps bearer tokens per registry, repository, scope and credentials for
 * its life (a token that stops working is fetched again), so the control plane keeps one client.
 */
export class RegistryClient {
  readonly #tokens = new Map<string, string>();
  /** Registries (origins) that asked for Basic: later requests carry it without a 401 first. */
  readonly #basic = new Set<string>();

  /** Publishes `wasm` as a Wasm OCI artifact under the reference's tag; blobs already there are not sent again. */
  async pushWasm(reference: string | OciReference, wasm: Uint8Array, options: PushOptions): Promise<PushResult> {
    const ref = typeof reference === "string" ? parseOciReference(reference) : reference;
    const where = formatOciReference(ref);
    if (ref.digest)
      throw new OciReferenceError(`"${where}": push to a tag, not a digest (the digest comes from the content), e.g. ${EXAMPLE}`);
    if (!ref.tag) throw new OciReferenceError(`"${where}" has no tag to push to: add one, e.g. ${EXAMPLE}`);
    return this.#withDeadline(ref, "push", options.timeoutMs ?? PUSH_TIMEOUT_MS, (signal, step) =>
      this.#push(this.#session(ref, "pull,push", options, signal), wasm, options.annotations, step),
    );
  }

  /** `step.operation` says what it is doing, for the deadline's error. */
  async #push(session: Session, wasm: Uint8Array, given: Record<string, string>, step: { operation: string }): Promise<PushResult> {
    const { ref } = session;
    const layerDigest = sha256(wasm);
    // No timestamps or host details: the same .wasm and annotations give the same manifest digest.
    const config = encode({ architecture: "wasm", os: "wasip1", layerDigests: [layerDigest] });
    const annotations = Object.fromEntries(Object.entries(given).sort(([a], [b]) => (a < b ? -1 : 1)));
    const manifest = encode({
      schemaVersion: 2,
      mediaType: MANIFEST_MEDIA_TYPE,
      config: { mediaType: WASM_CONFIG_MEDIA_TYPE, digest: sha256(config), size: config.length },
      layers: [{ mediaType: WASM_LAYER_MEDIA_TYPE, digest: layerDigest, size: wasm.length }],
      ...(Object.keys(annotations).length ? { annotations } : {}),
    });
    const manifestDigest = sha256(manifest);
    await this.#putBlob(session, config, step);
    await this.#putBlob(session, wasm, step);
    const operation = (step.operation = `pushing the manifest ${ref.tag}`);
    const response = await this.#send(
      session,
      operation,
      "PUT",
      this.#url(session, `manifests/${ref.tag}`),
      { "content-type": MANIFEST_MEDIA_TYPE },
      manifest,
    );
    if (!response.ok) throw await this.#httpError(session, operation, response);
    await response.body?.cancel();
    const stored = response.headers.get("docker-content-digest");
    if (stored && stored !== manifestDigest) {
      throw new RegistryError(
        ref,
        operation,
        response.status,
        [],
        `the registry stored the manifest as ${stored}, not as the ${manifestDigest} that was sent: it rewrote the manifest, so a pull by digest would not find it; use another registry`,
      );
    }
    return { manifestDigest, layerDigest, reference: formatOciReference({ ...ref, digest: null }) };
  }

  /** Fetches the .wasm of a Wasm OCI artifact, checked against the manifest's size and digest. */
  async pullWasm(reference: string | OciReference, options: PullOptions): Promise<PullResult> {
    const ref = typeof reference === "string" ? parseOciReference(reference) : reference;
    return this.#withDeadline(ref, "pull", options.timeoutMs ?? PULL_TIMEOUT_MS, (signal, step) =>
      this.#pull(this.#session(ref, "pull", options, signal), options.maxBytes, step),
    );
  }

  /** Runs one push or pull under a deadline that aborts every request and body read it makes. */
  async #withDeadline<T>(
    ref: OciReference,
    what: "push" | "pull",
    timeoutMs: number,
    run: (signal: AbortSignal, step: { operation: string }) => Promise<T>,
  ): Promise<T> {
    const signal = AbortSignal.timeout(timeoutMs);
    const step = { operation: "connecting" };
    try {
      return await run(signal, step);
    } catch (e) {
      // Whatever failed once the deadline passed failed because of it (an aborted request or body read).
      if (!signal.aborted) throw e;
      throw new RegistryError(
        ref,
        step.operation,
        null,
        [],
        `no complete answer within ${timeoutMs / 1000} s: the registry is too slow or does not answer, so the ${what} was stopped; try again later, or check the registry and the network to it`,
      );
    }
  }

  /** `step.operation` says what it is doing, for the deadline's error. */
  async #pull(session: Session, maxBytes: number, step: { operation: string }): Promise<PullResult> {
    const { ref } = session;
    const where = formatOciReference(ref);
    // As `docker pull`: no tag means latest.
    const target = ref.digest ?? ref.tag ?? "latest";
    step.operation = `getting the manifest ${target}`;
    const response = await this.#send(session, step.operation, "GET", this.#url(session, `manifests/${target}`), {
      accept: MANIFEST_MEDIA_TYPE,
    });
    if (response.status === 404)
      throw await this.#httpError(
        session,
        step.operation,
        response,
        `${where} does not exist: check the repository and ${ref.digest ? "digest" : "tag"} (weft filter push publishes one)`,
      );
    if (response.status !== 200) throw await this.#httpError(session, step.operation, response);
    const refuse = (detail: string) => new RegistryError(ref, step.operation, null, [], detail);
    const body = await readLimited(response, MAX_MANIFEST_BYTES, (n) =>
      refuse(`the manifest is ${n} bytes, more than the ${MAX_MANIFEST_BYTES} a manifest may have: ${where} is not a Wasm filter artifact`),
    );
    const manifestDigest = sha256(body);
    if (ref.digest && manifestDigest !== ref.digest)
      throw refuse(
        `the registry sent a manifest whose digest is ${manifestDigest}, not the ${ref.digest} asked for: refused; the registry or something between serves corrupt data`,
      );
    let manifest: { mediaType?: unknown; config?: { mediaType?: unknown }; layers?: unknown };
    try {
      manifest = JSON.parse(new TextDecoder().decode(body)) as typeof manifest;
    } catch (e) {
      throw refuse(`the manifest is not JSON (${(e as Error).message}): ${where} is not a Wasm filter artifact`);
    }
    const mediaType = manifest.mediaType ?? response.headers.get("content-type");
    if (mediaType !== MANIFEST_MEDIA_TYPE || !Array.isArray(manifest.layers)) {
      throw refuse(
        `it is a ${String(mediaType)}, not an OCI image manifest (${MANIFEST_MEDIA_TYPE}) with layers: ${where} is not a Wasm filter artifact`,
      );
    }
    const layers = manifest.layers as { mediaType?: unknown; digest?: unknown; size?: unknown }[];
    const wasmLayers = layers.filter((l) => l?.mediaType === WASM_LAYER_MEDIA_TYPE);
    if (wasmLayers.length !== 1) {
      const types = [`config ${String(manifest.config?.mediaType)}`, ...layers.map((l) => `layer ${String(l?.mediaType)}`)].join(", ");
      throw refuse(
        `${where} has ${wasmLayers.length === 0 ? "no" : wasmLayers.length} ${WASM_LAYER_MEDIA_TYPE} layer${wasmLayers.length > 1 ? "s" : ""} (it has ${types}), so it is not a Wasm filter artifact: a Wasm filter artifact has exactly one; push one with weft filter push`,
      );
    }
    const layer = wasmLayers[0];
    if (
      typeof layer.digest !== "string" ||
      !DIGEST.test(layer.digest) ||
      typeof layer.size !== "number" ||
      !Number.isSafeInteger(layer.size) ||
      layer.size < 0
    ) {
      throw refuse(
        `its wasm layer's digest ${JSON.stringify(layer.digest)} or size ${JSON.stringify(layer.size)} is not a sha256 digest and a byte count`,
      );
    }
    const layerDigest = layer.digest;
    const size = layer.size;
    step.operation = `getting the blob ${short(layerDigest)}`;
    if (size > maxBytes) {
      throw refuse(
        `the .wasm is ${size} bytes by its manifest, more than the ${maxBytes} allowed: refused without downloading it (raise the limit if the filter is really that big)`,
      );
    }
    const blob = await this.#send(session, step.operation, "GET", this.#url(session, `blobs/${layerDigest}`), {});
    if (blob.status !== 200) throw await this.#httpError(session, step.operation, blob);
    const hash = createHash("sha256");
    const wasm = await readLimited(
      blob,
      maxBytes,
      (n) => refuse(`the registry's answer is ${n} bytes or more, more than the ${maxBytes} allowed (the manifest said ${size}): refused`),
      hash,
    );
    if (wasm.length !== size)
      throw refuse(`the registry sent ${wasm.length} bytes where the manifest says ${size}: refused; the blob in the registry is damaged`);
    const received = `sha256:${hash.digest("hex")}`;
    if (received !== layerDigest)
      throw refuse(
        `digest mismatch: the bytes received have ${received}, the manifest says ${layerDigest}: refused; the blob in the registry or something between is corrupt`,
      );
    return { wasm, layerDigest, manifestDigest };
  }

  #session(ref: OciReference, actions: Session["actions"], options: ConnectOptions, signal: AbortSignal): Session {
    // Docker Hub's name is docker.io, its API lives at registry-1.docker.io.
    const host = ref.registry === "docker.io" ? "registry-1.docker.io" : ref.registry;
    const plainHttp = options.plainHttp ?? false;
    return { ref, origin: `${plainHttp ? "http" : "https"}://${host}`, actions, credentials: options.credentials, plainHttp, signal };
  }

  #url(session: Session, path: string): string {
    return `${session.origin}/v2/${session.ref.repository}/${path}`;
  }

  /** HEAD first: a blob the registry has (from any earlier push) is not uploaded again. */
  async #putBlob(session: Session, bytes: Uint8Array, step: { operation: string }): Promise<void> {
    const digest = sha256(bytes);
    let operation = (step.operation = `checking for the blob ${short(digest)}`);
    const head = await this.#send(session, operation, "HEAD", this.#url(session, `blobs/${digest}`), {});
    if (head.status !== 200 && head.status !== 404) throw await this.#httpError(session, operation, head);
    await head.body?.cancel();
    if (head.status === 200) return;
    operation = step.operation = `starting the upload of the blob ${short(digest)}`;
    const start = await this.#send(session, operation, "POST", this.#url(session, "blobs/uploads/"), {}, new Uint8Array(0));
    if (!start.ok) throw await this.#httpError(session, operation, start);
    await start.body?.cancel();
    const location = start.headers.get("location");
    if (!location)
      throw new RegistryError(
        session.ref,
        operation,
        start.status,
        [],
        "the registry accepted the upload but gave no Location to send it to: it does not follow the OCI distribution spec",
      );
    // Location may be relative or absolute and may carry its own query (upload state): keep it byte for byte.
    const target = new URL(location, start.url || session.origin);
    target.search = `${target.search ? `${target.search}&` : "?"}digest=${encodeURIComponent(digest)}`;
    operation = step.operation = `uploading the blob ${short(digest)} (${bytes.length} bytes)`;
    const put = await this.#send(session, operation, "PUT", target.href, { "content-type": "application/octet-stream" }, bytes);
    if (!put.ok) throw await this.#httpError(session, operation, put);
    await put.body?.cancel();
  }

  #tokenKey(session: Session): string {
    const who = session.credentials
      ? createHash("sha256").update(`${session.credentials.username}\0${session.credentials.password}`).digest("hex")
      : "anonymous";
    return `${session.origin}\0${session.ref.repository}\0${session.actions}\0${who}`;
  }

  #authorization(session: Session): string | undefined {
    const token = this.#tokens.get(this.#tokenKey(session));
    if (token) return `Bearer ${token}`;
    const c = session.credentials;
    if (c && this.#basic.has(session.origin)) return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
    return undefined;
  }

  /** One request to the registry: authenticates on a 401 (once) and follows redirects of GET and HEAD. */
  async #send(
    session: Session,
    operation: string,
    method: string,
    url: string,
    headers: Record<string, string>,
    body?: Uint8Array,
  ): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const sent = new URL(url).origin === session.origin ? this.#authorization(session) : undefined;
      const response = await this.#fetch(session, operation, method, url, sent ? { ...headers, authorization: sent } : headers, body);
      if (response.status !== 401 || attempt > 0) return response;
      const challenge = parseChallenge(response.headers.get("www-authenticate"));
      if (challenge?.scheme === "bearer" && challenge.params.realm) {
        await response.body?.cancel();
        this.#tokens.set(this.#tokenKey(session), await this.#fetchToken(session, challenge.params));
      } else if (challenge?.scheme === "basic" && session.credentials && !sent?.startsWith("Basic ")) {
        await response.body?.cancel();
        this.#basic.add(session.origin);
      } else {
        return response;
      }
    }
  }

  async #fetch(
    session: Session,
    operation: string,
    method: string,
    url: string,
    headers: Record<string, string>,
    body?: Uint8Array,
  ): Promise<Response> {
    let current = url;
    let sendHeaders = headers;
    for (let hop = 0; ; hop++) {
      let response: Response;
      try {
        response = await fetch(current, {
          method,
          headers: sendHeaders,
          body: body as Uint8Array<ArrayBuffer> | undefined,
          redirect: "manual",
          signal: session.signal,
        });
      } catch (e) {
        throw new RegistryError(session.ref, operation, null, [], unreachable(session, current, e));
      }
      const location = response.headers.get("location");
      if (response.status < 300 || response.status > 399 || !location || (method !== "GET" && method !== "HEAD")) return response;
      if (hop === MAX_REDIRECTS)
        throw new RegistryError(
          session.ref,
          operation,
          response.status,
          [],
          `more than ${MAX_REDIRECTS} redirects from ${url}: the registry is misconfigured`,
        );
      await response.body?.cancel();
      const next = new URL(location, current);
      // Blobs are often served from storage elsewhere by a presigned URL, which must not get
      // the registry's credentials (and refuses requests that carry them).
      if (next.origin !== new URL(current).origin)
        sendHeaders = Object.fromEntries(Object.entries(sendHeaders).filter(([k]) => k !== "authorization"));
      current = next.href;
    }
  }

  /** The bearer-token flow: GET realm?service=&scope= (with Basic credentials if any) → token or access_token. */
  async #fetchToken(session: Session, params: Record<string, string>): Promise<string> {
    const scope = `repository:${session.ref.repository}:${session.actions}`;
    const operation = `getting a token for ${scope} from ${params.realm}`;
    let url: URL;
    try {
      url = new URL(params.realm);
    } catch {
      throw new RegistryError(
        session.ref,
        operation,
        401,
        [],
        `the registry's WWW-Authenticate realm "${params.realm}" is not a URL: the registry is misconfigured`,
      );
    }
    if (params.service) url.searchParams.set("service", params.service);
    url.searchParams.set("scope", scope);
    const c = session.credentials;
    const headers: Record<string, string> = c
      ? { authorization: `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}` }
      : {};
    const response = await this.#fetch(session, operation, "GET", url.href, headers);
    if (response.status !== 200) {
      const advice =
        response.status === 401 || response.status === 403
          ? c
            ? `the token server refused the credentials of "${c.username}": check them`
            : `the registry needs credentials: ${CREDENTIALS_HELP}`
          : undefined;
      throw await this.#httpError(session, operation, response, advice);
    }
    const body = await readLimited(
      response,
      MAX_MANIFEST_BYTES,
      (n) => new RegistryError(session.ref, operation, 200, [], `the token server's answer is ${n} bytes: too big`),
    );
    let answer: { token?: unknown; access_token?: unknown };
    try {
      answer = JSON.parse(new TextDecoder().decode(body)) as typeof answer;
    } catch {
      answer = {};
    }
    const token = typeof answer.token === "string" && answer.token ? answer.token : answer.access_token;
    if (typeof token !== "string" || !token)
      throw new RegistryError(
        session.ref,
        operation,
        200,
        [],
        `the token server's answer is not JSON with a "token" or "access_token": it does not follow the Docker token spec`,
      );
    return token;
  }

  /** A RegistryError for an unexpected answer: its status, the registry's error codes, and what to do. */
  async #httpError(session: Session, operation: string, response: Response, advice?: string): Promise<RegistryError> {
    let text = "";
    try {
      text = new TextDecoder().decode(await readLimited(response, MAX_ERROR_BODY_BYTES, () => new Error("too big")));
    } catch {
      // The body only adds detail; the status is the error.
    }
    let errors: { code?: unknown; message?: unknown }[] = [];
    try {
      const parsed = JSON.parse(text) as { errors?: unknown };
      if (Array.isArray(parsed.errors)) errors = parsed.errors as typeof errors;
    } catch {
      // Not the OCI error JSON (a proxy's HTML page, an empty HEAD answer).
    }
    const codes = errors.map((e) => String(e?.code ?? "")).filter(Boolean);
    const detail = errors
      .map((e) => [e?.code, e?.message].filter(Boolean).join(": "))
      .filter(Boolean)
      .join("; ");
    const c = session.credentials;
    const status = response.status;
    const hint =
      advice ??
      (status === 401
        ? c
          ? `the registry refused the credentials of "${c.username}": check the username and password (or token)`
          : `the registry needs credentials: ${CREDENTIALS_HELP}`
        : status === 403
          ? `${c ? `"${c.username}"` : "an anonymous client"} may not ${session.actions === "pull" ? "pull from" : "push to"} ${session.ref.repository}: ask the registry's administrators for access`
          : status === 400 && /HTTP request to an HTTPS server/i.test(text)
            ? "the registry serves HTTPS: leave out --plain-http"
            : status === 429
              ? "the registry limits requests: try again later"
              : status >= 500
                ? "the registry failed: try again later, or look at its logs"
                : undefined);
    const statusText = `HTTP ${status}${response.statusText ? ` ${response.statusText}` : ""}`;
    return new RegistryError(
      session.ref,
      operation,
      status,
      codes,
      `${statusText}${detail ? ` (${detail})` : ""}${hint ? `: ${hint}` : ""}`,
    );
  }
}
