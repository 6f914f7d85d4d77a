// A weft filter in full TypeScript (docs/filter-sdk.md, "Full TypeScript filters"). It refuses
// requests under a configured path prefix with 403, and adds a header to every other request
// before it goes upstream. npm packages it imports are bundled in: npm install them here.
import { Continue, config, request, respond } from "@weft/sdk-ts";

interface Config {
  denyPathPrefix?: string;
  greeting?: string;
}

export function on_request_headers(): number {
  const { denyPathPrefix, greeting = "hello" } = config<Config>();
  if (denyPathPrefix !== undefined && request.path.startsWith(denyPathPrefix)) {
    respond(403, "forbidden\n", { "content-type": "text/plain; charset=utf-8" });
    return Continue;
  }
  request.setHeader("x-greeting", greeting);
  return Continue;
}
