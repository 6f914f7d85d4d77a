// A real HTTP/1.1 client (node:http) for tests.
import http from "node:http";
import { Buffer } from "node:buffer";

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  trailers: Record<string, string>;
}

export interface RequestOptions {
  method?: string;
  path?: string;
  host?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Send the body with chunked framing (no Content-Length). */
  chunked?: boolean;
  agent?: http.Agent | false;
  /** Give up a connection silent for this long (default: wait). */
  timeoutMs?: number;
}

export function request(port: number, options: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.host) headers.host = options.host;
    if (options.body !== undefined && !options.chunked) headers["content-length"] = String(Buffer.byteLength(options.body));
    const req = http.request(
      { host: "127.0.0.1", port, method: options.method ?? "GET", path: options.path ?? "/", headers, agent: options.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
            trailers: { ...res.trailers } as Record<string, string>,
          }),
        );
        res.on("error", reject);
      },
    );
    if (options.timeoutMs !== undefined) {
      const ms = options.timeoutMs;
      req.setTimeout(ms, () =>
        req.destroy(new Error(`${options.host ?? "127.0.0.1"}:${port}${options.path ?? "/"}: no answer in ${ms} ms`)),
      );
    }
    req.on("error", reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/** Sends exactly these bytes on a new connection and returns everything the peer sent back. */
export async function rawExchange(port: number, bytes: string, waitMs = 300): Promise<string> {
  const net = await import("node:net");
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let out = "";
    socket.on("data", (d) => (out += d.toString("latin1")));
    socket.on("error", reject);
    socket.on("close", () => resolve(out));
    socket.on("connect", () => {
      socket.write(bytes);
      setTimeout(() => socket.end(), waitMs);
    });
  });
}
