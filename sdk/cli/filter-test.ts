// `weft filter test`: runs a built filter against its sample requests with the proxy's own
// filter runtime (module loading and metering, instances, fail strategies, host functions,
// the chain's phase runner), then compares what the filter did with what the sample expects.
// The samples run in order against one filter, so state (counters, variables) carries over,
// as it does in a proxy.
import { Registry } from "prom-client";
import * as v from "valibot";
import { FilterConfig } from "../../proxy/config/filters.ts";
import { runPhase } from "../../proxy/filters/chain.ts";
import { checkFilterConfig } from "../../proxy/filters/config-check.ts";
import { Filter } from "../../proxy/filters/filter.ts";
import { getHeader } from "../../proxy/filters/headers.ts";
import type { FilterMessage, LocalReply } from "../../proxy/filters/message.ts";
import { FilterMetrics } from "../../proxy/filters/metrics.ts";
import { compileFilter, sha256Hex, type CompiledFilter } from "../../proxy/filters/module.ts";
import { FilterState } from "../../proxy/filters/state.ts";
import type { Logger } from "../../shared/log.ts";
import type { FilterFixture } from "./fixtures.ts";

export interface FixtureResult {
  readonly name: string;
  readonly problems: string[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function compareHeaders(
  what: string,
  headers: readonly string[],
  expected: Record<string, string | null> | undefined,
  problems: string[],
): void {
  for (const [name, value] of Object.entries(expected ?? {})) {
    const actual = getHeader(headers, name.toLowerCase());
    if (actual !== value)
      problems.push(
        `${what} header "${name}": expected ${value === null ? "none" : JSON.stringify(value)}, got ${actual === null ? "none" : JSON.stringify(actual)}`,
      );
  }
}

function describeReply(reply: LocalReply): string {
  const body = decoder.decode(reply.body).trim();
  return `${reply.status}${body ? ` "${body.length > 200 ? `${body.slice(0, 200)}…` : body}"` : ""}`;
}

/** Runs one sample the way the proxy's forwarding does: request phases, then a 200 upstream answer through the response phases. */
function runFixture(filter: Filter, fixture: FilterFixture): string[] {
  const { request, expect } = fixture;
  const headers = Object.entries(request.headers).flatMap(([n, value]) => [n.toLowerCase(), value]);
  const message: FilterMessage = {
    phase: "on_request_headers",
    request: { method: request.method, path: request.path, authority: getHeader(headers, "host") ?? "localhost", scheme: "http", headers },
    response: null,
    body: null,
    attributes: {
      direction: "inbound",
      sourceAddress: request.source?.address ?? "127.0.0.1",
      sourcePrincipal: request.source?.principal ?? "",
      requestId: `fixture-${fixture.name}`,
    },
    reply: null,
  };
  let reply = runPhase([filter], "on_request_headers", message);
  if (!reply && filter.handles("on_request_body")) {
    message.body = encoder.encode(request.body ?? "");
    reply = runPhase([filter], "on_request_body", message);
  }
  const problems: string[] = [];
  if (expect.status !== undefined) {
    if (!reply) problems.push(`expected a local reply with status ${expect.status}, but the request went on to the upstream`);
    else {
      if (reply.status !== expect.status) problems.push(`expected status ${expect.status}, got ${describeReply(reply)}`);
      compareHeaders("reply", reply.headers, expect.headers, problems);
    }
    return problems;
  }
  if (reply) return [`expected the request to go on to the upstream, but the filter answered ${describeReply(reply)}`];
  compareHeaders("upstream request", message.request.headers, expect.headers, problems);
  message.body = null;
  message.response = { status: 200, headers: ["content-type", "text/plain"] };
  let responseReply = runPhase([filter], "on_response_headers", message);
  if (!responseReply && filter.handles("on_response_body")) {
    message.body = encoder.encode("upstream body\n");
    responseReply = runPhase([filter], "on_response_body", message);
  }
  if (responseReply) problems.push(`the response phase replaced the upstream's answer with ${describeReply(responseReply)}`);
  else compareHeaders("response", message.response.headers, expect.responseHeaders, problems);
  return problems;
}

export async function testFilter(wasm: Uint8Array, fixtures: readonly FilterFixture[], log: Logger): Promise<FixtureResult[]> {
  const sha256 = sha256Hex(wasm);
  const state = new FilterState();
  const metrics = new FilterMetrics(new Registry());
  const filters = new Map<string, Filter>();
  let compiled: CompiledFilter | null = null;
  const results: FixtureResult[] = [];
  for (const fixture of fixtures) {
    const settings = fixture.config ?? {};
    const key = JSON.stringify(settings);
    let filter = filters.get(key);
    if (!filter) {
      compiled ??= await compileFilter(wasm, sha256, 16 * 16, "the filter");
      const problems = checkFilterConfig(compiled.manifest, settings);
      if (problems.length) {
        results.push({ name: fixture.name, problems: problems.map((p) => `config does not match the filter's schema: ${p}`) });
        continue;
      }
      const config = v.parse(FilterConfig, {
        name: "under-test",
        namespace: "test",
        module: { path: "(in memory)", sha256 },
        config: settings,
        limits: { callTimeoutMs: 100 },
      });
      // No quarantine: each sample shows its own fault, however many fail before it.
      filter = new Filter(config, compiled, "", { log, metrics, state, quarantine: null });
      filters.set(key, filter);
    }
    results.push({ name: fixture.name, problems: runFixture(filter, fixture) });
  }
  return results;
}
