// A weft filter (docs/filter-sdk.md). It refuses requests under a configured path prefix with
// 403, and adds a header to every other request before it goes upstream.
import { Continue, Header, configString, request, respond } from "@weft/sdk";

export function on_request_headers(): i32 {
  const denied = configString("denyPathPrefix");
  if (denied !== null && request.path.startsWith(denied)) {
    respond(403, "forbidden\n", [new Header("content-type", "text/plain; charset=utf-8")]);
    return Continue;
  }
  const greeting = configString("greeting");
  request.setHeader("x-greeting", greeting === null ? "hello" : greeting);
  return Continue;
}
