// The request and the response of the current phase call. A bare name in weft_get and
// friends means the current phase's message, so the views name headers with a "request." or
// "response." prefix instead: a header is read with one host call in any phase, and a header
// change in the wrong phase is refused by the proxy (the request has been sent, or there is
// no response yet) rather than landing on the other message. The other changes, which the
// proxy would take for the current message (a body) or answer less clearly, are checked here.
import { weft_add, weft_body, weft_get, weft_headers, weft_remove, weft_set, weft_set_body } from "./abi";
import { bytesBlock, prefixedBlock, readBytes, readText, textBlock } from "./blocks";
import { Header, parseHeaderLines } from "./headers";

function get(name: string): string | null {
  return readText(weft_get(textBlock(name)));
}

function set(name: string, value: string): void {
  weft_set(textBlock(name), textBlock(value));
}

/** Response phases are the ones with a response status. */
function inResponsePhase(): bool {
  return weft_get(textBlock(":status")) != 0;
}

function requireRequestPhase(what: string): void {
  if (inResponsePhase()) throw new Error("request." + what + ": the request can only be changed in on_request_headers and on_request_body");
}

function requireResponsePhase(what: string): void {
  if (!inResponsePhase()) throw new Error("response." + what + ": there is no response in a request phase (use respond() to answer locally)");
}

export class Request {
  /** A request header (several values joined with ", "), or null. Works in every phase. */
  header(name: string): string | null {
    return readText(weft_get(prefixedBlock("request.", name)));
  }

  /** A request header as its UTF-8 bytes, without decoding it: for a long value that is only compared (a token). */
  headerBytes(name: string): Uint8Array | null {
    return readBytes(weft_get(prefixedBlock("request.", name)));
  }

  /** Every request header, in order (request phases only: the ABI lists the current message's headers). */
  headers(): Array<Header> {
    if (inResponsePhase()) throw new Error("request.headers(): the list of request headers is only available in request phases; read one with request.header(name)");
    return parseHeaderLines(readText(weft_headers()));
  }

  setHeader(name: string, value: string): void {
    weft_set(prefixedBlock("request.", name), textBlock(value));
  }

  addHeader(name: string, value: string): void {
    weft_add(prefixedBlock("request.", name), textBlock(value));
  }

  removeHeader(name: string): void {
    weft_remove(prefixedBlock("request.", name));
  }

  get method(): string {
    return get(":method")!;
  }

  set method(value: string) {
    requireRequestPhase("method");
    set(":method", value);
  }

  /** The path with its query string. */
  get path(): string {
    return get(":path")!;
  }

  set path(value: string) {
    requireRequestPhase("path");
    set(":path", value);
  }

  get authority(): string {
    return get(":authority")!;
  }

  set authority(value: string) {
    requireRequestPhase("authority");
    set(":authority", value);
  }

  get scheme(): string {
    return get(":scheme")!;
  }

  /** The whole request body as text in on_request_body; null in other phases. */
  body(): string | null {
    return inResponsePhase() ? null : readText(weft_body());
  }

  bodyBytes(): Uint8Array | null {
    return inResponsePhase() ? null : readBytes(weft_body());
  }

  /** Replaces the request body (on_request_body only). */
  setBody(text: string): void {
    requireRequestPhase("setBody");
    weft_set_body(textBlock(text));
  }

  setBodyBytes(bytes: Uint8Array): void {
    requireRequestPhase("setBodyBytes");
    weft_set_body(bytesBlock(bytes));
  }
}

export class Response {
  /** The response status, or 0 in a request phase. */
  get status(): i32 {
    const status = get(":status");
    return status === null ? 0 : I32.parseInt(status);
  }

  set status(value: i32) {
    requireResponsePhase("status");
    set(":status", value.toString());
  }

  /** A response header, or null (always null in a request phase). */
  header(name: string): string | null {
    return readText(weft_get(prefixedBlock("response.", name)));
  }

  headerBytes(name: string): Uint8Array | null {
    return readBytes(weft_get(prefixedBlock("response.", name)));
  }

  headers(): Array<Header> {
    return inResponsePhase() ? parseHeaderLines(readText(weft_headers())) : new Array<Header>();
  }

  setHeader(name: string, value: string): void {
    weft_set(prefixedBlock("response.", name), textBlock(value));
  }

  addHeader(name: string, value: string): void {
    weft_add(prefixedBlock("response.", name), textBlock(value));
  }

  removeHeader(name: string): void {
    weft_remove(prefixedBlock("response.", name));
  }

  /** The whole response body as text in on_response_body; null in other phases. */
  body(): string | null {
    return inResponsePhase() ? readText(weft_body()) : null;
  }

  bodyBytes(): Uint8Array | null {
    return inResponsePhase() ? readBytes(weft_body()) : null;
  }

  /** Replaces the response body (on_response_body only). */
  setBody(text: string): void {
    requireResponsePhase("setBody");
    weft_set_body(textBlock(text));
  }

  setBodyBytes(bytes: Uint8Array): void {
    requireResponsePhase("setBodyBytes");
    weft_set_body(bytesBlock(bytes));
  }
}

export const request = new Request();
export const response = new Response();

/**
 * A request attribute by its name without the "weft." prefix: "direction", "source.address",
 * "source.principal", "request_id", "filter". Null when absent (no mTLS peer, ...).
 */
export function attribute(name: string): string | null {
  return readText(weft_get(prefixedBlock("weft.", name)));
}
