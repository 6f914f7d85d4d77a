// Serializes HTTP/1.1 heads. Heads are built as one latin1 string and written once.
import { Buffer } from "node:buffer";

const REASONS: Record<number, string> = {
  100: "Continue",
  101: "Switching Protocols",
  200: "OK",
  201: "Created",
  204: "No Content",
  301: "Moved Permanently",
  302: "Found",
  304: "Not Modified",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  413: "Content Too Large",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? "Unknown";
}

function appendHeaders(text: string, headers: string[]): string {
  for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${text}\r\n`;
}

export function encodeRequestHead(method: string, target: string, headers: string[]): Buffer {
  return Buffer.from(appendHeaders(`${method} ${target} HTTP/1.1\r\n`, headers), "latin1");
}

export function encodeResponseHead(status: number, reason: string, headers: string[]): Buffer {
  return Buffer.from(appendHeaders(`HTTP/1.1 ${status} ${reason || reasonPhrase(status)}\r\n`, headers), "latin1");
}
