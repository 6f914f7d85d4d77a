// Compiles a listener's virtual hosts into a matcher: host lookup by exact name, then the
// longest wildcard suffix, then "*"; within a host, the first route whose match holds.
import type { BackendRef, Route, RouteMatch, VirtualHost } from "../config/schema.ts";
import { headerValue } from "../http/headers.ts";

export interface RequestFacts {
  authority: string;
  method: string;
  /** Path without the query string. */
  path: string;
  /** The request target, path and query: the query is read from it only for a route that matches on it. */
  target: string;
  headers: string[];
}

type Predicate = (request: RequestFacts) => boolean;

export interface CompiledRoute {
  readonly config: Route;
  readonly name: string;
  readonly virtualHost: string;
  readonly matches: Predicate;
  /** Cumulative weights for picking a backend. */
  readonly cumulative: number[];
  readonly totalWeight: number;
}

/** Gateway API's PathPrefix: whole path segments ("/api" matches "/api" and "/api/x", not "/apix"). */
export function pathPrefixMatcher(value: string): (path: string) => boolean {
  const prefix = value.endsWith("/") ? value.slice(0, -1) : value;
  if (prefix === "") return () => true;
  return (path) => path === prefix || path.startsWith(`${prefix}/`);
}

/** A header or query parameter match as a test of the value found: equal to it, or a regular expression found in it. */
function valueTest(m: { type: "Exact" | "RegularExpression"; value: string }): (value: string) => boolean {
  if (m.type === "Exact") return (value) => value === m.value;
  const re = new RegExp(m.value);
  return (value) => re.test(value);
}

function compileMatch(match: RouteMatch): Predicate {
  const checks: Predicate[] = [];
  const path = match.path;
  if (path?.type === "Exact") checks.push((r) => r.path === path.value);
  else if (path?.type === "PathPrefix") {
    const matches = pathPrefixMatcher(path.value);
    if (path.value !== "/") checks.push((r) => matches(r.path));
  } else if (path?.type === "RegularExpression") {
    const re = new RegExp(`^(?:${path.value})$`);
    checks.push((r) => re.test(r.path));
  }
  if (match.method) {
    const method = match.method;
    checks.push((r) => r.method === method);
  }
  for (const h of match.headers) {
    const name = h.name.toLowerCase();
    const test = valueTest(h);
    checks.push((r) => {
      const value = headerValue(r.headers, name);
      return value !== undefined && test(value);
    });
  }
  if (match.queryParams.length > 0) {
    const wanted = match.queryParams.map((q) => ({ name: q.name, test: valueTest(q) }));
    checks.push((r) => {
      // URLSearchParams decodes as a browser does; get() is the first value, as Gateway API matches.
      const at = r.target.indexOf("?");
      const params = new URLSearchParams(at === -1 ? "" : r.target.slice(at + 1));
      return wanted.every((w) => {
        const value = params.get(w.name);
        return value !== null && w.test(value);
      });
    });
  }
  if (checks.length === 0) return () => true;
  if (checks.length === 1) return checks[0];
  return (r) => checks.every((c) => c(r));
}

function compileRoute(route: Route, virtualHost: string, index: number): CompiledRoute {
  const cumulative: number[] = [];
  let total = 0;
  for (const b of route.backends) cumulative.push((total += b.weight));
  return {
    config: route,
    name: route.name || `${virtualHost}/${index}`,
    virtualHost,
    matches: compileMatch(route.match),
    cumulative,
    totalWeight: total,
  };
}

export class Router {
  private readonly exact = new Map<string, CompiledRoute[]>();
  private readonly suffixes: { suffix: string; routes: CompiledRoute[] }[] = [];
  private catchAll: CompiledRoute[] | null = null;
  /** Whether any domain names port 80: only then can an authority without a port need a second lookup. */
  private readonly port80: boolean = false;

  constructor(virtualHosts: VirtualHost[]) {
    for (const vh of virtualHosts) {
      const routes = vh.routes.map((r, i) => compileRoute(r, vh.name, i));
      for (const raw of vh.domains) {
        const domain = raw.toLowerCase();
        if (domain === "*") this.catchAll ??= routes;
        else if (domain.startsWith("*.")) this.suffixes.push({ suffix: domain.slice(1), routes });
        else if (!this.exact.has(domain)) this.exact.set(domain, routes);
        if (domain.endsWith(":80")) this.port80 = true;
      }
    }
    this.suffixes.sort((a, b) => b.suffix.length - a.suffix.length);
  }

  private routesFor(authority: string): CompiledRoute[] | null {
    const hit = this.exact.get(authority);
    if (hit) return hit;
    // "catalog:8080" also matches a domain listed without the port.
    const colon = authority.lastIndexOf(":");
    const host = colon > 0 && !authority.endsWith("]") ? authority.slice(0, colon) : authority;
    if (host !== authority) {
      const byHost = this.exact.get(host);
      if (byHost) return byHost;
    } else if (this.port80) {
      // An authority without a port names HTTP's 80: "api.example.com:80" matches it, and only
      // port 80, where the bare name would match every port (an ExternalName Service's ports).
      const on80 = this.exact.get(`${authority}:80`);
      if (on80) return on80;
    }
    for (const s of this.suffixes) if (host.endsWith(s.suffix)) return s.routes;
    return this.catchAll;
  }

  match(request: RequestFacts): CompiledRoute | null {
    const routes = this.routesFor(request.authority);
    if (!routes) return null;
    for (const route of routes) if (route.matches(request)) return route;
    return null;
  }
}

/** A backend of a route by weight; `random` returns a number in [0, 1). */
export function pickBackend(route: CompiledRoute, random: () => number): BackendRef {
  const backends = route.config.backends;
  if (backends.length === 1) return backends[0]!;
  const x = random() * route.totalWeight;
  for (let i = 0; i < route.cumulative.length; i++) if (x < route.cumulative[i]!) return backends[i]!;
  return backends[backends.length - 1]!;
}
