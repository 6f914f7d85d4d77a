// The proxy's configuration (proxy/config/validate.ts) from arbitrary text: what the admin
// API's PUT /config and the control plane's push hand to parseConfigText. A configuration or
// a ConfigError; an accepted configuration is a fixed point, every timer is one setTimeout
// can wait for, and every header value a route sets is one the HTTP/1.1 wire can carry.
import { readFileSync } from "node:fs";
import { ConfigError, parseConfig, parseConfigText } from "../../../proxy/config/validate.ts";
import type { HeaderModifier, ProxyConfig } from "../../../proxy/config/schema.ts";
import { bytes, check, refusedOr, utf8, type FuzzTarget } from "../target.ts";

// Longer delays overflow the timer's 32 bits: Node, Deno and Bun then fire after 1 ms.
const MAX_TIMER_MS = 2 ** 31 - 1;
// RFC 9110 field-value characters, one byte each on the wire (latin1).
const WIRE_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** Every number in `value` with the key it is under. */
function* numbers(value: unknown, key = ""): Generator<[string, number]> {
  if (typeof value === "number") yield [key, value];
  else if (value && typeof value === "object")
    for (const [k, v] of Object.entries(value)) yield* numbers(v, Array.isArray(value) ? key : k);
}

function modifiers(config: ProxyConfig): HeaderModifier[] {
  return config.listeners.flatMap((l) =>
    l.virtualHosts.flatMap((vh) => vh.routes.flatMap((r) => [r.requestHeaders, r.responseHeaders].filter((m) => m !== undefined))),
  );
}

const isConfigError = (e: unknown) => e instanceof ConfigError && e.problems.length > 0;

export const config: FuzzTarget = {
  name: "config",
  about:
    "parseConfigText on arbitrary text: a configuration or a ConfigError; accepted ones are fixed points with finite timers setTimeout can wait for and wire-safe header values",
  sources: ["proxy/config/validate.ts", "proxy/config/schema.ts", "proxy/config/filters.ts", "proxy/config/authorization.ts"],
  maxLength: 8192,
  json: true,
  dictionary: [
    '"listeners"',
    '"clusters"',
    '"virtualHosts"',
    '"routes"',
    '"backends"',
    '"cluster"',
    '"endpoints"',
    '"filters"',
    '"identity"',
    '"limits"',
    '"tls"',
    '"STRICT"',
    '"PERMISSIVE"',
    '"timeoutMs"',
    '"retry"',
    '"attempts"',
    '"mirror"',
    '"fault"',
    '"requestHeaders"',
    '"set"',
    '"value"',
    '"name"',
    '"RegularExpression"',
    '"PathPrefix"',
    '"Exact"',
    '"ConsistentHash"',
    '"authorization"',
    '"policies"',
    '"principals"',
    '"spiffe://cluster.local/ns/a/sa/b"',
    '"sha256"',
    '"module"',
    '"memoryMiB"',
    "1e400",
    "-0",
    "2147483648",
    "4294967296",
    "9007199254740993",
    "0.5",
    "-1",
    "65536",
    "null",
    "[]",
    "{}",
    '""',
    '"\\u010d\\u010a"',
    '"\\u0000"',
    '"\\u0001"',
    '"__proto__"',
    '"constructor"',
  ],
  seeds: () => [
    readFileSync(new URL("../../../docs/examples/sidecar.json", import.meta.url)),
    bytes(
      JSON.stringify({
        listeners: [
          {
            name: "l",
            direction: "Inbound",
            port: 1,
            tls: "STRICT",
            virtualHosts: [
              {
                name: "v",
                domains: ["*"],
                routes: [
                  {
                    match: {
                      path: { type: "RegularExpression", value: "^/a+$" },
                      headers: [{ name: "x", type: "RegularExpression", value: "b" }],
                      method: "GET",
                    },
                    backends: [{ cluster: "c", weight: 0 }, { cluster: "c" }],
                    fault: { delay: { percent: 50, ms: 10 }, abort: { percent: 1, status: 503 } },
                    mirror: { cluster: "c" },
                    responseHeaders: { add: [{ name: "x-b", value: "1" }], remove: ["x-c"] },
                  },
                ],
              },
            ],
            authorization: {
              defaultDeny: true,
              policies: [
                {
                  name: "p",
                  action: "DENY",
                  rules: [
                    {
                      from: [{ principals: ["spiffe://cluster.local/ns/a/*"], namespaces: ["a"] }],
                      to: [{ methods: ["GET"], paths: [{ type: "Exact", value: "/x" }] }],
                    },
                  ],
                },
              ],
            },
          },
        ],
        clusters: [
          {
            name: "c",
            protocol: "http2",
            endpoints: [{ address: "10.0.0.1", port: 80, weight: 2, labels: { zone: "a" } }],
            loadBalancer: { policy: "ConsistentHash", header: "x-user" },
            outlierDetection: {},
            circuitBreaker: { maxRequests: 5 },
            tls: { identities: ["spiffe://cluster.local/ns/b/sa/c"] },
          },
        ],
        identity: { certificateChain: "", privateKey: "", trustBundle: "" },
        limits: { maxRequestHeadBytes: 256, headerTimeoutMs: 1 },
        filters: [
          {
            name: "f",
            module: { sha256: "0".repeat(64) },
            phase: "Authn",
            match: [{ direction: "Inbound", ports: [80], pathPrefixes: ["/"], methods: ["POST"] }],
            limits: { memoryMiB: 1, callTimeoutMs: 0.1 },
          },
        ],
      }),
    ),
  ],
  fuzz(data) {
    const parsed = refusedOr(() => parseConfigText(utf8(data), "fuzz"), isConfigError);
    if (!parsed) return;
    const again = parseConfig(JSON.parse(JSON.stringify(parsed)), "again");
    check(JSON.stringify(again) === JSON.stringify(parsed), "an accepted configuration, serialized and parsed again, differs");
    // A filter's own config is its business, passed on as JSON.
    for (const [key, n] of numbers({ ...parsed, filters: parsed.filters.map((f) => ({ ...f, config: null })) })) {
      check(Number.isFinite(n), () => `${key} is ${n}`);
      if (/Ms$|^ms$/.test(key)) check(n <= MAX_TIMER_MS, () => `${key} is ${n} ms, past what a timer can wait (${MAX_TIMER_MS})`);
    }
    for (const m of modifiers(parsed)) {
      for (const h of [...m.set, ...m.add])
        check(WIRE_VALUE.test(h.value), () => `header ${h.name} may be set to ${JSON.stringify(h.value)}, which the wire cannot carry`);
    }
  },
};
