// An HTTP/1.1 upstream that answers with exactly the bytes a test scripts, which no server
// library would send: bytes after a complete response, a body after HEAD or 204, a status
// of 099, an unrequested 101. It records every request as it arrived on the wire, field
// lines included, so a test can see exactly what the proxy forwarded.
import net from "node:net";
import type { AddressInfo } from "node:net";
import { Buffer } from "node:buffer";
import { readChunked } from "./chunked.ts";

export interface WireRequest {
  /** Which accepted connection it came on, from 1. */
  connection: number;
  method: string;
  target: string;
  /** Field lines as sent: [name, value] in order, names as written. */
  fields: [string, string][];
  body: string;
}

/** What to write back for a request: one string per write, `delayMs` apart. */
export interface Script {
  writes: string[];
  delayMs?: number;
}

export interface RawUpstream {
  port: number;
  received: WireRequest[];
  close(): Promise<void>;
}

/**
 * Reads requests framed by Content-Length or chunked (the only framings the proxy sends)
 * and answers each with `respond(request)`. A request it cannot frame closes the connection.
 */
export async function startRawUpstream(respond: (request: WireRequest) => Script): Promise<RawUpstream> {
  const received: WireRequest[] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((socket) => {
    const connection = ++connections;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let buf = "";
    socket.on("data", (d: Buffer) => {
      buf += d.toString("latin1");
      for (;;) {
        const parsed = takeRequest(buf);
        if (parsed === null) return;
        if (parsed === "bad") {
          socket.destroy();
          return;
        }
        buf = buf.slice(parsed.used);
        const request = { connection, ...parsed.request };
        received.push(request);
        void answer(socket, respond(request));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function answer(socket: net.Socket, script: Script): Promise<void> {
  for (const [i, write] of script.writes.entries()) {
    if (i > 0 && script.delayMs) await new Promise((r) => setTimeout(r, script.delayMs));
    if (!socket.destroyed) socket.write(Buffer.from(write, "latin1"));
  }
}

function takeRequest(buf: string): { request: Omit<WireRequest, "connection">; used: number } | null | "bad" {
  const end = buf.indexOf("\r\n\r\n");
  if (end === -1) return null;
  const [line, ...lines] = buf.slice(0, end).split("\r\n");
  const [method, target] = line.split(" ");
  const fields = lines.map((l): [string, string] => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trim()]);
  const field = (name: string) => fields.find(([n]) => n.toLowerCase() === name)?.[1];
  let at = end + 4;
  let body = "";
  if (field("transfer-encoding") === "chunked") {
    const chunked = readChunked(buf, at);
    if (chunked === null || chunked === "bad") return chunked;
    ({ body, end: at } = chunked);
  } else if (field("content-length") !== undefined) {
    const length = Number(field("content-length"));
    if (!Number.isInteger(length)) return "bad";
    if (buf.length < at + length) return null;
    body = buf.slice(at, at + length);
    at += length;
  }
  return { request: { method, target, fields, body }, used: at };
}
