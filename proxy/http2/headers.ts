// Converts between the proxy's flat header lists and node:http2 header objects.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http2";

// Connection-specific fields are forbidden in HTTP/2 (RFC 9113 section 8.2.2).
const CONNECTION_SPECIFIC = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"]);

/** Regular fields of an HTTP/2 header block as [name, value, ...]; pseudo-headers are left out. */
export function flatten(headers: IncomingHttpHeaders): string[] {
  const out: string[] = [];
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* : */) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, String(value));
  }
  return out;
}

/** An outgoing header object from a flat list (after `pseudo`); names lower-cased, repeated ones kept. */
export function toHttp2(headers: string[], pseudo: OutgoingHttpHeaders = {}): OutgoingHttpHeaders {
  // No prototype: a field named "constructor" or "__proto__" is then a field like any other,
  // not an inherited property to append to or a prototype to set.
  const into: OutgoingHttpHeaders = Object.assign(Object.create(null), pseudo);
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i].toLowerCase();
    if (CONNECTION_SPECIFIC.has(name)) continue;
    if (name === "te" && headers[i + 1].toLowerCase() !== "trailers") continue;
    const existing = into[name];
    if (existing === undefined) into[name] = headers[i + 1];
    else if (Array.isArray(existing)) existing.push(headers[i + 1]);
    else into[name] = [String(existing), headers[i + 1]];
  }
  return into;
}
