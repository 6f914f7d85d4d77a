// `weft filter test`: runs a built filter against its sample requests with the proxy's own
// filter runtime (module loading and metering, instances, fail strategies, host functions,
// the chain's phase runner), then compares what the filter did with what the sample expects.
// With `--host extism` the same samples run under the official Extism JS host instead
// (extism-host.ts), to show the filter is an ordinary Extism plug-in. The samples run in order
// against one filter, so state (counters, variables) carries over, as it does in a proxy.
import { Registry } from "prom-client";
import * as v from "valibot";
import { FilterConfig } from "../../proxy/config/filters.ts";
import { runPhase } from "../../proxy/filters/chain.ts";
import { checkFilterConfig } from "../../proxy/filters/config-check.ts";
import { Filter } from "../../proxy/filters/filter.ts";
import { getHeader } from "../../proxy/filters/headers.ts";
import type { FilterMessage, FilterPhaseName, LocalReply } from "../../proxy/filters/message.ts";
import { FilterMetrics } from "../../proxy/filters/metrics.ts";
import { compileFilter, sha256Hex, type CompiledFilter } from "../../proxy/filters/module.ts";
import { FilterState } from "../../proxy/filters/state.ts";
import type { Logger } from "../../shared/log.ts";
import type { FilterFixture } from "./fixtures.ts";

/** Which host runs the filter: weft's own runtime, or the official Extism JS SDK (@extism/extism). */
export type FilterHost = "weft" | "extism";

/** Runs a filter's phases for the samples (weft's Filter, or the reference host's plug-in). */
export interface PhaseRunner {
  handles(phase: FilterPhaseName): boolean;
  /** Gives back what the host holds (the reference host's plug-in). */
  close?(): Promise<void>;
  /** The local reply the phase ends with (the filter's, or its failStrategy's), or null to go on. */
  run(phase: FilterPhaseName, message: FilterMessage): LocalReply | null | Promise<LocalReply | null>;
}

/** What the filter did with a sample, in full, so that two hosts' runs can be compared. */
export interface FixtureOutcome {
  /** A local reply and the phase it came from (request or response), or null. */
  readonly reply: {
    readonly phase: "request" | "response";
    readonly status: number;
    readonly headers: string[];
    readonly body: string;
  } | null;
  /** The request as it went on to the upstream (null if answered in a request phase). */
  readonly upstream: { readonly method: string; readonly path: string; readonly authority: string; readonly headers: string[] } | null;
  /** The upstream's response after the response phases (null if none ran). */
  readonly response: { readonly status: number; readonly headers: string[] } | null;
}

export interface FixtureResult {
  readonly name: string;
  readonly problems: string[];
  /** Null when the sample could not run (its config does not fit the filter's schema). */
  readonly outcome: FixtureOutcome | null;
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

function replyOutcome(phase: "request" | "response", reply: LocalReply): FixtureOutcome["reply"] {
  return { phase, status: reply.status, headers: reply.headers.slice(), body: decoder.decode(reply.body) };
}

/** Runs one sample the way the proxy's forwarding does: request phases, then a 200 upstream answer through the response phases. */
async function runFixture(filter: PhaseRunner, fixture: FilterFixture): Promise<{ problems: string[]; outcome: FixtureOutcome }> {
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
  let reply = await filter.run("on_request_headers", message);
  if (!reply && filter.handles("on_request_body")) {
    message.body = encoder.encode(request.body ?? "");
    reply = await filter.run("on_request_body", message);
  }
  const problems: string[] = [];
  if (reply) {
    const outcome: FixtureOutcome = { reply: replyOutcome("request", reply), upstream: null, response: null };
    if (expect.status === undefined)
      return { problems: [`expected the request to go on to the upstream, but the filter answered ${describeReply(reply)}`], outcome };
    if (reply.status !== expect.status) problems.push(`expected status ${expect.status}, got ${describeReply(reply)}`);
    compareHeaders("reply", reply.headers, expect.headers, problems);
    return { problems, outcome };
  }
  const { method, path, authority } = message.request;
  const upstream = { method, path, authority, headers: message.request.headers.slice() };
  if (expect.status !== undefined)
    return {
      problems: [`expected a local reply with status ${expect.status}, but the request went on to the upstream`],
      outcome: { reply: null, upstream, response: null },
    };
  compareHeaders("upstream request", message.request.headers, expect.headers, problems);
  message.body = null;
  message.response = { status: 200, headers: ["content-type", "text/plain"] };
  let responseReply = await filter.run("on_response_headers", message);
  if (!responseReply && filter.handles("on_response_body")) {
    message.body = encoder.encode("upstream body\n");
    responseReply = await filter.run("on_response_body", message);
  }
  if (responseReply) {
    problems.push(`the response phase replaced the upstream's answer with ${describeReply(responseReply)}`);
    return { problems, outcome: { reply: replyOutcome("response", responseReply), upstream, response: null } };
  }
  compareHeaders("response", message.response.headers, expect.responseHeaders, problems);
  return {
    problems,
    outcome: { reply: null, upstream, response: { status: message.response.status, headers: message.response.headers.slice() } },
  };
}

/** What a host needs to run the filter for one sample config. */
export interface RunnerContext {
  readonly wasm: Uint8Array;
  readonly compiled: CompiledFilter;
  readonly config: FilterConfig;
  readonly log: Logger;
  readonly metrics: FilterMetrics;
  /** Counters and variables, shared by the sample configs' filters as by a filter's instances in a proxy. */
  readonly state: FilterState;
}

async function weftRunner({ compiled, config, log, metrics, state }: RunnerContext): Promise<PhaseRunner> {
  // No quarantine: each sample shows its own fault, however many fail before it.
  const filter = new Filter(config, compiled, "", { log, metrics, state, quarantine: null });
  return { handles: (phase) => filter.handles(phase), run: (phase, message) => runPhase([filter], phase, message) };
}

export async function testFilter(
  wasm: Uint8Array,
  fixtures: readonly FilterFixture[],
  log: Logger,
  host: FilterHost = "weft",
): Promise<FixtureResult[]> {
  const sha256 = sha256Hex(wasm);
  const state = new FilterState();
  const metrics = new FilterMetrics(new Registry());
  // Loaded only when asked for: `weft filter test` on weft's host never loads the Extism SDK.
  const makeRunner = host === "weft" ? weftRunner : (await import("./extism-host.ts")).extismRunner;
  const runners = new Map<string, PhaseRunner>();
  let compiled: CompiledFilter | null = null;
  const results: FixtureResult[] = [];
  try {
    for (const fixture of fixtures) {
      const settings = fixture.config ?? {};
      const key = JSON.stringify(settings);
      let runner = runners.get(key);
      if (!runner) {
        // Both hosts load the module as the proxy does first (its manifest, the ABI's checks); the
        // reference host then runs the module's own bytes, unmetered.
        compiled ??= await compileFilter(wasm, sha256, 16 * 16, "the filter");
        const problems = checkFilterConfig(compiled.manifest, settings);
        if (problems.length) {
          results.push({
            name: fixture.name,
            problems: problems.map((p) => `config does not match the filter's schema: ${p}`),
            outcome: null,
          });
          continue;
        }
        const config = v.parse(FilterConfig, {
          name: "under-test",
          namespace: "test",
          module: { path: "(in memory)", sha256 },
          config: settings,
          limits: { callTimeoutMs: 100 },
        });
        runner = await makeRunner({ wasm, compiled, config, log, metrics, state });
        runners.set(key, runner);
      }
      const { problems, outcome } = await runFixture(runner, fixture);
      results.push({ name: fixture.name, problems, outcome });
    }
  } finally {
    for (const runner of runners.values()) await runner.close?.();
  }
  return results;
}
