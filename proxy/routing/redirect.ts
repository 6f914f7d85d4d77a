// A route that answers with a redirect instead of sending the request on: Gateway API's
// RequestRedirect filter (HTTPRoute), whose rules for the Location these follow. Unset parts come
// from the request; a port is left out when it is its scheme's well-known one.
import type { PathMatch, Redirect } from "../config/schema.ts";
import { modifiedTarget } from "./path-modifier.ts";

const WELL_KNOWN_PORT: Readonly<Record<string, number>> = { http: 80, https: 443 };

/** What the redirect is computed from: the request as routed. */
export interface RedirectedRequest {
  scheme: string;
  authority: string;
  /** The request target: path and query. */
  path: string;
}

/** The Location for `request` under `redirect`; `matched` is the route's path match (ReplacePrefixMatch replaces its prefix). */
export function redirectLocation(redirect: Redirect, request: RedirectedRequest, matched: PathMatch | undefined): string {
  const scheme = redirect.scheme ?? request.scheme;
  const { host, port: requestPort } = splitAuthority(request.authority);
  // Gateway API: a scheme given without a port means that scheme's port; otherwise the request's.
  const port =
    redirect.port ?? (redirect.scheme !== undefined ? WELL_KNOWN_PORT[scheme] : (requestPort ?? WELL_KNOWN_PORT[request.scheme]));
  const hostname = redirect.hostname ?? host;
  const showPort = port !== undefined && port !== WELL_KNOWN_PORT[scheme];
  const bracketed = hostname.includes(":") && !hostname.startsWith("[") ? `[${hostname}]` : hostname;
  return `${scheme}://${bracketed}${showPort ? `:${port}` : ""}${modifiedTarget(redirect.path, request.path, matched)}`;
}

function splitAuthority(authority: string): { host: string; port: number | undefined } {
  const match = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(authority);
  if (!match) return { host: authority, port: undefined };
  return { host: match[1]!.replace(/^\[(.*)\]$/, "$1"), port: match[2] === undefined ? undefined : Number(match[2]) };
}
