// Runtime adapter on node:net. Deno and Bun implement node:net too, so this adapter is
// the portable baseline; a runtime gets its own adapter where its native API is measured
// to be faster (see docs/runtimes.md).
import net from "node:net";
import http from "node:http";
import { Buffer } from "node:buffer";
import type { Conn, ConnectOptions, FetchHandler, ListenOptions, Runtime, Server, TlsInfo } from "./types.ts";
import { listenTls, connectTls } from "./node-tls.ts";
import { currentRuntime } from "./current.ts";

const noop = () => {};
const BUN = currentRuntime().name === "bun";

/**
 * Adapts a node:net (or node:tls) socket to the callback-shaped Conn. A socket made with
 * allowHalfOpen (a TLS socket inherits it from the raw one) leaves ending our side after the
 * peer's to us: done once onEnd has run, unless conn.halfOpen.
 */
export function wrapSocket(socket: net.Socket, tls: TlsInfo | null): Conn {
  socket.setNoDelay(true);
  let failure: Error | undefined;
  const onData = (chunk: Buffer) => conn.onData(chunk);
  const onEnd = () => {
    conn.onEnd();
    if (socket.allowHalfOpen === true && !conn.halfOpen) socket.end();
  };
  const onDrain = () => conn.onDrain();
  const onError = (e: Error) => {
    failure = e;
  };
  const onClose = () => conn.onClose(failure);
  // biome-ignore lint/suspicious/noExplicitAny: EventEmitter takes listeners of any arguments; each of these knows its own event.
  const listeners: [string, (...args: any[]) => void][] = [
    ["data", onData],
    ["end", onEnd],
    ["drain", onDrain],
    ["error", onError],
    ["close", onClose],
  ];
  const conn: Conn = {
    onData: noop,
    onEnd: noop,
    onClose: noop,
    onDrain: noop,
    halfOpen: false,
    write: (chunk) => socket.write(chunk),
    end: () => socket.end(),
    destroy: () => socket.destroy(),
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    remoteAddress: socket.remoteAddress ?? "",
    remotePort: socket.remotePort ?? 0,
    localPort: socket.localPort ?? 0,
    tls,
    get closed() {
      return socket.destroyed;
    },
    handOver: (take, leftover) => {
      // Paused, so that nothing is emitted to no one before the new owner reads.
      socket.pause();
      for (const [event, listener] of listeners) socket.off(event, listener);
      // node:http2 expects the socket to end itself once the peer's has.
      socket.allowHalfOpen = false;
      if (!BUN) {
        // Node's and Deno's node:http2 take bytes already read from the socket's buffer.
        if (leftover?.length) socket.unshift(leftover);
        take(socket);
        return;
      }
      // Bun's reads "data" events and drops an unshifted buffer (docs/design/http2.md).
      take(socket);
      if (leftover?.length) socket.emit("data", leftover);
      socket.resume();
    },
  };
  for (const [event, listener] of listeners) socket.on(event, listener);
  return conn;
}

function serverOf(server: net.Server, extra?: Pick<Server, "updateTls">): Server {
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : 0,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    ...extra,
  };
}

export function listening(server: net.Server, options: ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.address, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

export const nodeRuntime: Runtime = {
  name: "node",

  async listen(options, onConnection) {
    if (options.tls) return listenTls(options, options.tls, onConnection);
    // Half-open, so that a connection carried as opaque TCP can stay so (Conn.halfOpen).
    const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => onConnection(wrapSocket(socket, null)));
    await listening(server, options);
    return serverOf(server);
  },

  connect(options: ConnectOptions): Promise<Conn> {
    if (options.tls) return connectTls(options, options.tls);
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: options.address, port: options.port, noDelay: true, allowHalfOpen: options.halfOpen === true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect timeout after ${options.timeoutMs} ms`));
      }, options.timeoutMs);
      socket.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.removeAllListeners("error");
        resolve(wrapSocket(socket, null));
      });
    });
  },

  async serveHttp(options, handler: FetchHandler) {
    const server = http.createServer(async (req, res) => {
      try {
        const chunks: Buffer[] = [];
        for await (const chunk of req) chunks.push(chunk as Buffer);
        const body = req.method === "GET" || req.method === "HEAD" ? undefined : Buffer.concat(chunks);
        const headers = new Headers();
        for (const [name, value] of Object.entries(req.headers)) if (typeof value === "string") headers.set(name, value);
        const response = await handler(
          new Request(`http://${req.headers.host ?? "localhost"}${req.url}`, { method: req.method, headers, body }),
          { address: req.socket.remoteAddress ?? "" },
        );
        res.writeHead(response.status, Object.fromEntries(response.headers));
        res.end(Buffer.from(await response.arrayBuffer()));
      } catch (e) {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end(`admin handler failed: ${(e as Error).message}\n`);
      }
    });
    await listening(server, options);
    return serverOf(server);
  },
};
