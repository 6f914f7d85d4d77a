// A route that answers with a redirect instead of sending the request on: Gateway API's
// RequestRedirect filter (HTTPRoute), whose rules for the Location these follow. Unset parts come
// from the request; a port is left out when it is its scheme's well-known one.
import type { PathMatch, Redirect } from "../config/schema.ts";

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
  const query = request.path.indexOf("?");
  const path = query === -1 ? request.path : request.path.slice(0, query);
  const search = query === -1 ? "" : request.path.slice(query);
  const showPort = port !== undefined && port !== WELL_KNOWN_PORT[scheme];
  const bracketed = hostname.includes(":") && !hostname.startsWith("[") ? `[${hostname}]` : hostname;
  return `${scheme}://${bracketed}${showPort ? `:${port}` : ""}${redirectPath(redirect, path, matched)}${search}`;
}

function redirectPath(redirect: Redirect, path: string, matched: PathMatch | undefined): string {
  const rewrite = redirect.path;
  if (!rewrite) return path;
  if (rewrite.type === "ReplaceFullPath") return rewrite.value;
  // The configuration check makes sure a ReplacePrefixMatch route matches a PathPrefix.
  const prefix = matched?.type === "PathPrefix" ? matched.value.replace(/\/+$/, "") : "";
  const rest = path.slice(prefix.length);
  const replacement = rewrite.value.replace(/\/+$/, "");
  // "/prefix" replaced in "/prefix/a" keeps one slash between the replacement and the rest.
  const joined = `${replacement}${rest.startsWith("/") || rest === "" ? rest : `/${rest}`}`;
  return joined === "" ? "/" : joined;
}

function splitAuthority(authority: string): { host: string; port: number | undefined } {
  const match = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(authority);
  if (!match) return { host: authority, port: undefined };
  return { host: match[1]!.replace(/^\[(.*)\]$/, "$1"), port: match[2] === undefined ? undefined : Number(match[2]) };
}
