// Header lists as filters see them: case-insensitive look-up, and the checks that keep a
// filter from breaking the message framing or smuggling a second request.

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// What goes on the wire as one byte per character (RFC 9110 field-value, plus obs-text): a
// character past U+00FF would be truncated to a byte on the way out, possibly CR or LF.
const VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
// Framing and hop-by-hop fields belong to the proxy; the authority is set with ":authority".
const FORBIDDEN = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length",
  "host",
  "http2-settings",
]);

// The most header bytes a filter may leave on a message, counted as on the HTTP/1.1 wire
// ("name: value\r\n"): the proxy's default limit for a request head. Past it a filter
// could build a head that no upstream or client accepts, which would end in a reset
// connection instead of an error naming the filter.
export const MAX_HEADER_BYTES = 65536;

export function headerBytes(headers: readonly string[]): number {
  let bytes = 0;
  for (let i = 0; i < headers.length; i += 2) bytes += headers[i]!.length + headers[i + 1]!.length + 4;
  return bytes;
}

/** Several values are joined with ", " (RFC 9110 section 5.3). */
export function getHeader(headers: readonly string[], lowerName: string): string | null {
  let found: string | null = null;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name === lowerName || (name.length === lowerName.length && name.toLowerCase() === lowerName))
      found = found === null ? headers[i + 1]! : `${found}, ${headers[i + 1]}`;
  }
  return found;
}

export function serializeHeaders(headers: readonly string[]): string {
  let text = "";
  for (let i = 0; i < headers.length; i += 2) text += `${headers[i]!.toLowerCase()}: ${headers[i + 1]}\n`;
  return text;
}

/**
 * Why a filter may not set, add or remove this header, or null. Removing counts too: the
 * proxy frames a request it forwards by its Content-Length, so a request whose filter
 * removed it would go upstream with its body read as the next request.
 */
export function checkHeaderName(name: string): string | null {
  if (allowedNames.has(name)) return null;
  if (!TOKEN.test(name)) return `"${name}" is not a valid header name`;
  if (FORBIDDEN.has(name.toLowerCase()))
    return `"${name}" is managed by the proxy and cannot be set or removed by a filter${name.toLowerCase() === "host" ? ' (set ":authority")' : ""}`;
  // A filter names the same few headers on every request; a name that passed needs no second look.
  if (allowedNames.size >= ALLOWED_NAMES_KEPT) allowedNames.clear();
  allowedNames.add(name);
  return null;
}

const ALLOWED_NAMES_KEPT = 1024;
const allowedNames = new Set<string>();

/** Why a filter may not set this header to this value, or null. */
export function checkHeader(name: string, value: string): string | null {
  const problem = checkHeaderName(name);
  if (problem) return problem;
  if (!VALUE.test(value))
    return `the value of "${name}" holds a control character or one past U+00FF (${JSON.stringify(value)}): header values are visible ASCII, tab and space; percent-encode anything else`;
  return null;
}

/** Parses `name: value\n` lines into a header list, or says what is wrong. */
export function parseHeaderLines(text: string): string[] | string {
  const headers: string[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line === "\r") continue;
    const colon = line.indexOf(":");
    if (colon <= 0) return `header line "${line}" is not "name: value"`;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const problem = checkHeader(name, value);
    if (problem) return problem;
    headers.push(name, value);
  }
  return headers;
}
