// What the weft host functions do to the message of a phase call (docs/filter-abi.md), apart
// from how their arguments and results cross into the filter's memory: the proxy's imports
// and the reference host (`weft filter test --host extism`) share these.
import { FilterFault } from "./fault.ts";
import type { FilterMessage } from "./message.ts";
import { isResponsePhase } from "./message.ts";
import { checkHeader, checkHeaderName, getHeader, headerBytes, MAX_HEADER_BYTES, parseHeaderLines, serializeHeaders } from "./headers.ts";
import { removeHeader } from "../http/headers.ts";

/**
 * The header list a name refers to: `request.x` is the request's header x and `response.x`
 * the response's (response phases) in any phase; a bare name is the current phase's message.
 * Request headers cannot change once the request has been sent (response phases).
 */
function headerTarget(message: FilterMessage, fn: string, name: string, writing: boolean): { headers: string[] | null; name: string } {
  const responsePhase = isResponsePhase(message.phase);
  let side: "request" | "response" = responsePhase ? "response" : "request";
  if (name.startsWith("request.")) {
    side = "request";
    name = name.slice(8);
  } else if (name.startsWith("response.")) {
    side = "response";
    name = name.slice(9);
  }
  if (side === "request") {
    if (writing && responsePhase)
      throw new FilterFault("trap", `${fn}: request headers cannot change in a response phase (the request has been sent)`);
    return { headers: message.request.headers, name };
  }
  if (!message.response && writing) throw new FilterFault("trap", `${fn}: there is no response yet in a request phase`);
  return { headers: message.response?.headers ?? null, name };
}

/** The value weft_get returns for a name, or null. */
export function lookUp(message: FilterMessage, name: string, filterId: string): string | null {
  const request = message.request;
  switch (name) {
    case ":method":
      return request.method;
    case ":path":
      return request.path;
    case ":authority":
      return request.authority;
    case ":scheme":
      return request.scheme;
    case ":status":
      return message.response ? String(message.response.status) : null;
    case "weft.direction":
      return message.attributes.direction;
    case "weft.source.address":
      return message.attributes.sourceAddress;
    case "weft.source.principal":
      return message.attributes.sourcePrincipal || null;
    case "weft.request_id":
      return message.attributes.requestId || null;
    case "weft.filter":
      return filterId;
  }
  const { headers, name: header } = headerTarget(message, "weft_get", name, false);
  return headers ? getHeader(headers, header) : null;
}

/** weft_set (add false) and weft_add (add true). */
export function assign(message: FilterMessage, name: string, value: string, add: boolean): void {
  const responsePhase = isResponsePhase(message.phase);
  if (name.startsWith(":")) {
    if (add) throw new FilterFault("trap", `weft_add: "${name}" is a pseudo-header; use weft_set`);
    if (responsePhase) {
      if (name !== ":status" || !message.response)
        throw new FilterFault("trap", `weft_set: only :status can be set in a response phase, not "${name}"`);
      const status = Number(value);
      if (!Number.isInteger(status) || status < 200 || status > 599)
        throw new FilterFault("trap", `weft_set: ":status" must be 200-599, not "${value}"`);
      // The proxy frames the client's response by the upstream's status: one that has no body
      // (204, 304) cannot become one that has, nor the other way round, or the client would
      // read a body as the next response (or the next response as a body).
      if (BODYLESS.has(status) !== BODYLESS.has(message.response.status)) {
        throw new FilterFault(
          "trap",
          `weft_set: ":status" cannot change from ${message.response.status} to ${status}: one of them has no body (204, 304); answer with weft_respond instead`,
        );
      }
      message.response.status = status;
      return;
    }
    if (name === ":path") {
      // A request target is visible ASCII (RFC 9112 section 3.2): a character past U+007F
      // would go on the wire as a raw byte (past U+00FF truncated, possibly to CR or LF).
      if (!PATH.test(value))
        throw new FilterFault(
          "trap",
          `weft_set: ":path" must start with "/" and hold only visible ASCII (percent-encode the rest), not ${JSON.stringify(value)}`,
        );
      message.request.path = value;
    } else if (name === ":authority") {
      if (!/^[A-Za-z0-9.\-:[\]_]+$/.test(value))
        throw new FilterFault("trap", `weft_set: ":authority" must be a host[:port], not "${value}"`);
      message.request.authority = value.toLowerCase();
    } else if (name === ":method") {
      if (!/^[A-Z]+$/.test(value)) throw new FilterFault("trap", `weft_set: ":method" must be an upper-case method, not "${value}"`);
      // The response to HEAD has no body, and the client's response is framed by the method
      // the client sent: a GET sent upstream for a HEAD would put a body where none belongs.
      if ((value === "HEAD") !== (message.request.method === "HEAD")) {
        throw new FilterFault(
          "trap",
          `weft_set: ":method" cannot change from ${message.request.method} to ${value}: the response to HEAD has no body; answer with weft_respond instead`,
        );
      }
      message.request.method = value;
    } else throw new FilterFault("trap", `weft_set: "${name}" cannot be set`);
    return;
  }
  const fn = add ? "weft_add" : "weft_set";
  const { headers, name: header } = headerTarget(message, fn, name, true);
  const problem = checkHeader(header, value);
  if (problem) throw new FilterFault("trap", `${fn}: ${problem}`);
  const before = headerBytes(headers!);
  if (!add) removeHeader(headers!, header);
  headers!.push(header, value);
  // A failed call's changes are dropped (FailOpen, FailReload) or the request answered (FailClose).
  // Counting again is needed only when the addition could take the headers past the limit.
  const after = before + header.length + value.length + 4 <= MAX_HEADER_BYTES ? 0 : headerBytes(headers!);
  if (after > MAX_HEADER_BYTES && after > before)
    throw new FilterFault(
      "trap",
      `${fn}: the headers would take ${after} bytes, over the ${MAX_HEADER_BYTES} a filter may leave on a message`,
    );
}

const PATH = /^\/[\x21-\x7e]*$/;
const BODYLESS = new Set([204, 304]);

/** weft_remove. */
export function remove(message: FilterMessage, lowerName: string): void {
  if (lowerName.startsWith(":")) throw new FilterFault("trap", `weft_remove: "${lowerName}" is a pseudo-header and cannot be removed`);
  const { headers, name: header } = headerTarget(message, "weft_remove", lowerName, true);
  const problem = checkHeaderName(header);
  if (problem) throw new FilterFault("trap", `weft_remove: ${problem}`);
  removeHeader(headers!, header);
}

/** weft_headers: the current phase's headers, one `name: value` line each. */
export function headersText(message: FilterMessage): string {
  return serializeHeaders(isResponsePhase(message.phase) && message.response ? message.response.headers : message.request.headers);
}

/** weft_set_body: the body phase's new body (a copy: the caller's bytes may be reused). */
export function setBody(message: FilterMessage, body: Uint8Array): void {
  if (!message.body) throw new FilterFault("trap", "weft_set_body: only a body phase can replace the body");
  message.body = body.slice();
}

/** weft_respond: the local reply that ends the call's message (a copy of `body`). */
export function respond(message: FilterMessage, status: number, headerLines: string, body: Uint8Array): void {
  if (!Number.isInteger(status) || status < 200 || status > 599)
    throw new FilterFault("trap", `weft_respond: status ${status} is not 200-599`);
  const parsed = parseHeaderLines(headerLines);
  if (typeof parsed === "string") throw new FilterFault("trap", `weft_respond: ${parsed}`);
  const bytes = headerBytes(parsed);
  if (bytes > MAX_HEADER_BYTES)
    throw new FilterFault(
      "trap",
      `weft_respond: the headers would take ${bytes} bytes, over the ${MAX_HEADER_BYTES} a filter may leave on a message`,
    );
  message.reply = { status, headers: parsed, body: body.slice() };
}
