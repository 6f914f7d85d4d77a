// runtimes: node deno bun
// Local replies through a real proxy's filters (docs/filter-abi.md#local-replies-and-response-phases):
// a filter's reply (or its failStrategy's) passes the response phases of the filters before it
// in the chain, the proxy's own replies after the filters stage pass every attached filter's,
// and the access check's refusal, made before any filter runs, passes none.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startUpstream, type Upstream } from "./support/upstream.ts";
import { startProxy, type RunningProxy } from "./support/proxy.ts";
import type { ProxyConfigInput } from "../proxy/config/schema.ts";
import { request } from "./support/client.ts";
import { compileAssemblyScript } from "./support/asc.ts";

const fixtures = join(dirname(fileURLToPath(import.meta.url)), "fixtures", "filters");
type Built = { path: string; sha256: string };
type FilterInput = NonNullable<ProxyConfigInput["filters"]>[number];

describe("local replies and the filters' response phases", () => {
  let upstream: Upstream;
  let proxy: RunningProxy;
  const built: Record<string, Built> = {};

  const filter = (name: string, module: Built, extra: Partial<FilterInput> = {}): FilterInput => ({
    name,
    namespace: "test",
    module: { path: module.path, sha256: module.sha256 },
    ...extra,
  });
  const prefix = (value: string) => ({ path: { type: "PathPrefix", value } });

  before(async () => {
    for (const name of ["reply-phases", "basic", "body"]) built[name] = await compileAssemblyScript(join(fixtures, `${name}.ts`));
    upstream = await startUpstream("app");
    const outbound = (extra: { pathPrefixes?: string[] }) => ({ direction: "Outbound" as const, ...extra });
    proxy = await startProxy({
      version: "local-replies",
      node: { workload: "client", namespace: "test" },
      listeners: [
        {
          name: "outbound",
          direction: "Outbound",
          address: "127.0.0.1",
          port: 0,
          virtualHosts: [
            {
              name: "all",
              domains: ["*"],
              routes: [
                { name: "echo", match: prefix("/echo"), backends: [{ cluster: "app" }] },
                { name: "private", match: prefix("/private"), backends: [{ cluster: "app" }] },
                { name: "trap", match: prefix("/trap"), backends: [{ cluster: "app" }] },
                { name: "gone", match: prefix("/gone"), backends: [{ cluster: "empty" }] },
                { name: "slow", match: prefix("/delay"), backends: [{ cluster: "app" }], timeoutMs: 100 },
              ],
            },
          ],
        },
        {
          name: "inbound",
          direction: "Inbound",
          address: "127.0.0.1",
          port: 0,
          authorization: {
            policies: [
              {
                name: "shop/no-admin",
                action: "DENY",
                rules: [{ to: [{ methods: [], paths: [{ type: "PathPrefix", value: "/admin" }] }] }],
              },
            ],
          },
          virtualHosts: [{ name: "app", domains: ["*"], routes: [{ backends: [{ cluster: "app" }] }] }],
        },
      ],
      clusters: [
        { name: "app", endpoints: [{ address: "127.0.0.1", port: upstream.port }] },
        { name: "empty", endpoints: [] },
      ],
      // Outbound chain: cors, auth, fragile (on /trap), late, shout (on /nowhere). Inbound: opener alone.
      filters: [
        filter("cors", built["reply-phases"]!, { priority: 10, config: { allowOrigin: "*" }, match: [outbound({})] }),
        filter("auth", built["reply-phases"]!, { priority: 5, config: { deny: "/private" }, match: [outbound({})] }),
        filter("fragile", built.basic!, { priority: 1, match: [outbound({ pathPrefixes: ["/trap"] })] }),
        filter("late", built["reply-phases"]!, { match: [outbound({})] }),
        filter("shout", built.body!, { match: [outbound({ pathPrefixes: ["/nowhere"] })] }),
        filter("opener", built["reply-phases"]!, { config: { status: "200", allowOrigin: "*" }, match: [{ direction: "Inbound" }] }),
      ],
    } as ProxyConfigInput);
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  it("an upstream's response passes every filter's response phase, in reverse chain order", async () => {
    const reply = await request(proxy.outbound, { path: "/echo" });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers["x-seen-by"], "test/late 200, test/auth 200, test/cors 200");
  });

  it("a filter's 401 passes the filters before it (CORS adds its header), not itself or those after it", async () => {
    const before = upstream.received.length;
    const reply = await request(proxy.outbound, { path: "/private/orders" });
    assert.equal(reply.status, 401);
    assert.equal(reply.body, "no token\n");
    assert.equal(reply.headers["www-authenticate"], "Bearer");
    assert.equal(reply.headers["access-control-allow-origin"], "*");
    assert.equal(reply.headers["x-seen-by"], "test/cors 401");
    assert.equal(upstream.received.length, before, "the upstream never saw the request");
  });

  it("a filter's FailClose 500 passes the filters before it", async () => {
    const reply = await request(proxy.outbound, { path: "/trap" });
    assert.equal(reply.status, 500);
    assert.match(String(reply.headers["x-weft-error"]), /^filter test\/fragile failed: the filter trapped: unreachable$/);
    assert.equal(reply.headers["x-seen-by"], "test/auth 500, test/cors 500");
    assert.equal(reply.headers["x-filter-response"], undefined, "the filter that failed does not see the reply");
  });

  it("the proxy's 404, 503 and 504 pass every attached filter's response phases, the body phase included", async () => {
    const notFound = await request(proxy.outbound, { path: "/nowhere" });
    assert.equal(notFound.status, 404);
    assert.equal(notFound.headers["x-seen-by"], "test/late 404, test/auth 404, test/cors 404");
    assert.equal(notFound.headers["access-control-allow-origin"], "*");
    assert.match(notFound.body, /^no route for host "[^"]+" and path "\/nowhere"\n\+filtered by test\/shout$/);
    assert.equal(notFound.headers["content-length"], String(Buffer.byteLength(notFound.body)));
    assert.match(String(notFound.headers["x-weft-error"]), /^no route for host/);

    const unavailable = await request(proxy.outbound, { path: "/gone" });
    assert.equal(unavailable.status, 503);
    assert.equal(unavailable.headers["x-seen-by"], "test/late 503, test/auth 503, test/cors 503");
    assert.equal(unavailable.body, `no endpoints for cluster "empty"\n`);

    const timedOut = await request(proxy.outbound, { path: "/delay/2000" });
    assert.equal(timedOut.status, 504);
    assert.equal(timedOut.headers["x-seen-by"], "test/late 504, test/auth 504, test/cors 504");
    assert.equal(timedOut.headers["access-control-allow-origin"], "*");
  });

  it("the access check's 403 passes no filter: a response phase that sets 200 on what it sees cannot open it", async () => {
    const before = upstream.received.length;
    const refused = await request(proxy.inbound, { path: "/admin/users" });
    assert.equal(refused.status, 403);
    assert.match(String(refused.headers["x-weft-error"]), /access policy shop\/no-admin denies/);
    assert.equal(refused.headers["x-seen-by"], undefined, "no response phase ran");
    assert.equal(refused.headers["access-control-allow-origin"], undefined);
    assert.equal(upstream.received.length, before, "the app never saw the request");
    // The same filter does change the status of what it sees: an allowed request's 404.
    const allowed = await request(proxy.inbound, { path: "/status/404" });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers["x-seen-by"], "test/opener 404");
  });
});
