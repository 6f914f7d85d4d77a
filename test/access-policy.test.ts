// runtimes: node deno bun
// AccessPolicy as the inbound sidecar enforces it: callers judged by the SPIFFE ID of their
// mTLS certificate, the method and the normalized path, before any filter or the app.
import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startUpstream, type Upstream } from "./support/upstream.ts";
import { startProxy, type RunningProxy } from "./support/proxy.ts";
import { metricSeries } from "./support/metrics.ts";
import { request, rawExchange } from "./support/client.ts";
import { createCa, workloadIdentity, type TestCa } from "./support/pki.ts";
import { normalizePath } from "../proxy/inbound/authorization.ts";
import type { Authorization } from "../proxy/config/authorization.ts";
import { Recorder } from "./hostile/record.ts";

// Recorded in docs/reliability.md (Security) as well as asserted.
const rec = new Recorder("access-policy");

const FRONTEND = "spiffe://cluster.local/ns/shop/sa/frontend";
const CATALOG = "spiffe://cluster.local/ns/shop/sa/catalog";
const INVENTORY = "spiffe://cluster.local/ns/shop/sa/inventory";

describe("AccessPolicy enforcement on the inbound listener", () => {
  let app: Upstream;
  let ca: TestCa;
  let server: RunningProxy;
  const callers = new Map<string, RunningProxy>();

  const identityOf = (spiffeId: string) => workloadIdentity(ca, spiffeId);

  const serve = async (authorization: Authorization, tls: "STRICT" | "PERMISSIVE" = "PERMISSIVE") => {
    await server?.stop();
    server = await startProxy({
      node: { workload: "inventory", namespace: "shop", serviceAccount: "inventory" },
      identity: await identityOf(INVENTORY),
      listeners: [
        {
          name: "inbound",
          direction: "Inbound",
          address: "127.0.0.1",
          port: 0,
          tls,
          authorization,
          virtualHosts: [{ name: "app", domains: ["*"], routes: [{ backends: [{ cluster: "app" }] }] }],
        },
      ],
      clusters: [{ name: "app", endpoints: [{ address: "127.0.0.1", port: app.port }] }],
    });
    for (const c of callers.values()) await c.stop();
    callers.clear();
    for (const id of [FRONTEND, CATALOG]) {
      callers.set(
        id,
        await startProxy({
          identity: await identityOf(id),
          listeners: [
            {
              name: "outbound",
              direction: "Outbound",
              address: "127.0.0.1",
              port: 0,
              virtualHosts: [{ name: "inventory", domains: ["*"], routes: [{ backends: [{ cluster: "inventory" }] }] }],
            },
          ],
          clusters: [{ name: "inventory", endpoints: [{ address: "127.0.0.1", port: server.inbound }], tls: { identities: [INVENTORY] } }],
        }),
      );
    }
  };
  const call = (id: string, path = "/stock", method = "GET") => request(callers.get(id)!.outbound, { host: "inventory", path, method });
  const plaintext = (path = "/stock") =>
    rawExchange(server.inbound, `GET ${path} HTTP/1.1\r\nHost: inventory\r\nConnection: close\r\n\r\n`);

  before(async () => {
    app = await startUpstream("inventory-app");
    ca = await createCa();
  });
  after(async () => {
    for (const c of callers.values()) await c.stop();
    await server?.stop();
    await app.close();
  });

  rec.case(
    "security",
    "AccessPolicy and STRICT mTLS",
    "default deny: only the allowed principal reaches the app; others get 403 naming the reason",
    async () => {
      await serve({
        defaultDeny: true,
        policies: [
          { name: "shop/frontend-only", action: "ALLOW", rules: [{ from: [{ principals: [FRONTEND], namespaces: [] }], to: [] }] },
        ],
      });
      const before = app.received.length;
      assert.equal((await call(FRONTEND)).status, 200);
      assert.equal(app.received.length, before + 1);
      const refused = await call(CATALOG);
      assert.equal(refused.status, 403);
      assert.match(
        String(refused.headers["x-weft-error"]),
        /no access policy allows peer spiffe:\/\/cluster\.local\/ns\/shop\/sa\/catalog GET \/stock \(default deny\)/,
      );
      assert.match(await plaintext(), /^HTTP\/1\.1 403 [\s\S]*a plaintext caller \(no mesh identity\)/);
      assert.equal(app.received.length, before + 1, "refused requests never reached the app");
      const requests = await metricSeries(`http://127.0.0.1:${server.admin}/metrics`, "istio_requests_total");
      assert.ok(
        requests.some((l) => l.includes(`source_principal="${CATALOG}"`) && l.includes('response_code="403"')),
        "the refusal is counted with the caller's identity",
      );
    },
  );

  rec.case(
    "security",
    "AccessPolicy and STRICT mTLS",
    "DENY wins over ALLOW and judges the normalized path, by whole segments",
    async () => {
      await serve({
        defaultDeny: false,
        policies: [
          {
            name: "shop/no-admin",
            action: "DENY",
            rules: [{ from: [], to: [{ methods: [], paths: [{ type: "PathPrefix", value: "/admin" }] }] }],
          },
          { name: "shop/everyone", action: "ALLOW", rules: [{ from: [], to: [] }] },
        ],
      });
      const before = app.received.length;
      for (const path of ["/admin", "/admin/users", "/stock/../admin", "/%61dmin", "//admin", "/./admin?x=1"]) {
        const reply = await call(FRONTEND, path);
        assert.equal(reply.status, 403, `${path} is /admin`);
        assert.match(String(reply.headers["x-weft-error"]), /access policy shop\/no-admin denies/);
      }
      const encodedSlash = await call(FRONTEND, "/stock%2F..%2Fadmin");
      assert.equal(encodedSlash.status, 403);
      assert.match(String(encodedSlash.headers["x-weft-error"]), /encoded "\/"/);
      assert.equal(app.received.length, before, "none of them reached the app");
      assert.equal((await call(FRONTEND, "/administrator")).status, 200, "a prefix matches whole segments only");
      assert.equal((await call(CATALOG, "/stock")).status, 200, "without defaultDeny, what no DENY matches is allowed");
    },
  );

  rec.case("security", "AccessPolicy and STRICT mTLS", "matches methods and namespaces, and principal prefixes", async () => {
    await serve({
      defaultDeny: true,
      policies: [
        {
          name: "shop/read-only",
          action: "ALLOW",
          rules: [
            {
              from: [{ principals: ["spiffe://cluster.local/ns/shop/*"], namespaces: ["shop"] }],
              to: [{ methods: ["GET", "HEAD"], paths: [{ type: "Exact", value: "/stock" }] }],
            },
          ],
        },
      ],
    });
    assert.equal((await call(CATALOG, "/stock", "GET")).status, 200);
    assert.equal((await call(CATALOG, "/stock", "POST")).status, 403);
    assert.equal((await call(CATALOG, "/stock/1", "GET")).status, 403, "Exact is exact");
  });

  rec.case(
    "security",
    "AccessPolicy and STRICT mTLS",
    "STRICT with policies: plaintext is refused at the handshake, mesh peers are judged",
    async () => {
      await serve(
        {
          defaultDeny: true,
          policies: [
            { name: "shop/frontend-only", action: "ALLOW", rules: [{ from: [{ principals: [FRONTEND], namespaces: [] }], to: [] }] },
          ],
        },
        "STRICT",
      );
      // Refused before HTTP: the connection closes with nothing sent back (a 403 would mean the policy, not STRICT, refused it).
      assert.equal(await plaintext(), "");
      assert.equal((await call(FRONTEND)).status, 200);
      assert.equal((await call(CATALOG)).status, 403);
    },
  );

  rec.case("security", "AccessPolicy and STRICT mTLS", "normalizes paths the way the policy judges them", () => {
    assert.equal(normalizePath("/a/b/../c?q=/admin"), "/a/c");
    assert.equal(normalizePath("/%7Euser/%41"), "/~user/A");
    assert.equal(normalizePath("/a%2fb"), null);
    assert.equal(normalizePath("/a\\b"), null);
    assert.equal(normalizePath("/../../x/"), "/x/");
    assert.equal(normalizePath("/"), "/");
    assert.equal(normalizePath("/%20x"), "/%20x", "reserved and other escapes stay encoded");
  });
});
