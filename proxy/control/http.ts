// Requests to the control plane: JSON, bytes and a server-sent event stream, over HTTP or
// HTTPS with the mesh's trust bundle. node:http(s) rather than fetch, because fetch cannot be
// given a CA per request the same way on Node, Deno and Bun; all three implement
// node:https with `ca`.
import http from "node:http";
import https from "node:https";

export interface ControlEndpoint {
  /** http://host:port or https://host:port, without a path. */
  readonly base: string;
  /** PEM bundle the control plane's serving certificate must chain to (https only). */
  readonly ca?: string;
  /** Sent as "Authorization: Bearer ..." (the ServiceAccount token, read fresh each time). */
  readonly token: () => Promise<string>;
  /**
   * How long a connection may stay silent before it is given up (default 30 s). A control plane
   * that vanished without closing its connections (a node lost, a network partition) would
   * otherwise hold an acknowledgement, an enrollment or the configuration stream forever; the
   * stream gets a keep-alive comment every 15 s, so silence is a dead peer.
   */
  readonly idleTimeoutMs?: number;
}

export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

export class ControlHttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "ControlHttpError";
    this.status = status;
  }
}

const MAX_BODY = 64 * 1024 * 1024;

async function open(
  endpoint: ControlEndpoint,
  method: string,
  path: string,
  body?: string,
  signal?: AbortSignal,
): Promise<http.IncomingMessage> {
  const url = new URL(path, endpoint.base);
  const headers: Record<string, string> = { authorization: `Bearer ${await endpoint.token()}` };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    headers["content-length"] = String(Buffer.byteLength(body));
  }
  return new Promise((resolve, reject) => {
    const options = { method, headers, ...(url.protocol === "https:" && endpoint.ca ? { ca: endpoint.ca } : {}) };
    const req = (url.protocol === "https:" ? https : http).request(url, options, resolve);
    const idleMs = endpoint.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    req.setTimeout(idleMs, () => req.destroy(new Error(`nothing received for ${idleMs / 1000} s; the control plane is gone or hung`)));
    req.on("error", (e) => reject(new Error(`${method} ${url.href}: ${e.message}`)));
    // A stop must not wait for a connect or an answer that may take the whole idle timeout.
    const abort = () => req.destroy(new Error("stopped"));
    signal?.addEventListener("abort", abort, { once: true });
    req.once("response", () => signal?.removeEventListener("abort", abort));
    req.end(body);
  });
}

async function readAll(res: http.IncomingMessage, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) {
      res.destroy();
      throw new Error(`${what}: the answer is larger than ${MAX_BODY} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function expectOk(res: http.IncomingMessage, what: string): Promise<Buffer> {
  const body = await readAll(res, what);
  if (res.statusCode !== 200) {
    let message = body.toString("utf8").slice(0, 500);
    try {
      message = (JSON.parse(message) as { error?: string }).error ?? message;
    } catch {
      // not JSON: the text as it is
    }
    throw new ControlHttpError(res.statusCode ?? 0, `${what}: HTTP ${res.statusCode}: ${message}`);
  }
  return body;
}

export async function postJson(endpoint: ControlEndpoint, path: string, value: unknown): Promise<unknown> {
  const res = await open(endpoint, "POST", path, JSON.stringify(value));
  return JSON.parse((await expectOk(res, `POST ${path}`)).toString("utf8")) as unknown;
}

export async function getBytes(endpoint: ControlEndpoint, path: string): Promise<Uint8Array> {
  return new Uint8Array(await expectOk(await open(endpoint, "GET", path), `GET ${path}`));
}

export interface ServerEvent {
  event: string;
  data: string;
}

/**
 * Opens an event stream and calls `onEvent` for each event in order (the next waits for the
 * previous one's promise). Resolves when the server ends the stream; rejects on errors.
 */
export async function readEventStream(
  endpoint: ControlEndpoint,
  path: string,
  onEvent: (e: ServerEvent) => Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  if (signal.aborted) return;
  const res = await open(endpoint, "GET", path, undefined, signal).catch((e: Error) => {
    if (signal.aborted) return null;
    throw e;
  });
  if (res === null) return;
  if (res.statusCode !== 200) await expectOk(res, `GET ${path}`);
  const abort = () => res.destroy();
  signal.addEventListener("abort", abort);
  try {
    res.setEncoding("utf8");
    let buffer = "";
    for await (const chunk of res as AsyncIterable<string>) {
      buffer += chunk;
      if (buffer.length > MAX_BODY) throw new Error(`GET ${path}: an event is larger than ${MAX_BODY} bytes`);
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event: ServerEvent = { event: "message", data: "" };
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue; // keep-alive comment
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event.event = value;
          else if (field === "data") data.push(value);
        }
        if (data.length === 0) continue;
        event.data = data.join("\n");
        await onEvent(event);
      }
    }
  } catch (e) {
    if (signal.aborted) return;
    throw e;
  } finally {
    signal.removeEventListener("abort", abort);
  }
}
