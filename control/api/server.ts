// The control plane's API for proxies (and, mounted beside it, the CSR endpoint and the
// injection webhook): HTTPS in a cluster, plain HTTP only where asked for (tests, local mode).
//
//   GET  /v1/proxies/config?namespace=NS&pod=NAME[&version=V]   server-sent events: "config"
//   POST /v1/proxies/ack   {namespace, pod, version, accepted, error?, unavailable?, quarantined?}
//   GET  /v1/filters/SHA256                                     a filter module, by digest
//
// Every proxy request carries its ServiceAccount token; a proxy may only ask for the
// configuration of a pod that runs as that ServiceAccount.
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import type { QuarantinedFilter } from "../../proxy/control/client.ts";
import type { Logger } from "../../shared/log.ts";
import { newProxySession, type PushHub } from "../push/hub.ts";

export type FetchHandler = (request: Request) => Promise<Response>;

export interface Caller {
  namespace: string;
  serviceAccount: string;
}

export interface ApiOptions {
  log: Logger;
  hub: PushHub;
  /** Who holds this token; throws an ApiError (401/403) when no one acceptable does. */
  authenticate: (token: string) => Promise<Caller>;
  /** The ServiceAccount a pod runs as, or null for an unknown pod. */
  podServiceAccount: (namespace: string, pod: string) => string | null;
  /** A module's bytes, for a caller that runs it: another namespace's module (pulled with its pull secret) is not the caller's to read. */
  module: (sha256: string, caller: Caller) => Uint8Array | undefined;
  /**
   * More routes in the Fetch API's terms: by exact path (the CSR endpoint, the webhook), or by
   * prefix with a key ending in "/*" (the dashboard).
   */
  routes?: Record<string, FetchHandler>;
  tls?: { cert: string; key: string };
  address?: string;
  port?: number;
  keepAliveMs?: number;
  /** Whether every resource has been read once: until then proxies get 503, not a configuration missing filters or policies. */
  synced?: () => boolean;
}

export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

const MAX_JSON = 64 * 1024;

function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  // Decoded once at the end: a character whose UTF-8 bytes arrive in two chunks stays whole.
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_JSON) throw new ApiError(413, `the body is larger than ${MAX_JSON} bytes`);
    chunks.push(chunk);
  }
  return parseJson(Buffer.concat(chunks).toString("utf8"));
}

/** A request body's JSON; ApiError 400 when it is not JSON. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ApiError(400, `the body is not JSON: ${(e as Error).message}`);
  }
}

/** A proxy's acknowledgement of a configuration (POST /v1/proxies/ack), checked. */
export interface Ack {
  namespace: string;
  pod: string;
  version: string;
  accepted: boolean;
  error?: string;
  /** Filters the proxy could not load, at most 64, with bounded names and reasons. */
  unavailable: { filter: string; reason: string }[];
  /** Filters the proxy has quarantined, at most 64, with bounded names, reasons and back-offs. */
  quarantined: QuarantinedFilter[];
}

/** Longer than any back-off a proxy uses (60 s): a larger one is not a proxy's. */
const MAX_BACKOFF_MS = 3_600_000;

/** The well-formed entries of an untrusted list, at most 64: a malformed entry is left out, not a 400 (older and newer proxies send what they know). */
function entries<T>(list: unknown, entry: (e: Record<string, unknown>) => T | null): T[] {
  if (!Array.isArray(list)) return [];
  return list.slice(0, 64).flatMap((e: unknown) => {
    const parsed = typeof e === "object" && e !== null ? entry(e as Record<string, unknown>) : null;
    return parsed === null ? [] : [parsed];
  });
}

const filterAndReason = (e: Record<string, unknown>) =>
  typeof e.filter === "string" && typeof e.reason === "string" ? { filter: e.filter.slice(0, 300), reason: e.reason.slice(0, 1000) } : null;

function quarantinedEntry(e: Record<string, unknown>): QuarantinedFilter | null {
  const named = filterAndReason(e);
  const { backoffMs, until } = e;
  if (!named || typeof backoffMs !== "number" || !Number.isInteger(backoffMs) || backoffMs <= 0 || backoffMs > MAX_BACKOFF_MS) return null;
  const at = typeof until === "string" && until.length <= 64 ? Date.parse(until) : Number.NaN;
  return Number.isFinite(at) ? { ...named, backoffMs, until: new Date(at).toISOString() } : null;
}

/** The acknowledgement in a body, or ApiError 400: a proxy's body is untrusted until its token is checked. */
export function parseAck(body: unknown): Ack {
  // JSON.parse("null") is a body too: reading fields of it would be a 500.
  const ack = (typeof body === "object" && body !== null ? body : {}) as {
    namespace?: unknown;
    pod?: unknown;
    version?: unknown;
    accepted?: unknown;
    error?: unknown;
    unavailable?: unknown;
    quarantined?: unknown;
  };
  if (
    typeof ack.namespace !== "string" ||
    typeof ack.pod !== "string" ||
    typeof ack.version !== "string" ||
    typeof ack.accepted !== "boolean"
  ) {
    throw new ApiError(400, "an acknowledgement is {namespace, pod, version, accepted, error?}");
  }
  return {
    namespace: ack.namespace,
    pod: ack.pod,
    version: ack.version,
    accepted: ack.accepted,
    ...(typeof ack.error === "string" ? { error: ack.error } : {}),
    unavailable: entries(ack.unavailable, filterAndReason),
    quarantined: entries(ack.quarantined, quarantinedEntry),
  };
}

// The body is streamed, not buffered: the handlers read it with a ceiling (api/body.ts), and
// anyone can reach the certificate endpoint and the webhook before being authenticated.
function toRequest(req: http.IncomingMessage, base: string): Request {
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers.set(k, v);
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  return new Request(new URL(req.url ?? "/", base), {
    method: req.method ?? "GET",
    headers,
    ...(hasBody ? { body: Readable.toWeb(req) as ReadableStream<Uint8Array>, duplex: "half" } : {}),
  } as RequestInit);
}

export interface ApiServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startApiServer(options: ApiOptions): Promise<ApiServer> {
  const { log, hub } = options;
  const scheme = options.tls ? "https" : "http";

  const caller = async (req: http.IncomingMessage, namespace: string, pod: string): Promise<Caller> => {
    const header = req.headers.authorization ?? "";
    const token = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
    if (!token)
      throw new ApiError(
        401,
        "no ServiceAccount token: send Authorization: Bearer <token> (the injected sidecar reads it from its projected token volume)",
      );
    const who = await options.authenticate(token);
    const account = options.podServiceAccount(namespace, pod);
    if (account === null)
      throw new ApiError(404, `no pod ${namespace}/${pod} is known to the control plane (it may not be created yet; the proxy retries)`);
    if (who.namespace !== namespace || who.serviceAccount !== account) {
      throw new ApiError(
        403,
        `the token is for ServiceAccount ${who.namespace}/${who.serviceAccount}, but pod ${namespace}/${pod} runs as ${namespace}/${account}`,
      );
    }
    return who;
  };

  const stream = async (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => {
    const namespace = url.searchParams.get("namespace") ?? "";
    const pod = url.searchParams.get("pod") ?? "";
    if (!namespace || !pod) throw new ApiError(400, "give namespace and pod as query parameters");
    // Before authentication: until the pods are read, every proxy would get a 404.
    if (options.synced && !options.synced())
      throw new ApiError(503, "the control plane is still reading the mesh's resources; the proxy retries");
    await caller(req, namespace, pod);
    // The proxy may have gone, or the server closed, while its token was reviewed: its close
    // event has fired already, and a session set up now would never be cleaned up.
    if (res.destroyed || req.socket.destroyed) return;
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
    res.flushHeaders();
    const session = newProxySession(namespace, pod, (frame) => {
      if (res.destroyed || res.writableEnded) return false;
      res.write(frame);
      return true;
    });
    // Comments keep idle connections (and middleboxes) from timing the stream out.
    const keepAlive = setInterval(() => res.write(": keep-alive\n\n"), options.keepAliveMs ?? 15_000);
    // The stream's socket keeps the process alive while it is open; the timer must not.
    keepAlive.unref();
    req.socket.setNoDelay(true);
    res.on("close", () => {
      clearInterval(keepAlive);
      hub.disconnect(session);
    });
    hub.connect(session, url.searchParams.get("version"));
  };

  const ack = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const body = parseAck(await readJson(req));
    await caller(req, body.namespace, body.pod);
    const { unavailable, quarantined } = body;
    const known = hub.ack({ namespace: body.namespace, pod: body.pod }, body.version, body.accepted, body.error, {
      unavailable,
      quarantined,
    });
    sendJson(res, known ? 200 : 409, known ? { ok: true } : { error: "this proxy has no open configuration stream; reconnect first" });
  };

  const filter = async (req: http.IncomingMessage, res: http.ServerResponse, sha256: string) => {
    const header = req.headers.authorization ?? "";
    const token = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
    if (!token) throw new ApiError(401, "no ServiceAccount token: send Authorization: Bearer <token>");
    const who = await options.authenticate(token);
    const bytes = options.module(sha256, who);
    // The same answer whether the module exists or is someone else's: its existence is not the caller's to learn either.
    if (!bytes)
      throw new ApiError(
        404,
        `no filter module with sha256 ${sha256} is in use by a pod of ServiceAccount ${who.namespace}/${who.serviceAccount}`,
      );
    res.writeHead(200, { "content-type": "application/wasm", "content-length": bytes.length, "cache-control": "immutable" });
    res.end(bytes);
  };

  const prefixes = Object.entries(options.routes ?? {})
    .filter(([key]) => key.endsWith("/*"))
    .map(([key, handler]) => [key.slice(0, -1), handler] as const);
  const prefixRoute = (path: string) => prefixes.find(([prefix]) => path.startsWith(prefix) || `${path}/` === prefix)?.[1];

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? "/", `${scheme}://${req.headers.host ?? "localhost"}`);
    try {
      const extra = options.routes?.[url.pathname] ?? prefixRoute(url.pathname);
      if (extra) {
        const response = await extra(toRequest(req, url.origin));
        res.writeHead(response.status, Object.fromEntries(response.headers));
        res.end(Buffer.from(await response.arrayBuffer()));
        return;
      }
      if (req.method === "GET" && url.pathname === "/v1/proxies/config") return await stream(req, res, url);
      if (req.method === "POST" && url.pathname === "/v1/proxies/ack") return await ack(req, res);
      const module = /^\/v1\/filters\/([0-9a-f]{64})$/.exec(url.pathname);
      if (req.method === "GET" && module) return await filter(req, res, module[1]!);
      if (req.method === "GET" && (url.pathname === "/healthz" || url.pathname === "/readyz")) return sendJson(res, 200, { ok: true });
      throw new ApiError(
        404,
        `no ${req.method} ${url.pathname} here: the API serves /v1/proxies/config, /v1/proxies/ack, /v1/filters/SHA256${Object.keys(
          options.routes ?? {},
        )
          .map((r) => `, ${r}`)
          .join("")}`,
      );
    } catch (e) {
      const status = e instanceof ApiError ? e.status : 500;
      if (status === 500) log.error("API request failed", { path: url.pathname, error: (e as Error).message });
      if (!res.headersSent) sendJson(res, status, { error: (e as Error).message });
      else res.destroy();
    }
  };

  const server = options.tls ? https.createServer({ cert: options.tls.cert, key: options.tls.key }, handle) : http.createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 15012, options.address ?? "0.0.0.0", resolve);
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.address && options.address !== "0.0.0.0" ? options.address : "127.0.0.1";
  // The address it listens on, as bound: 0.0.0.0 is every address of the pod, not 127.0.0.1 alone.
  log.info("control plane API listening", { address: `${options.address ?? "0.0.0.0"}:${port}`, scheme });
  return {
    url: `${scheme}://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
