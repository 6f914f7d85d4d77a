// Operations on flat header lists ([name, value, name, value, ...]).
import type { HeaderModifier } from "../config/schema.ts";

// RFC 9110 section 7.6.1 plus the de-facto ones; never forwarded across a hop.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

// What frames and routes a message: a peer may not name these in Connection to have them
// dropped, or the next hop would frame or route the message differently from this one (a
// body read as the next request). They are kept; the proxy sets the framing itself anyway.
const NOT_NOMINATABLE = new Set(["content-length", "host"]);

/**
 * Copies headers without hop-by-hop fields and those named in Connection (except the ones
 * that frame or route the message). `keepUpgrade` keeps Upgrade for an upgrade request;
 * "te: trailers" is kept for gRPC.
 */
export function forwardableHeaders(headers: string[], connectionTokens: string[], keepUpgrade: boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const lower = headers[i].toLowerCase();
    if (HOP_BY_HOP.has(lower) || (connectionTokens.length > 0 && connectionTokens.includes(lower) && !NOT_NOMINATABLE.has(lower))) {
      if (keepUpgrade && lower === "upgrade") out.push(headers[i], headers[i + 1]);
      else if (lower === "te" && headers[i + 1].toLowerCase() === "trailers") out.push(headers[i], headers[i + 1]);
      continue;
    }
    out.push(headers[i], headers[i + 1]);
  }
  return out;
}

/**
 * Drops request fields whose names contain "_", as nginx does by default: CGI-style servers
 * read `Transfer_Encoding` as Transfer-Encoding and `X_Forwarded_For` as X-Forwarded-For, so
 * such a field would reach the app as a framing header or a spoof of one the proxy sets.
 */
export function dropUnderscoredNames(headers: string[]): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (headers[i].includes("_")) headers.splice(i, 2);
  }
}

/**
 * A diagnostic (x-weft-error) as a header value: line breaks become spaces and anything but
 * visible ASCII is escaped as \uXXXX, because a message may quote what a client or a filter
 * sent, and a character past U+00FF is truncated to one byte (possibly CR or LF) on the wire.
 */
export function diagnosticHeaderValue(message: string): string {
  return message.replace(/[\r\n]+/g, " ").replace(/[^\t\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export function removeHeader(headers: string[], lowerName: string): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (headers[i].length === lowerName.length && headers[i].toLowerCase() === lowerName) headers.splice(i, 2);
  }
}

export function setHeader(headers: string[], name: string, value: string): void {
  removeHeader(headers, name.toLowerCase());
  headers.push(name, value);
}

/** Applies an HTTPRoute-style header modifier in Gateway API's order: set, add, remove. */
export function applyHeaderModifier(headers: string[], modifier: HeaderModifier): void {
  for (const h of modifier.set) setHeader(headers, h.name, h.value);
  for (const h of modifier.add) headers.push(h.name, h.value);
  for (const name of modifier.remove) removeHeader(headers, name.toLowerCase());
}

/** Case-insensitive lookup of the first value of a header in a flat header list. */
export function headerValue(headers: string[], lowerName: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) return headers[i + 1];
  }
  return undefined;
}
