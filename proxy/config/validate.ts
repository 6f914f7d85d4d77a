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
    if (l.tls !== "DISABLE" && !config.identity) {
      problems.push(`listeners[${i}].tls: ${l.tls} needs "identity" (certificate, key and trust bundle)`);
    }
    for (const [j, vh] of l.virtualHosts.entries()) {
      for (const [k, r] of vh.routes.entries()) {
        const at = `listeners[${i}].virtualHosts[${j}].routes[${k}]`;
        for (const [m, b] of r.backends.entries()) {
          if (!clusters.has(b.cluster)) problems.push(`${at}.backends[${m}].cluster: no cluster named "${b.cluster}"`);
        }
        if (r.mirror && !clusters.has(r.mirror.cluster)) problems.push(`${at}.mirror.cluster: no cluster named "${r.mirror.cluster}"`);
        if (r.backends.every((b) => b.weight === 0)) problems.push(`${at}.backends: every weight is 0`);
      }
    }
  }
  for (const [i, c] of config.clusters.entries()) {
    if (c.tls && !config.identity) problems.push(`clusters[${i}].tls: mTLS to "${c.name}" needs "identity"`);
  }
  const filters = new Set<string>();
  for (const [i, f] of config.filters.entries()) {
    const key = `${f.namespace}/${f.name}`;
    if (filters.has(key)) problems.push(`filters[${i}]: filter "${key}" is defined twice`);
    filters.add(key);
  }
  return problems;
}

export function parseConfig(input: unknown, source = "input"): ProxyConfig {
  const result = v.safeParse(ProxyConfig, input);
  if (!result.success) {
    throw new ConfigError(source, result.issues.map((i) => `${issuePath(i)}: ${i.message}`));
  }
  const problems = crossCheck(result.output);
  if (problems.length) throw new ConfigError(source, problems);
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
