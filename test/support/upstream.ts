// A real HTTP/1.1 server (node:http) to stand behind the proxy in tests. What it does is
// chosen by the request path, and every response names the server, so tests can see where
// the load balancer sent each request.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Buffer } from "node:buffer";

export interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  /** Field lines as they arrived: [name, value, name, value, ...], repeats kept. */
  rawHeaders: string[];
  body: string;
  trailers: Record<string, string>;
}

export interface Upstream {
  name: string;
  port: number;
  /** Requests seen, in order. */
  received: Received[];
  /** Distinct TCP connections accepted. */
  connections: number;
  /** When set, every request gets this status (for outlier tests). */
  failWith: number | null;
  /** When set, every request's connection is dropped without an answer. */
  resetAll: boolean;
  close(): Promise<void>;
}

/**
 * Paths: /echo (JSON of what arrived), /status/N, /delay/MS, /bytes/N, /chunked (chunked
 * body with a trailer), /reset (drops the connection), anything else: 200 "hello from NAME".
 * An Upgrade request is answered with 101 and then every byte is echoed back.
 */
export async function startUpstream(name = "upstream", port = 0, host = "127.0.0.1"): Promise<Upstream> {
  const state: Upstream = { name, port: 0, received: [], connections: 0, failWith: null, resetAll: false, close: async () => {} };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString();
      const received: Received = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body,
        trailers: { ...req.trailers } as Record<string, string>,
      };
      state.received.push(received);
      res.setHeader("x-upstream", name);
      if (state.resetAll) {
        req.socket.destroy();
        return;
      }
      if (state.failWith) {
        res.writeHead(state.failWith).end(`${name} failing\n`);
        return;
      }
      const [, kind, arg] = (req.url ?? "/").split("?")[0].split("/");
      switch (kind) {
        case "echo":
          res.setHeader("content-type", "application/json");
          res.end(JSON.stringify(received));
          return;
        case "status":
          res.writeHead(Number(arg)).end(Number(arg) === 204 || Number(arg) === 304 ? undefined : `status ${arg}\n`);
          return;
        case "delay":
          setTimeout(() => res.end(`${name} after ${arg} ms\n`), Number(arg));
          return;
        case "bytes":
          res.setHeader("content-length", String(Number(arg)));
          res.end(Buffer.alloc(Number(arg), 120));
          return;
        case "chunked":
          res.setHeader("trailer", "x-checksum");
          res.write("first,");
          setTimeout(() => {
            res.write("second");
            res.addTrailers({ "x-checksum": "abc123" });
            res.end();
          }, 5);
          return;
        case "reset":
          req.socket.destroy();
          return;
        default:
          res.end(`hello from ${name}\n`);
      }
    });
  });
  server.on("connection", () => state.connections++);
  server.on("upgrade", (req, socket, head) => {
    state.received.push({
      method: req.method ?? "",
      url: req.url ?? "",
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      body: "",
      trailers: {},
    });
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nupgrade: ${req.headers.upgrade}\r\nconnection: upgrade\r\nx-upstream: ${name}\r\n\r\n`,
    );
    if (head.length) socket.write(head);
    socket.on("data", (d) => socket.write(d));
    socket.on("end", () => socket.end());
  });
  server.keepAliveTimeout = 30000;
  await new Promise<void>((resolve) => server.listen(port, host, () => resolve()));
  state.port = (server.address() as AddressInfo).port;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    });
  return state;
}

/** A port on which nothing listens (bound, then closed). */
export async function deadPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
