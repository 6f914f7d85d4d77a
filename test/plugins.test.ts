// runtimes: node deno bun
// The marketplace filters (plugins/*) through a running proxy, with real HTTP clients (node:http
// and fetch) and a real upstream: jwt-auth with tokens signed by keys generated here, rate-limit
// per header and per client address (the client socket bound to 127.0.0.2, 127.0.0.3, ...),
// header-rewrite (with the caller's SPIFFE ID over real mTLS), cors preflights, ip-filter, a
// chain of three, and a config that fails a plugin's JSON Schema. Each plugin is built from its
// sources in plugins/ (sdk/build/cache.ts caches the build).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { Buffer } from "node:buffer";
import { builtFilter } from "../sdk/build/cache.ts";
import { startUpstream, type Upstream, type Received } from "./support/upstream.ts";
import { startProxy, simpleConfig, type RunningProxy } from "./support/proxy.ts";
import type { Reply } from "./support/client.ts";
import type { ProxyConfigInput } from "../proxy/config/schema.ts";
import { createCa, issueWorkload, type TestCa, type WorkloadCertificate } from "./support/pki.ts";
import { b64url, signer, nowSeconds, type Signer } from "./support/plugins-jwt.ts";

const PLUGINS = ["cors", "header-rewrite", "ip-filter", "jwt-auth", "rate-limit"] as const;
type Plugin = (typeof PLUGINS)[number];
const modules = {} as Record<Plugin, { path: string; sha256: string }>;
let upstream: Upstream;
const cleanups: (() => Promise<void>)[] = [];

before(async () => {
  for (const name of PLUGINS) {
    const built = await builtFilter(name);
    modules[name] = { path: built.path, sha256: built.sha256 };
  }
  upstream = await startUpstream("app");
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
  await upstream.close();
});

type FilterEntry = NonNullable<ProxyConfigInput["filters"]>[number];

/** A filter entry for the proxy config: the plugin's module, named after it unless `extra.name` says otherwise. */
function plugin(name: Plugin, config: unknown, extra: Partial<FilterEntry> = {}): FilterEntry {
  return { name, namespace: "test", module: modules[name], config, ...extra };
}

async function proxyWith(filters: FilterEntry[]): Promise<RunningProxy> {
  const proxy = await startProxy(simpleConfig([upstream.port], { filters }));
  cleanups.push(() => proxy.stop());
  return proxy;
}

interface Send {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  /** The client socket's local address (any of 127.0.0.0/8 on Linux), so the proxy sees another peer. */
  from?: string;
}

/** One request on a new connection (node:http), optionally from another loopback address. */
function send(port: number, options: Send = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: options.method ?? "GET",
        path: options.path ?? "/echo",
        headers: options.headers ?? {},
        agent: false,
        localAddress: options.from,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), trailers: {} }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** What the upstream saw of the request that carried `x-request-id: id`, if it saw it. */
function seenUpstream(id: string): Received | undefined {
  return upstream.received.find((r) => r.headers["x-request-id"] === id);
}

/** The upstream's /echo of a request: the request as it arrived after the filters. */
function echoed(reply: Reply): Received {
  assert.equal(reply.status, 200, `expected 200, got ${reply.status}: ${reply.body}`);
  return JSON.parse(reply.body) as Received;
}

let nextId = 0;
const tag = (what: string) => `plugins-${what}-${++nextId}`;

async function configDump(proxy: RunningProxy): Promise<{ filterStatus: { filter: string; ready: boolean; reason?: string }[] }> {
  return (await (await fetch(`http://127.0.0.1:${proxy.admin}/config_dump`)).json()) as never;
}

async function metrics(proxy: RunningProxy): Promise<string> {
  return (await fetch(`http://127.0.0.1:${proxy.admin}/metrics`)).text();
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("jwt-auth", () => {
  const ISSUER = "https://auth.weft.test";
  let rsa: Signer;
  let ec: Signer;
  let stranger: Signer;
  const claims = (extra: Record<string, unknown> = {}) => ({
    iss: ISSUER,
    aud: "orders",
    sub: "alice",
    exp: nowSeconds() + 600,
    iat: nowSeconds(),
    groups: ["admin", "dev"],
    tier: 3,
    ...extra,
  });
  const config = () => ({
    issuer: ISSUER,
    audiences: ["orders", "billing"],
    jwks: { keys: [rsa.jwk, ec.jwk] },
    claimsToHeaders: [
      { claim: "sub", header: "x-user" },
      { claim: "groups", header: "x-groups" },
      { claim: "tier", header: "x-tier" },
    ],
  });

  before(() => {
    rsa = signer("RS256", "rsa-1");
    ec = signer("ES256", "ec-1");
    // Same kid and algorithm as a configured key, but another key pair.
    stranger = signer("ES256", "ec-1");
  });

  it("accepts RS256 and ES256 tokens signed with keys made now; claims become upstream headers, forged ones and the token do not", async () => {
    const proxy = await proxyWith([plugin("jwt-auth", config(), { phase: "Authn" })]);
    for (const [s, extra] of [
      [rsa, {}],
      [ec, { aud: ["billing", "other"], sub: "bob" }],
    ] as const) {
      const id = tag("jwt-accepted");
      const reply = await send(proxy.outbound, {
        headers: { authorization: `Bearer ${s.token(claims(extra))}`, "x-user": "mallory", "x-tier": "99", "x-request-id": id },
      });
      const seen = echoed(reply);
      assert.ok(seenUpstream(id), "the upstream saw it, by its request id");
      assert.equal(seen.headers["x-user"], "sub" in extra ? extra.sub : "alice", s.alg);
      assert.equal(seen.headers["x-groups"], "admin,dev", `${s.alg}: a list claim is joined with ","`);
      assert.equal(seen.headers["x-tier"], "3", `${s.alg}: a number claim as JSON, replacing the client's own`);
      assert.equal(seen.headers.authorization, undefined, `${s.alg}: the token is not forwarded by default`);
    }
    // fetch as a client, and a lower-case "bearer" scheme.
    const viaFetch = await fetch(`http://127.0.0.1:${proxy.outbound}/echo`, {
      headers: { authorization: `bearer ${ec.token(claims({ sub: "carol" }))}` },
    });
    assert.equal(viaFetch.status, 200);
    assert.equal(((await viaFetch.json()) as Received).headers["x-user"], "carol");
    assert.match(await metrics(proxy), /weft_filter_jwt_accepted\{filter="test\/jwt-auth"\} 3/);
  });

  it("leaves out a claim that would put a line break (or any character past ASCII) into a header", async () => {
    const proxy = await proxyWith([plugin("jwt-auth", config(), { phase: "Authn" })]);
    // U+010A and U+010D become LF and CR when a header is written one byte per character.
    for (const sub of ["alice\u010a\u010dx-admin: true", "alice\r\nx-admin: true", "jos\u00e9"]) {
      const id = tag("jwt-injection");
      const reply = await send(proxy.outbound, { headers: { authorization: `Bearer ${rsa.token(claims({ sub }))}`, "x-request-id": id } });
      const seen = echoed(reply);
      assert.ok(seenUpstream(id), JSON.stringify(sub));
      assert.equal(seen.headers["x-user"], undefined, `${JSON.stringify(sub)}: not copied`);
      assert.equal(seen.headers["x-admin"], undefined, `${JSON.stringify(sub)}: no header smuggled in`);
      assert.equal(seen.headers["x-groups"], "admin,dev", "the other claims still are");
    }
  });

  it("refuses a missing token, a bad signature, an expired token, another issuer or audience with 401; the upstream never sees them", async () => {
    const proxy = await proxyWith([plugin("jwt-auth", config(), { phase: "Authn" })]);
    const good = ec.token(claims());
    const [head, , signature] = good.split(".");
    const tampered = `${head}.${b64url(JSON.stringify(claims({ sub: "root" })))}.${signature}`;
    const invalid = (description: string) => `Bearer error="invalid_token", error_description="${description}"`;
    const cases: [string, Record<string, string>, string][] = [
      ["no Authorization header", {}, "Bearer"],
      ["another scheme", { authorization: "Basic YWxpY2U6c2VjcmV0" }, "Bearer"],
      ["not a JWT", { authorization: "Bearer not.a-jwt" }, invalid("the token is not a well-formed JWT")],
      [
        "signed by another key with the same kid",
        { authorization: `Bearer ${stranger.token(claims())}` },
        invalid("the token's signature does not match any configured key"),
      ],
      [
        "payload changed after signing",
        { authorization: `Bearer ${tampered}` },
        invalid("the token's signature does not match any configured key"),
      ],
      [
        "ES256 signature in DER, not r||s",
        { authorization: `Bearer ${ec.derToken(claims())}` },
        invalid("the token's signature does not match any configured key"),
      ],
      [
        "RS256 token whose header claims ES256",
        { authorization: `Bearer ${rsa.token(claims(), { alg: "ES256", kid: "ec-1" })}` },
        invalid("the token's signature does not match any configured key"),
      ],
      [
        "alg none, unsigned",
        { authorization: `Bearer ${b64url('{"alg":"none","typ":"JWT"}')}.${b64url(JSON.stringify(claims()))}.` },
        invalid("the token's signing algorithm is not accepted"),
      ],
      [
        "expired an hour ago (past the 60 s skew)",
        { authorization: `Bearer ${rsa.token(claims({ exp: nowSeconds() - 3600 }))}` },
        invalid("the token has expired"),
      ],
      [
        "not valid for another hour",
        { authorization: `Bearer ${rsa.token(claims({ nbf: nowSeconds() + 3600 }))}` },
        invalid("the token is not valid yet"),
      ],
      [
        "another issuer",
        { authorization: `Bearer ${rsa.token(claims({ iss: "https://evil.test" }))}` },
        invalid("the token's issuer is not accepted"),
      ],
      [
        "another audience",
        { authorization: `Bearer ${ec.token(claims({ aud: ["payments"] }))}` },
        invalid("the token is not meant for this audience"),
      ],
      [
        "no audience",
        { authorization: `Bearer ${ec.token(claims({ aud: undefined }))}` },
        invalid("the token is not meant for this audience"),
      ],
    ];
    for (const [what, headers, challenge] of cases) {
      const id = tag("jwt-refused");
      const reply = await send(proxy.outbound, { headers: { ...headers, "x-request-id": id } });
      assert.equal(reply.status, 401, `${what}: ${reply.body}`);
      assert.equal(reply.headers["www-authenticate"], challenge, what);
      assert.equal(seenUpstream(id), undefined, `${what}: the upstream never saw it`);
    }
    // The same checks through fetch: a browser-like client sees the challenge too.
    const viaFetch = await fetch(`http://127.0.0.1:${proxy.outbound}/echo`, {
      headers: { authorization: `Bearer ${rsa.token(claims({ exp: nowSeconds() - 3600 }))}` },
    });
    assert.equal(viaFetch.status, 401);
    assert.equal(viaFetch.headers.get("www-authenticate"), invalid("the token has expired"));
    await viaFetch.text();
    assert.match(await metrics(proxy), new RegExp(`weft_filter_jwt_rejected\\{filter="test/jwt-auth"\\} ${cases.length + 1}`));
  });
});

describe("rate-limit", () => {
  it("keyed by a header: a burst of 3, then 429 with Retry-After and RateLimit-*; each header value has its own bucket", async () => {
    // One token per 20 s: nothing refills while the test runs.
    const proxy = await proxyWith([
      plugin("rate-limit", { requestsPerSecond: 0.05, burst: 3, keyBy: "header", header: "x-api-key" }, { phase: "Authz" }),
    ]);
    for (let i = 1; i <= 3; i++)
      assert.equal(
        (await send(proxy.outbound, { headers: { "x-api-key": "alice" } })).status,
        200,
        `alice's request ${i} is within the burst`,
      );
    const id = tag("limited");
    const limited = await send(proxy.outbound, { headers: { "x-api-key": "alice", "x-request-id": id } });
    assert.equal(limited.status, 429);
    const retryAfter = Number(limited.headers["retry-after"]);
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 20, `retry-after: ${limited.headers["retry-after"]}`);
    assert.equal(limited.headers["ratelimit-limit"], "3");
    assert.equal(limited.headers["ratelimit-remaining"], "0");
    assert.equal(limited.headers["ratelimit-reset"], String(retryAfter));
    assert.equal(limited.body, "rate limit exceeded\n");
    assert.equal(seenUpstream(id), undefined, "a limited request never reaches the upstream");
    // Another key, and a request without the header (limited by its address), have their own buckets.
    assert.equal((await send(proxy.outbound, { headers: { "x-api-key": "bob" } })).status, 200, "bob has his own bucket");
    assert.equal((await send(proxy.outbound)).status, 200, "no header: the client address's bucket");
    // Concurrent requests share alice's empty bucket: all limited.
    const burst = await Promise.all(Array.from({ length: 4 }, () => send(proxy.outbound, { headers: { "x-api-key": "alice" } })));
    assert.deepEqual(
      burst.map((r) => r.status),
      [429, 429, 429, 429],
    );
    assert.match(await metrics(proxy), /weft_filter_rate_limited\{filter="test\/rate-limit"\} 5/);
  });

  it("keyed by client IP: the client socket bound to 127.0.0.2 is limited, 127.0.0.3 and 127.0.0.1 are not (node:http localAddress)", async () => {
    const proxy = await proxyWith([plugin("rate-limit", { requestsPerSecond: 0.05, burst: 2 })]);
    assert.equal((await send(proxy.outbound, { from: "127.0.0.2" })).status, 200);
    assert.equal((await send(proxy.outbound, { from: "127.0.0.2" })).status, 200);
    const limited = await send(proxy.outbound, { from: "127.0.0.2", headers: { "x-forwarded-for": "10.9.9.9" } });
    assert.equal(limited.status, 429, "X-Forwarded-For does not give a client a new bucket");
    assert.equal(limited.headers["ratelimit-limit"], "2");
    assert.equal((await send(proxy.outbound, { from: "127.0.0.3" })).status, 200, "127.0.0.3 has its own bucket");
    assert.equal((await send(proxy.outbound, { from: "127.0.0.1" })).status, 200, "127.0.0.1 has its own bucket");
    assert.equal((await send(proxy.outbound, { from: "127.0.0.2" })).status, 429, "127.0.0.2 is still limited");
  });

  it("refills: once the bucket is empty, waiting 1/requestsPerSecond brings a token back", async () => {
    const proxy = await proxyWith([plugin("rate-limit", { requestsPerSecond: 4, burst: 1 })]);
    // Empty the bucket; at 4 tokens/s a 429 comes within a few requests however slow the machine.
    let limited: Reply | null = null;
    for (let i = 0; i < 50 && !limited; i++) {
      const reply = await send(proxy.outbound, { from: "127.0.0.4" });
      if (reply.status === 429) limited = reply;
      else assert.equal(reply.status, 200);
    }
    assert.ok(limited, "the bucket ran out");
    assert.equal(limited.headers["retry-after"], "1", "under a second to the next token is rounded up to 1");
    // 400 ms at 4/s is 1.6 tokens: at least one whatever was left.
    await sleep(400);
    assert.equal((await send(proxy.outbound, { from: "127.0.0.4" })).status, 200, "a token came back");
  });
});

describe("header-rewrite", () => {
  const rules = {
    request: {
      remove: ["x-internal-debug"],
      set: [
        { name: "x-original", value: "{{request.method}} {{request.path}}" },
        { name: "x-client-copy", value: "client={{request.header.x-client}}" },
        { name: "x-peer", value: "{{source.address}} {{direction}}" },
        { name: "x-missing", value: "{{request.header.x-absent}}" },
      ],
      add: [
        { name: "x-tag", value: "via-{{request.header.x-client}}" },
        { name: "x-nothing", value: "{{request.header.x-absent}}" },
      ],
    },
    response: {
      remove: ["x-upstream"],
      set: [
        { name: "x-status", value: "{{response.status}} {{response.header.content-type}}" },
        { name: "x-upstream-status", value: "status {{response.status}}" },
      ],
      add: [{ name: "x-served-for", value: "{{request.header.x-client}} {{request.path}}" }],
    },
  };

  it("sets, adds and removes request headers from templates; the client sees the rewritten response", async () => {
    const proxy = await proxyWith([plugin("header-rewrite", rules)]);
    const reply = await send(proxy.outbound, {
      path: "/echo/orders?page=2",
      from: "127.0.0.2",
      headers: { "x-client": "web", "x-internal-debug": "1", "x-missing": "client's own", "x-tag": "original" },
    });
    const seen = echoed(reply);
    assert.equal(seen.headers["x-original"], "GET /echo/orders?page=2");
    assert.equal(seen.headers["x-client-copy"], "client=web");
    assert.equal(seen.headers["x-peer"], "127.0.0.2 outbound");
    assert.equal(seen.headers["x-internal-debug"], undefined, "removed");
    assert.equal(seen.headers["x-missing"], undefined, "an absent source header: set removes");
    assert.equal(seen.headers["x-tag"], "original, via-web", "add appends a value");
    assert.equal(seen.headers["x-nothing"], undefined, "an absent source header: add adds nothing");
    assert.equal(reply.headers["x-upstream"], undefined, "response header removed");
    assert.equal(reply.headers["x-status"], "200 application/json");
    assert.equal(reply.headers["x-served-for"], "web /echo/orders?page=2");

    // fetch sees the same response rewrite.
    const viaFetch = await fetch(`http://127.0.0.1:${proxy.outbound}/status/404`, { headers: { "x-client": "fetch" } });
    await viaFetch.text();
    assert.equal(viaFetch.status, 404);
    assert.equal(viaFetch.headers.get("x-upstream-status"), "status 404");
    assert.equal(
      viaFetch.headers.get("x-status"),
      null,
      "this response has no content-type: a set whose variable has no value sets nothing",
    );
    assert.equal(viaFetch.headers.get("x-served-for"), "fetch /status/404");
    assert.equal(viaFetch.headers.get("x-upstream"), null);
  });

  it("an unknown variable fails the filter with the rule's path: 500 under FailClose", async () => {
    const proxy = await proxyWith([plugin("header-rewrite", { request: { set: [{ name: "x-a", value: "{{reqest.path}}" }] } })]);
    const id = tag("bad-template");
    const reply = await send(proxy.outbound, { headers: { "x-request-id": id } });
    assert.equal(reply.status, 500);
    assert.match(reply.body, /test\/header-rewrite failed: .*config\.request\.set\[0\]\.value: unknown variable \{\{reqest\.path\}\}/);
    assert.equal(seenUpstream(id), undefined);
  });

  describe("{{source.principal}} over mTLS between two sidecars", () => {
    const CLIENT_ID = "spiffe://cluster.local/ns/shop/sa/frontend";
    const SERVER_ID = "spiffe://cluster.local/ns/shop/sa/orders";
    let ca: TestCa;
    let clientCert: WorkloadCertificate;
    let serverCert: WorkloadCertificate;
    const identity = (cert: WorkloadCertificate) => ({
      certificateChain: cert.certificateChain,
      privateKey: cert.privateKey,
      trustBundle: ca.certificate,
    });

    before(async () => {
      ca = await createCa();
      clientCert = await issueWorkload(ca, { spiffeId: CLIENT_ID });
      serverCert = await issueWorkload(ca, { spiffeId: SERVER_ID });
    });

    it("the server sidecar's inbound filter sets x-caller to the caller's SPIFFE ID; a plaintext caller's own x-caller is removed", async () => {
      const server = await startProxy({
        version: "server-1",
        node: { workload: "orders", namespace: "shop", serviceAccount: "orders" },
        identity: identity(serverCert),
        listeners: [
          {
            name: "inbound",
            direction: "Inbound",
            address: "127.0.0.1",
            port: 0,
            tls: "PERMISSIVE",
            virtualHosts: [{ name: "app", domains: ["*"], routes: [{ backends: [{ cluster: "local-app" }] }] }],
          },
        ],
        clusters: [{ name: "local-app", endpoints: [{ address: "127.0.0.1", port: upstream.port }] }],
        filters: [
          plugin(
            "header-rewrite",
            {
              request: {
                set: [
                  { name: "x-caller", value: "{{source.principal}}" },
                  { name: "x-direction", value: "{{direction}}" },
                ],
              },
            },
            { match: [{ direction: "Inbound" }] },
          ),
        ],
      });
      cleanups.push(() => server.stop());
      const client = await startProxy({
        version: "client-1",
        node: { workload: "frontend", namespace: "shop", serviceAccount: "frontend" },
        identity: identity(clientCert),
        listeners: [
          {
            name: "outbound",
            direction: "Outbound",
            address: "127.0.0.1",
            port: 0,
            virtualHosts: [{ name: "orders", domains: ["*"], routes: [{ backends: [{ cluster: "orders" }] }] }],
          },
        ],
        clusters: [{ name: "orders", endpoints: [{ address: "127.0.0.1", port: server.inbound }], tls: { identities: [SERVER_ID] } }],
      });
      cleanups.push(() => client.stop());
      const seen = echoed(await send(client.outbound, { headers: { "x-caller": "spiffe://cluster.local/ns/shop/sa/admin" } }));
      assert.equal(seen.headers["x-caller"], CLIENT_ID, "mTLS: the caller's SPIFFE ID replaces the forged value");
      assert.equal(seen.headers["x-direction"], "inbound");
      // The same PERMISSIVE listener in plaintext: no peer identity, so the set removes the header.
      const plain = echoed(await send(server.inbound, { headers: { "x-caller": "spiffe://cluster.local/ns/shop/sa/admin" } }));
      assert.equal(plain.headers["x-caller"], undefined, "no mTLS peer: a set from {{source.principal}} removes the client's own value");
    });
  });
});

describe("cors", () => {
  const ALLOWED = "https://shop.example.com";
  const config = {
    allowOrigins: [ALLOWED, "https://*.shop.example.com"],
    allowMethods: ["GET", "POST", "PUT", "DELETE"],
    allowHeaders: ["authorization", "content-type"],
    exposeHeaders: ["x-request-id"],
    maxAgeSeconds: 600,
    allowCredentials: true,
  };
  const preflight = (origin: string) => ({
    origin,
    "access-control-request-method": "PUT",
    "access-control-request-headers": "authorization, content-type",
  });
  const varies = (vary: string | string[] | null | undefined) =>
    String(vary ?? "")
      .toLowerCase()
      .split(/\s*,\s*/)
      .includes("origin");

  it("answers a browser-style preflight locally (node:http and fetch) with the configured Access-Control-Allow-*", async () => {
    const proxy = await proxyWith([plugin("cors", config)]);
    const id = tag("preflight");
    const reply = await send(proxy.outbound, {
      method: "OPTIONS",
      path: "/echo/orders/7",
      headers: { ...preflight(ALLOWED), "x-request-id": id },
    });
    assert.equal(reply.status, 204);
    assert.equal(reply.body, "");
    assert.equal(reply.headers["access-control-allow-origin"], ALLOWED);
    assert.equal(reply.headers["access-control-allow-methods"], "GET, POST, PUT, DELETE");
    assert.equal(reply.headers["access-control-allow-headers"], "authorization, content-type");
    assert.equal(reply.headers["access-control-max-age"], "600");
    assert.equal(reply.headers["access-control-allow-credentials"], "true");
    assert.ok(varies(reply.headers.vary), `vary: ${reply.headers.vary}`);
    assert.equal(seenUpstream(id), undefined, "answered by the sidecar");

    const viaFetch = await fetch(`http://127.0.0.1:${proxy.outbound}/echo/orders/7`, {
      method: "OPTIONS",
      headers: preflight("https://api.shop.example.com"),
    });
    assert.equal(viaFetch.status, 204);
    assert.equal(viaFetch.headers.get("access-control-allow-origin"), "https://api.shop.example.com", "a subdomain pattern");
    assert.equal(viaFetch.headers.get("access-control-allow-headers"), "authorization, content-type");
    assert.equal(await viaFetch.text(), "");

    // An OPTIONS request that is not a preflight goes upstream.
    const plain = await send(proxy.outbound, { method: "OPTIONS", headers: { origin: ALLOWED } });
    assert.equal(echoed(plain).method, "OPTIONS");
  });

  it("an actual request from an allowed origin gets Access-Control-Allow-Origin; another origin gets none, and its preflight 403", async () => {
    const proxy = await proxyWith([plugin("cors", config)]);
    const ok = await fetch(`http://127.0.0.1:${proxy.outbound}/echo`, { headers: { origin: ALLOWED } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("access-control-allow-origin"), ALLOWED);
    assert.equal(ok.headers.get("access-control-allow-credentials"), "true");
    assert.equal(ok.headers.get("access-control-expose-headers"), "x-request-id");
    assert.ok(varies(ok.headers.get("vary")));
    assert.equal(((await ok.json()) as Received).headers.origin, ALLOWED, "the request itself goes upstream unchanged");

    const sub = await send(proxy.outbound, { method: "POST", headers: { origin: "https://a.b.shop.example.com" } });
    assert.equal(sub.headers["access-control-allow-origin"], "https://a.b.shop.example.com");

    for (const origin of [
      "https://evil.example.com",
      "https://shop.example.com.evil.test",
      "http://shop.example.com",
      "https://xshop.example.com",
    ]) {
      const other = await fetch(`http://127.0.0.1:${proxy.outbound}/echo`, { headers: { origin } });
      await other.text();
      assert.equal(other.status, 200, `${origin}: the request is served`);
      assert.equal(other.headers.get("access-control-allow-origin"), null, `${origin}: no CORS headers, so a browser blocks it`);
      assert.equal(other.headers.get("access-control-allow-credentials"), null, origin);
      const refused = await send(proxy.outbound, { method: "OPTIONS", headers: preflight(origin) });
      assert.equal(refused.status, 403, `${origin}: preflight refused`);
      assert.equal(refused.headers["access-control-allow-origin"], undefined, origin);
    }
    const noOrigin = await send(proxy.outbound);
    assert.equal(noOrigin.headers["access-control-allow-origin"], undefined, "same-origin request: no CORS headers");
  });

  it("placed ahead of jwt-auth (phase Authn, higher priority), it answers a preflight that carries no token", async () => {
    const rsa = signer("RS256", "cors");
    const proxy = await proxyWith([
      plugin("jwt-auth", { jwks: { keys: [rsa.jwk] } }, { phase: "Authn" }),
      plugin("cors", config, { phase: "Authn", priority: 100 }),
    ]);
    // Browsers send preflights without credentials.
    const pre = await fetch(`http://127.0.0.1:${proxy.outbound}/echo`, { method: "OPTIONS", headers: preflight(ALLOWED) });
    await pre.text();
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-headers"), "authorization, content-type");
    const actual = await fetch(`http://127.0.0.1:${proxy.outbound}/echo`, {
      method: "PUT",
      headers: { origin: ALLOWED, authorization: `Bearer ${rsa.token({ sub: "alice" })}` },
    });
    await actual.text();
    assert.equal(actual.status, 200);
    assert.equal(actual.headers.get("access-control-allow-origin"), ALLOWED);
    const anonymous = await fetch(`http://127.0.0.1:${proxy.outbound}/echo`, { method: "PUT", headers: { origin: ALLOWED } });
    await anonymous.text();
    assert.equal(anonymous.status, 401, "the actual request still needs a token");
  });

  it("allowOrigins * without credentials answers *", async () => {
    const proxy = await proxyWith([plugin("cors", { allowOrigins: ["*"], allowHeaders: ["*"] })]);
    const pre = await fetch(`http://127.0.0.1:${proxy.outbound}/`, {
      method: "OPTIONS",
      headers: { origin: "https://anyone.test", "access-control-request-method": "GET", "access-control-request-headers": "x-custom" },
    });
    await pre.text();
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-origin"), "*");
    assert.equal(pre.headers.get("access-control-allow-methods"), "GET, HEAD, POST", "the default methods");
    assert.equal(pre.headers.get("access-control-allow-headers"), "x-custom", "* echoes the requested headers");
    assert.equal(pre.headers.get("access-control-allow-credentials"), null);
    const actual = await fetch(`http://127.0.0.1:${proxy.outbound}/`, { headers: { origin: "https://anyone.test" } });
    await actual.text();
    assert.equal(actual.headers.get("access-control-allow-origin"), "*");
  });
});

describe("ip-filter", () => {
  it("allow and deny CIDRs against the real client address (127.0.0.1 / .2 / .3 via localAddress); 403 for denied", async () => {
    const proxy = await proxyWith([plugin("ip-filter", { allow: ["127.0.0.0/30", "::1"], deny: ["127.0.0.2"] }, { phase: "Authz" })]);
    const from = async (address: string) => {
      const id = tag("ip");
      const reply = await send(proxy.outbound, { from: address, headers: { "x-request-id": id } });
      return { reply, reached: seenUpstream(id) !== undefined };
    };
    const one = await from("127.0.0.1");
    assert.equal(one.reply.status, 200, "127.0.0.1 is in 127.0.0.0/30");
    assert.equal(one.reached, true, "the upstream sees the request id of what it is sent");
    const two = await from("127.0.0.2");
    assert.equal(two.reply.status, 403, "deny wins over allow");
    assert.equal(two.reply.body, "forbidden: the client address is denied\n");
    assert.equal(two.reached, false);
    const three = await from("127.0.0.3");
    assert.equal(three.reply.status, 200, "127.0.0.3 is in 127.0.0.0/30");
    const four = await from("127.0.0.4");
    assert.equal(four.reply.status, 403, "127.0.0.4 is outside the allow list");
    assert.equal(four.reply.body, "forbidden: the client address is not allowed\n");
    assert.equal(four.reached, false);
    // A client cannot talk its way in with X-Forwarded-For unless the filter is told to trust it.
    const spoofed = await send(proxy.outbound, { from: "127.0.0.4", headers: { "x-forwarded-for": "127.0.0.1" } });
    assert.equal(spoofed.status, 403, "X-Forwarded-For is ignored by default");
    assert.match(await metrics(proxy), /weft_filter_ip_denied\{filter="test\/ip-filter"\} 3/);
  });

  it("with xForwardedFor the first hop is the client; without the header the socket address is", async () => {
    const proxy = await proxyWith([plugin("ip-filter", { allow: ["10.0.0.0/8"], deny: ["10.66.0.0/16"], xForwardedFor: true })]);
    const status = async (headers: Record<string, string>) => (await send(proxy.outbound, { headers })).status;
    assert.equal(await status({ "x-forwarded-for": "10.1.2.3" }), 200);
    assert.equal(await status({ "x-forwarded-for": "10.1.2.3, 127.0.0.1" }), 200, "only the first hop counts");
    assert.equal(await status({ "x-forwarded-for": "192.168.1.1, 10.1.2.3" }), 403);
    assert.equal(await status({ "x-forwarded-for": "10.66.1.1" }), 403, "deny applies to the forwarded address");
    assert.equal(await status({ "x-forwarded-for": "unknown" }), 403, "a first hop that is not an IP address is refused");
    assert.equal(await status({}), 403, "no header: the socket address 127.0.0.1, not allowed");
  });
});

describe("a chain of three: jwt-auth, header-rewrite, rate-limit", () => {
  it("runs by phase, then priority; a request jwt-auth refuses takes no rate-limit token", async () => {
    const rsa = signer("RS256", "chain");
    const token = (sub: string) => rsa.token({ sub, exp: nowSeconds() + 600 });
    // Listed against their order. jwt-auth (Authn, priority 10) runs before a-rewrite (Authn,
    // priority 0; its name would win a tie), and both before rate-limit (Authz), which is keyed
    // by the x-user header that jwt-auth derives from the token.
    const proxy = await proxyWith([
      plugin("rate-limit", { requestsPerSecond: 0.05, burst: 2, keyBy: "header", header: "x-user" }, { phase: "Authz" }),
      plugin(
        "header-rewrite",
        {
          request: { set: [{ name: "x-seen-user", value: "{{request.header.x-user}}" }] },
          response: { add: [{ name: "x-chain", value: "rewritten" }] },
        },
        { name: "a-rewrite", phase: "Authn", priority: 0 },
      ),
      plugin(
        "jwt-auth",
        { jwks: { keys: [rsa.jwk] }, claimsToHeaders: [{ claim: "sub", header: "x-user" }] },
        { phase: "Authn", priority: 10 },
      ),
    ]);
    assert.deepEqual(
      (await configDump(proxy)).filterStatus.map((s) => [s.filter, s.ready]),
      [
        ["test/jwt-auth", true],
        ["test/a-rewrite", true],
        ["test/rate-limit", true],
      ],
      "/config_dump lists the chain in the order it runs",
    );
    // Refused by jwt-auth, five times, each claiming to be alice: no token of alice's is taken.
    for (let i = 0; i < 5; i++) {
      const refused = await send(proxy.outbound, { headers: { authorization: "Bearer forged.token.here", "x-user": "alice" } });
      assert.equal(refused.status, 401, `refused request ${i}`);
    }
    const first = await send(proxy.outbound, { headers: { authorization: `Bearer ${token("alice")}` } });
    const seen = echoed(first);
    assert.equal(seen.headers["x-user"], "alice");
    assert.equal(seen.headers["x-seen-user"], "alice", "a-rewrite ran after jwt-auth (priority), though its name sorts first");
    assert.equal(first.headers["x-chain"], "rewritten");
    assert.equal(
      (await send(proxy.outbound, { headers: { authorization: `Bearer ${token("alice")}` } })).status,
      200,
      "alice's second token: the 401s took none",
    );
    const limited = await send(proxy.outbound, { headers: { authorization: `Bearer ${token("alice")}` } });
    assert.equal(limited.status, 429, "alice's burst of 2 is spent");
    assert.equal(limited.headers["ratelimit-limit"], "2");
    // bob comes from the same address: only a rate-limit running after jwt-auth keys him apart.
    assert.equal(
      (await send(proxy.outbound, { headers: { authorization: `Bearer ${token("bob")}` } })).status,
      200,
      "bob has his own bucket",
    );
    // An unauthenticated request is refused by jwt-auth even with alice's bucket empty: 401, not 429.
    assert.equal((await send(proxy.outbound)).status, 401);
  });
});

describe("hostile config", () => {
  it("a config that fails the plugin's JSON Schema: reported in /config_dump, 500 on its routes, other routes served", async () => {
    const proxy = await proxyWith([
      plugin("rate-limit", { requestsPerSecond: "fast" }, { match: [{ pathPrefixes: ["/limited"] }] }),
      plugin("cors", { allowOrigins: [], allowCredentials: "yes" }, { match: [{ pathPrefixes: ["/cors"] }] }),
      plugin("jwt-auth", { issuer: "x" }, { match: [{ pathPrefixes: ["/jwt"] }], failStrategy: "FailOpen" }),
      plugin("ip-filter", { allow: ["10.0.0.0/99"] }, { match: [{ pathPrefixes: ["/ip"] }] }),
    ]);
    const status = (await configDump(proxy)).filterStatus;
    const of = (name: string) => status.find((s) => s.filter === `test/${name}`)!;
    assert.equal(of("rate-limit").ready, false);
    assert.match(of("rate-limit").reason ?? "", /config\.requestsPerSecond: expected number, got string/);
    assert.equal(of("cors").ready, false);
    assert.match(of("cors").reason ?? "", /config\.allowOrigins/);
    assert.match(of("cors").reason ?? "", /config\.allowCredentials/);
    assert.equal(of("jwt-auth").ready, false);
    assert.match(of("jwt-auth").reason ?? "", /config\.jwks: is required/);
    // "10.0.0.0/99" fits the schema's pattern; the filter itself refuses it on its first call.
    assert.equal(of("ip-filter").ready, true);

    const id = tag("hostile");
    const limited = await send(proxy.outbound, { path: "/limited/echo", headers: { "x-request-id": id } });
    assert.equal(limited.status, 500, "FailClose");
    assert.match(limited.body, /test\/rate-limit/);
    assert.match(String(limited.headers["x-weft-error"]), /test\/rate-limit.*config\.requestsPerSecond/);
    assert.equal(seenUpstream(id), undefined);
    assert.equal(
      (
        await send(proxy.outbound, {
          path: "/cors",
          method: "OPTIONS",
          headers: { origin: "https://a.test", "access-control-request-method": "GET" },
        })
      ).status,
      500,
    );
    assert.equal((await send(proxy.outbound, { path: "/jwt/echo" })).status, 200, "FailOpen: served without the filter");
    const ip = await send(proxy.outbound, { path: "/ip" });
    assert.equal(ip.status, 500);
    assert.match(ip.body, /config\.allow\[0\] "10\.0\.0\.0\/99" is not an IP address or CIDR range/);
    const other = await send(proxy.outbound, { path: "/echo" });
    assert.equal(other.status, 200, "routes the broken filters are not attached to keep working");
    assert.match(
      await metrics(proxy),
      /weft_filter_failures_total\{filter="test\/rate-limit",phase="on_request_headers",kind="unavailable"\} 1/,
    );
  });
});
