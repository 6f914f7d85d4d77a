// Turns untrusted input into a ProxyConfig, or an error that names every problem and where.
import * as v from "valibot";
import { ProxyConfig } from "./schema.ts";

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(source: string, problems: string[]) {
    super(`invalid proxy configuration (${source}):\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

function issuePath(issue: v.BaseIssue<unknown>): string {
  if (!issue.path?.length) return "(root)";
  return issue.path
    .map((p) => (typeof p.key === "number" ? `[${p.key}]` : `.${String(p.key)}`))
    .join("")
    .replace(/^\./, "");
}

/** Checks that hold across fields: references resolve and names are unique. */
function crossCheck(config: ProxyConfig): string[] {
  const problems: string[] = [];
  const clusters = new Set<string>();
  for (const [i, c] of config.clusters.entries()) {
    if (clusters.has(c.name)) problems.push(`clusters[${i}].name: "${c.name}" is defined twice`);
    clusters.add(c.name);
  }
  const bound = new Map<string, string>();
  for (const [i, l] of config.listeners.entries()) {
    const key = `${l.address}:${l.port}`;
    if (l.port !== 0 && bound.has(key)) problems.push(`listeners[${i}]: ${key} is also used by listener "${bound.get(key)}"`);
    bound.set(key, l.name);
    if ((l.tls === "STRICT" || l.tls === "PERMISSIVE") && !config.identity) {
      problems.push(`listeners[${i}].tls: ${l.tls} needs "identity" (certificate, key and trust bundle)`);
    }
    if (l.tls === "SIMPLE" && !l.certificates?.length)
      problems.push(
        `listeners[${i}].certificates: tls SIMPLE presents the listener's own certificates; give at least one {certificateChain, privateKey}`,
      );
    else if (l.tls !== "SIMPLE" && l.certificates)
      problems.push(
        `listeners[${i}].certificates: only a SIMPLE listener presents its own certificates (tls is ${l.tls}); set tls: SIMPLE, or remove certificates`,
      );
    if (l.tcp) {
      if (!clusters.has(l.tcp.cluster)) problems.push(`listeners[${i}].tcp.cluster: no cluster named "${l.tcp.cluster}"`);
      if (l.virtualHosts.length > 0 && l.tcp.detectHttpMs === undefined)
        problems.push(
          `listeners[${i}]: a TCP listener with virtual hosts must say how long to wait for HTTP (tcp.detectHttpMs); or remove the virtual hosts`,
        );
      else if (l.virtualHosts.length === 0 && l.tcp.detectHttpMs !== undefined)
        problems.push(
          `listeners[${i}].tcp.detectHttpMs: HTTP detected would have no virtual host to go to; add them, or remove detectHttpMs`,
        );
      if (clusters.has(l.tcp.cluster) && config.clusters.find((c) => c.name === l.tcp!.cluster)!.passthrough)
        problems.push(
          `listeners[${i}].tcp.cluster: "${l.tcp.cluster}" is a passthrough cluster, which takes its endpoint from an HTTP request`,
        );
    }
    for (const [j, vh] of l.virtualHosts.entries()) {
      for (const [k, r] of vh.routes.entries()) {
        const at = `listeners[${i}].virtualHosts[${j}].routes[${k}]`;
        for (const [m, b] of r.backends.entries()) {
          if (!clusters.has(b.cluster)) problems.push(`${at}.backends[${m}].cluster: no cluster named "${b.cluster}"`);
        }
        if (r.mirror && !clusters.has(r.mirror.cluster)) problems.push(`${at}.mirror.cluster: no cluster named "${r.mirror.cluster}"`);
        for (const [field, modifier] of [
          ["redirect", r.redirect?.path],
          ["rewrite", r.rewrite?.path],
        ] as const) {
          if (modifier?.type === "ReplacePrefixMatch" && r.match.path?.type !== "PathPrefix")
            problems.push(
              `${at}.${field}.path: ReplacePrefixMatch replaces what a PathPrefix match matched; match a PathPrefix, or use ReplaceFullPath`,
            );
        }
        if (r.redirect) {
          if (r.backends.length > 0)
            problems.push(`${at}: a route answers with its redirect or sends to its backends, not both; remove one`);
          if (r.rewrite) problems.push(`${at}: a route redirects or rewrites the request it sends on, not both; remove one`);
        } else if (r.backends.length === 0) problems.push(`${at}.backends: a route needs at least one backend, or a redirect`);
        else if (r.backends.every((b) => b.weight === 0)) problems.push(`${at}.backends: every weight is 0`);
      }
    }
  }
  for (const [i, c] of config.clusters.entries()) {
    if (c.tls && !config.identity) problems.push(`clusters[${i}].tls: mTLS to "${c.name}" needs "identity"`);
    if (c.passthrough) {
      // Its endpoint is each request's authority, reached in plain HTTP/1.1 as the app asked.
      if (c.endpoints.length > 0)
        problems.push(
          `clusters[${i}].endpoints: a passthrough cluster takes each request's authority as its endpoint; leave endpoints empty`,
        );
      if (c.tls)
        problems.push(`clusters[${i}].tls: a passthrough cluster reaches hosts outside the mesh, which have no mesh identity; remove tls`);
      if (c.protocol !== "http1") problems.push(`clusters[${i}].protocol: a passthrough cluster speaks http1 to each host`);
    } else if (c.passthroughTo) {
      problems.push(`clusters[${i}].passthroughTo: only a passthrough cluster has one; set passthrough: true, or give endpoints instead`);
    }
  }
  const filters = new Set<string>();
  for (const [i, f] of config.filters.entries()) {
    const key = `${f.namespace}/${f.name}`;
    if (filters.has(key)) problems.push(`filters[${i}]: filter "${key}" is defined twice`);
    filters.add(key);
    if (!f.module === !f.unavailable)
      problems.push(
        `filters[${i}]: give either module (what to run) or unavailable (why nothing can run, so its failStrategy applies), not ${f.module ? "both" : "neither"}`,
      );
  }
  return problems;
}

/** The longest delay setTimeout takes: past it Node, Deno and Bun fire after 1 ms instead. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Caps every duration (a field named `...Ms` or `ms`) at MAX_TIMER_MS, in place: an HTTPRoute
 * timeout of 1000h, or 1e400 in JSON (Infinity), would otherwise time out every request at
 * once. 24.8 days is as good as no limit. A filter's own config is left as it is.
 */
function capTimers(value: unknown, key = ""): void {
  if (value === null || typeof value !== "object") return;
  for (const [k, v] of Object.entries(value)) {
    const name = Array.isArray(value) ? key : k;
    if (typeof v === "number" && /(^m|M)s$/.test(name) && v > MAX_TIMER_MS) (value as Record<string, unknown>)[k] = MAX_TIMER_MS;
    else if (name !== "config") capTimers(v, name);
  }
}

export function parseConfig(input: unknown, source = "input"): ProxyConfig {
  const result = v.safeParse(ProxyConfig, input);
  if (!result.success) {
    throw new ConfigError(
      source,
      result.issues.map((i) => `${issuePath(i)}: ${i.message}`),
    );
  }
  const problems = crossCheck(result.output);
  if (problems.length) throw new ConfigError(source, problems);
  capTimers(result.output);
  return result.output;
}

export function parseConfigText(text: string, source: string): ProxyConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(source, [`not valid JSON: ${(e as Error).message}`]);
  }
  return parseConfig(raw, source);
}
