// cors: answers CORS preflight requests itself, from the configured origins, methods, headers
// and max age, and adds Access-Control-Allow-Origin (and friends) to responses for allowed
// origins. A preflight from an origin that is not allowed gets 403.
import { Continue, Header, config, request, respond, response } from "@weft/sdk";

class Settings {
  origins: Array<string> = [];
  methods: string = "";
  headers: Array<string> = [];
  expose: string = "";
  maxAge: string = "";
  credentials: bool = false;
  anyOrigin: bool = false;
}

let settings: Settings | null = null;

function current(): Settings {
  let s = settings;
  if (s === null) {
    const c = config();
    s = new Settings();
    s.origins = c.getStrings("allowOrigins");
    for (let i = 0; i < s.origins.length; i++) s.origins[i] = s.origins[i].toLowerCase();
    s.anyOrigin = s.origins.includes("*");
    s.methods = c.getStrings("allowMethods").join(", ");
    if (s.methods.length == 0) s.methods = "GET, HEAD, POST";
    s.headers = c.getStrings("allowHeaders");
    s.expose = c.getStrings("exposeHeaders").join(", ");
    const maxAge = c.get("maxAgeSeconds");
    if (maxAge !== null) s.maxAge = maxAge.raw();
    s.credentials = c.getBool("allowCredentials", false);
    settings = s;
  }
  return s;
}

function isHostChar(c: i32): bool {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x2e;
}

/** "https://*.example.com" matches "https://a.example.com" and "https://a.b.example.com", not "https://example.com". */
function matches(pattern: string, origin: string): bool {
  if (pattern == "*" || pattern == origin) return true;
  const star = pattern.indexOf("*.");
  if (star < 0) return false;
  const prefix = pattern.substring(0, star);
  const suffix = pattern.substring(star + 1);
  if (origin.length <= prefix.length + suffix.length || !origin.startsWith(prefix) || !origin.endsWith(suffix)) return false;
  for (let i = prefix.length; i < origin.length - suffix.length; i++) if (!isHostChar(origin.charCodeAt(i))) return false;
  return true;
}

function allowed(s: Settings, origin: string): bool {
  const lower = origin.toLowerCase();
  for (let i = 0; i < s.origins.length; i++) if (matches(s.origins[i], lower)) return true;
  return false;
}

// With credentials, the Fetch standard refuses "*": the origin itself is sent back.
function allowOrigin(s: Settings, origin: string): string {
  return s.anyOrigin && !s.credentials ? "*" : origin;
}

export function on_request_headers(): i32 {
  // Cheapest test first: most requests are not OPTIONS, and most OPTIONS are not preflights.
  if (request.method != "OPTIONS" || request.header("access-control-request-method") === null) return Continue;
  const origin = request.header("origin");
  if (origin === null) return Continue;
  const s = current();
  if (!allowed(s, origin)) {
    respond(403, "CORS preflight refused: origin not allowed\n", [new Header("content-type", "text/plain; charset=utf-8"), new Header("vary", "origin")]);
    return Continue;
  }
  const headers: Array<Header> = [
    new Header("access-control-allow-origin", allowOrigin(s, origin)),
    new Header("access-control-allow-methods", s.methods),
    new Header("vary", "origin"),
  ];
  // "*" in allowHeaders lets through whatever the browser asks for.
  const requestedHeaders = request.header("access-control-request-headers");
  const allowHeaders = s.headers.includes("*") ? (requestedHeaders === null ? "" : requestedHeaders) : s.headers.join(", ");
  if (allowHeaders.length > 0) headers.push(new Header("access-control-allow-headers", allowHeaders));
  if (s.maxAge.length > 0) headers.push(new Header("access-control-max-age", s.maxAge));
  if (s.credentials) headers.push(new Header("access-control-allow-credentials", "true"));
  respond(204, "", headers);
  return Continue;
}

export function on_response_headers(): i32 {
  const origin = request.header("origin");
  if (origin === null) return Continue;
  const s = current();
  if (!allowed(s, origin)) return Continue;
  response.setHeader("access-control-allow-origin", allowOrigin(s, origin));
  response.addHeader("vary", "origin");
  if (s.credentials) response.setHeader("access-control-allow-credentials", "true");
  if (s.expose.length > 0) response.setHeader("access-control-expose-headers", s.expose);
  return Continue;
}
