// Gateway API HTTPRoutes attached to Services (the GAMMA mesh pattern), as the mesh model
// keeps them. Only Service parents and Service backends are the mesh's; anything else in
// the route is for a Gateway and is left out. The API server's schema has already checked
// the route, so this reads it without checking it again.
import type { HeaderModifier, PathModifier, RedirectInput, RewriteInput } from "../../proxy/config/schema.ts";
import type { HttpRouteInfo, RouteBackend, RouteRule } from "../mesh/world.ts";

interface Ref {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
  port?: number;
  sectionName?: string;
  weight?: number;
}

/** A parentRef as the route wrote it: status.parents[].parentRef must repeat it (route-status.ts). */
export type ParentRef = Omit<Ref, "weight">;

/**
 * The model's route plus what its status needs and the model does not: the generation (for
 * observedGeneration) and each Service parentRef as written, in the order of `parents`.
 */
export interface HttpRouteSeen extends HttpRouteInfo {
  generation: number;
  parentRefs: ParentRef[];
}

/** The generation and parentRefs of a route read from the API server; a local-mode route has neither. */
export function seenOf(route: HttpRouteInfo): { generation: number; parentRefs: ParentRef[] } {
  const seen = route as Partial<HttpRouteSeen>;
  return {
    generation: seen.generation ?? 0,
    parentRefs:
      seen.parentRefs ??
      route.parents.map((p) => ({
        group: "",
        kind: "Service",
        namespace: p.namespace,
        name: p.name,
        ...(p.port !== undefined ? { port: p.port } : {}),
      })),
  };
}

interface Filter {
  type: string;
  requestHeaderModifier?: Partial<HeaderModifier>;
  responseHeaderModifier?: Partial<HeaderModifier>;
  requestRedirect?: {
    scheme?: string;
    hostname?: string;
    port?: number;
    path?: GatewayPathModifier;
    statusCode?: number;
  };
  urlRewrite?: { hostname?: string; path?: GatewayPathModifier };
  requestMirror?: { backendRef?: Ref; percent?: number; fraction?: { numerator: number; denominator?: number } };
}

interface GatewayPathModifier {
  type?: string;
  replaceFullPath?: string;
  replacePrefixMatch?: string;
}

// The filters weft carries out; any other (ExtensionRef, CORS, ExternalAuth, ...) makes its rule
// answer 500 rather than be skipped, as the Gateway API asks of a filter that cannot be applied.
const IMPLEMENTED_FILTERS = new Set(["RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite", "RequestMirror"]);

interface HttpRoute {
  metadata?: { namespace?: string; name?: string; generation?: number; creationTimestamp?: unknown };
  spec?: {
    parentRefs?: Ref[];
    rules?: {
      matches?: {
        path?: { type?: string; value?: string };
        headers?: { type?: string; name: string; value: string }[];
        queryParams?: { type?: string; name: string; value: string }[];
        method?: string;
      }[];
      backendRefs?: (Ref & { filters?: Filter[] })[];
      filters?: Filter[];
      timeouts?: { request?: string };
    }[];
  };
}

const isService = (r: Ref) => (r.group ?? "") === "" && (r.kind ?? "Service") === "Service";

/** Gateway API durations: 1h, 30m, 10s, 500ms and sums of them such as 1m30s. */
export function durationMs(text: string): number {
  let total = 0;
  for (const [, n, unit] of text.matchAll(/(\d+)(h|ms|m|s)/g))
    total += Number(n) * { h: 3_600_000, m: 60_000, s: 1000, ms: 1 }[unit as "h" | "m" | "s" | "ms"];
  return total;
}

/**
 * A RequestRedirect filter as the proxy's route redirect (proxy/routing/redirect.ts). The API
 * server's CRD validation has checked its fields; the proxy's configuration check refuses what
 * it cannot do (a prefix replaced without a PathPrefix match).
 */
function redirectOf(r: NonNullable<Filter["requestRedirect"]>): RedirectInput {
  const path = pathModifierOf(r.path);
  return {
    ...(r.scheme === "http" || r.scheme === "https" ? { scheme: r.scheme } : {}),
    ...(r.hostname ? { hostname: r.hostname } : {}),
    ...(r.port !== undefined ? { port: r.port } : {}),
    ...(path ? { path } : {}),
    ...(r.statusCode !== undefined ? { statusCode: r.statusCode as RedirectInput["statusCode"] } : {}),
  };
}

function pathModifierOf(path: GatewayPathModifier | undefined): PathModifier | undefined {
  if (path?.type === "ReplaceFullPath") return { type: "ReplaceFullPath", value: path.replaceFullPath ?? "/" };
  if (path?.type === "ReplacePrefixMatch") return { type: "ReplacePrefixMatch", value: path.replacePrefixMatch ?? "/" };
  return undefined;
}

function rewriteOf(r: NonNullable<Filter["urlRewrite"]>): RewriteInput {
  const path = pathModifierOf(r.path);
  return { ...(r.hostname ? { hostname: r.hostname } : {}), ...(path ? { path } : {}) };
}

/** The share of requests a RequestMirror copies, in percent: `percent`, else `fraction`, else all. */
function mirrorPercent(m: NonNullable<Filter["requestMirror"]>): number {
  if (m.percent !== undefined) return m.percent;
  if (m.fraction) return (100 * m.fraction.numerator) / (m.fraction.denominator ?? 100);
  return 100;
}

/** A backendRef as the rule's backend; `kind` is kept when it is not a Service, which nothing resolves. */
// The filters a backendRef may carry that weft applies to that backend's share.
const BACKEND_FILTERS = new Set(["RequestHeaderModifier", "ResponseHeaderModifier"]);

/** A backendRef as the rule's backend, with its header modifiers; `kind` is kept when it is not a Service, which nothing resolves. */
const backendOf = (b: Ref & { filters?: Filter[] }, namespace: string): RouteBackend => {
  const request = b.filters?.find((f) => f.type === "RequestHeaderModifier")?.requestHeaderModifier;
  const response = b.filters?.find((f) => f.type === "ResponseHeaderModifier")?.responseHeaderModifier;
  return {
    namespace: b.namespace ?? namespace,
    name: b.name,
    port: b.port ?? 80,
    weight: b.weight ?? 1,
    ...(isService(b) ? {} : { kind: `${b.group ?? ""}/${b.kind ?? "Service"}` }),
    ...(request ? { requestHeaders: modifier(request)! } : {}),
    ...(response ? { responseHeaders: modifier(response)! } : {}),
  };
};

/** A header or query parameter match; Exact unless the type says otherwise. */
const valueMatch = (m: { type?: string; name: string; value: string }) => ({
  name: m.name,
  type: (m.type ?? "Exact") as "Exact" | "RegularExpression",
  value: m.value,
});

function modifier(m: Partial<HeaderModifier> | undefined): HeaderModifier | undefined {
  if (!m) return undefined;
  return { set: m.set ?? [], add: m.add ?? [], remove: m.remove ?? [] };
}

export function httpRouteInfo(route: HttpRoute): HttpRouteSeen | null {
  const namespace = route.metadata?.namespace ?? "default";
  const parentRefs: ParentRef[] = (route.spec?.parentRefs ?? []).filter(isService).map(({ weight: _, ...ref }) => ref);
  const parents = parentRefs.map((p) => ({
    namespace: p.namespace ?? namespace,
    name: p.name,
    ...(p.port !== undefined ? { port: p.port } : {}),
  }));
  if (parents.length === 0) return null;
  const rules: RouteRule[] = (route.spec?.rules ?? []).map((rule) => {
    const request = rule.filters?.find((f) => f.type === "RequestHeaderModifier")?.requestHeaderModifier;
    const response = rule.filters?.find((f) => f.type === "ResponseHeaderModifier")?.responseHeaderModifier;
    const redirect = rule.filters?.find((f) => f.type === "RequestRedirect")?.requestRedirect;
    const rewrite = rule.filters?.find((f) => f.type === "URLRewrite")?.urlRewrite;
    const mirror = rule.filters?.find((f) => f.type === "RequestMirror")?.requestMirror;
    const unsupported = [
      ...(rule.filters ?? []).filter((f) => !IMPLEMENTED_FILTERS.has(f.type)).map((f) => `filter ${f.type}`),
      ...(rule.backendRefs ?? []).flatMap((b, j) =>
        (b.filters ?? []).filter((f) => !BACKEND_FILTERS.has(f.type)).map((f) => `backendRefs[${j}] filter ${f.type}`),
      ),
    ];
    const timeout = rule.timeouts?.request;
    return {
      matches: (rule.matches?.length ? rule.matches : [{}]).map((m) => ({
        ...(m.path
          ? { path: { type: (m.path.type ?? "PathPrefix") as "Exact" | "PathPrefix" | "RegularExpression", value: m.path.value ?? "/" } }
          : {}),
        headers: (m.headers ?? []).map(valueMatch),
        queryParams: (m.queryParams ?? []).map(valueMatch),
        ...(m.method ? { method: m.method } : {}),
      })),
      backends: (rule.backendRefs ?? []).map((b) => backendOf(b, namespace)),
      ...(request ? { requestHeaders: modifier(request)! } : {}),
      ...(response ? { responseHeaders: modifier(response)! } : {}),
      ...(redirect ? { redirect: redirectOf(redirect) } : {}),
      ...(rewrite ? { rewrite: rewriteOf(rewrite) } : {}),
      ...(mirror?.backendRef ? { mirror: { backend: backendOf(mirror.backendRef, namespace), percent: mirrorPercent(mirror) } } : {}),
      ...(unsupported.length > 0 ? { unsupported } : {}),
      ...(timeout !== undefined ? { timeoutMs: durationMs(timeout) } : {}),
    };
  });
  const created = route.metadata?.creationTimestamp;
  return {
    namespace,
    name: route.metadata?.name ?? "",
    ...(typeof created === "string" ? { createdAt: created } : {}),
    parents,
    rules,
    generation: route.metadata?.generation ?? 0,
    parentRefs,
  };
}
