// Enforces a listener's AccessPolicies: DENY policies first, then ALLOW policies, then the
// default (refuse only under defaultDeny). Compiled once per configuration, checked per request,
// or per connection on a TCP port. A TCP connection has no method or path: a rule that names
// them never matches it in an ALLOW policy, and is judged on its sources alone in a DENY policy,
// so that a TCP port is never more open than its HTTP rules say (Istio's semantics).
import type { AccessRule, Authorization } from "../config/authorization.ts";
import { pathPrefixMatcher } from "../routing/router.ts";

export interface AccessRequest {
  /** The peer's SPIFFE ID from its mTLS certificate; "" for a plaintext caller. */
  principal: string;
  /** The namespace in that SPIFFE ID; "" without one. */
  namespace: string;
  /** The HTTP request; absent for a TCP connection. */
  http?: { method: string /** The request target as received (path and query). */; target: string };
}

/** null: allowed; otherwise why the request is refused (the 403's message). */
export type AccessCheck = (request: AccessRequest) => string | null;

/** `path`: the normalized path of an HTTP request; null for a TCP connection. */
type Predicate = (request: AccessRequest, path: string | null, action: "ALLOW" | "DENY") => boolean;

const UNRESERVED = /%(2[DdEe]|3[0-9]|[46][1-9A-Fa-f]|[57][0-9Aa]|5[Ff]|7[Ee])/g;

/**
 * The path a policy judges: query dropped, percent-encoded unreserved characters decoded, dot
 * segments and repeated slashes resolved, so "/a/../admin" and "/%61dmin" are judged as
 * "/admin". null for paths whose meaning depends on the app (encoded "/" or "\"): refused.
 */
export function normalizePath(target: string): string | null {
  const q = target.search(/[?#]/);
  const raw = q === -1 ? target : target.slice(0, q);
  if (/%(2f|5c)/i.test(raw) || raw.includes("\\")) return null;
  const decoded = raw.replace(UNRESERVED, (m) => String.fromCharCode(parseInt(m.slice(1), 16)));
  const out: string[] = [];
  for (const segment of decoded.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") out.pop();
    else out.push(segment);
  }
  return `/${out.join("/")}${decoded.endsWith("/") && out.length > 0 ? "/" : ""}`;
}

function principalMatcher(pattern: string): (principal: string) => boolean {
  if (pattern.endsWith("*")) {
    const prefix = pattern.slice(0, -1);
    return (p) => p !== "" && p.startsWith(prefix);
  }
  return (p) => p === pattern;
}

function compileRule(rule: AccessRule): Predicate {
  const sources = rule.from.map((s) => {
    const principals = s.principals.map(principalMatcher);
    const namespaces = new Set(s.namespaces);
    return (r: AccessRequest) =>
      (principals.length === 0 || principals.some((m) => m(r.principal))) && (namespaces.size === 0 || namespaces.has(r.namespace));
  });
  const operations = rule.to.map((o) => {
    const methods = new Set(o.methods);
    const paths = o.paths.map((p) => (p.type === "Exact" ? (path: string) => path === p.value : pathPrefixMatcher(p.value)));
    return (method: string, path: string) =>
      (methods.size === 0 || methods.has(method)) && (paths.length === 0 || paths.some((m) => m(path)));
  });
  const operationsMatch = (r: AccessRequest, path: string | null, action: "ALLOW" | "DENY") =>
    operations.length === 0 || (r.http && path !== null ? operations.some((o) => o(r.http!.method, path)) : action === "DENY");
  return (r, path, action) => (sources.length === 0 || sources.some((s) => s(r))) && operationsMatch(r, path, action);
}

export function compileAuthorization(authorization: Authorization | undefined): AccessCheck | null {
  if (!authorization || (authorization.policies.length === 0 && !authorization.defaultDeny)) return null;
  const compiled = authorization.policies.map((p) => ({ name: p.name, action: p.action, rules: p.rules.map(compileRule) }));
  const deny = compiled.filter((p) => p.action === "DENY");
  const allow = compiled.filter((p) => p.action === "ALLOW");
  const who = (r: AccessRequest) => (r.principal ? `peer ${r.principal}` : "a plaintext caller (no mesh identity)");
  return (r) => {
    const path = r.http ? normalizePath(r.http.target) : null;
    if (r.http && path === null)
      return `the path ${JSON.stringify(r.http.target.slice(0, 200))} has an encoded "/" or a "\\", which access policies refuse because the app may read it as another path`;
    const what = r.http ? `${r.http.method} ${path}` : "a TCP connection";
    for (const p of deny) if (p.rules.some((m) => m(r, path, "DENY"))) return `access policy ${p.name} denies ${who(r)} ${what}`;
    for (const p of allow) if (p.rules.some((m) => m(r, path, "ALLOW"))) return null;
    return authorization.defaultDeny ? `no access policy allows ${who(r)} ${what} (default deny)` : null;
  };
}
