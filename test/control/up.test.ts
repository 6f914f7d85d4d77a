// runtimes: node
// `weft up` on the shop demo, end to end: the real CLI, the local control plane, four sidecars
// and four apps as processes. It proves mTLS between sidecars, the canary split, the rate
// limit, the access policy, per-edge metrics, a filter change applied while traffic flows
// (no restart, no failed request) and a clean Ctrl-C.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { request, type Reply } from "../support/client.ts";
import { startUp, type RunningUp, type UpPorts } from "../support/weft-up.ts";

const FRONTEND_ID = "spiffe://cluster.local/ns/shop/sa/frontend";
const CATALOG_ID = "spiffe://cluster.local/ns/shop/sa/catalog";

/** One request; `proxy` sends it absolute-form through a sidecar's outbound port, as the apps do. */
function get(url: string, options: { headers?: Record<string, string>; proxy?: number } = {}): Promise<Reply> {
  const target = new URL(url);
  return options.proxy
    ? request(options.proxy, {
        host: target.host,
        path: target.href,
        timeoutMs: 10_000,
        ...(options.headers ? { headers: options.headers } : {}),
      })
    : request(Number(target.port), { path: target.pathname, timeoutMs: 10_000, ...(options.headers ? { headers: options.headers } : {}) });
}

const metrics = async (admin: number) =>
  (await get(`http://127.0.0.1:${admin}/metrics`)).body.split("\n").filter((l) => l.startsWith("istio_requests_total{"));
const count = (lines: string[], ...parts: string[]) =>
  lines.filter((l) => parts.every((p) => l.includes(p))).reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);

describe("weft up (the shop demo)", () => {
  let mesh: RunningUp;
  let ports: Record<string, UpPorts>;
  const frontend = () => `http://127.0.0.1:${ports.frontend!.inbound}/`;

  const waitFor = async (what: string, check: () => boolean | Promise<boolean>, ms = 120_000) => {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; weft up said:\n${mesh.output()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  before(async () => {
    mesh = await startUp({ port: 25012, basePort: 26000 });
    ports = mesh.ports;
  });

  after(async () => {
    await mesh?.stop();
  });

  it("starts four workloads with sidecars and waits for both filters before saying so", () => {
    assert.deepEqual(Object.keys(ports).sort(), ["catalog-v1", "catalog-v2", "frontend", "inventory"]);
    assert.match(mesh.output(), /built filter rate-limit@1\.0\.0/);
    assert.match(mesh.output(), /filters running \(in proxies \/ selected\): shop\/greeting 2\/2, shop\/rate-limit 1\/1/);
    assert.match(mesh.output(), new RegExp(`frontend\\.shop +http://127\\.0\\.0\\.1:${ports.frontend!.inbound}/`));
    assert.match(mesh.output(), /dashboard +http:\/\/127\.0\.0\.1:25012\/dashboard\//);
  });

  it("serves a request through three sidecars over mTLS", async () => {
    const reply = await get(frontend(), { headers: { "x-user": "ada" } });
    assert.equal(reply.status, 200, reply.body);
    const page = JSON.parse(reply.body) as { catalogSawCaller: string; products: { id: string; inStock: number }[]; greeting: string };
    assert.equal(page.catalogSawCaller, FRONTEND_ID, "the catalog's sidecar saw the frontend's certificate");
    assert.deepEqual(
      page.products.map((p) => p.inStock),
      [120, 14, 0],
      "inventory answered the frontend",
    );
    assert.equal(page.greeting, "hello from the catalog", "header-rewrite runs in the catalog's sidecar");
    // The canary sends the catalog call to v1 or v2: between them, one counted it.
    const mtlsFromFrontend = async (...pods: string[]) => {
      let n = 0;
      for (const pod of pods)
        n += count(
          await metrics(ports[pod]!.admin),
          'reporter="destination"',
          `source_principal="${FRONTEND_ID}"`,
          'connection_security_policy="mutual_tls"',
        );
      return n;
    };
    assert.equal(await mtlsFromFrontend("catalog-v1", "catalog-v2"), 1, "the catalog counted one mTLS request from the frontend");
    assert.equal(await mtlsFromFrontend("inventory"), 3, "inventory counted three mTLS requests from the frontend");
  });

  it("splits calls to the catalog 90/10 between v1 and v2", async () => {
    const n = 600;
    let v2 = 0;
    for (let i = 0; i < n; i++) {
      const reply = await get("http://catalog.shop/products", { proxy: ports.frontend!.outbound });
      assert.equal(reply.status, 200);
      if ((JSON.parse(reply.body) as { version: string }).version === "v2") v2++;
    }
    // Binomial(600, 0.1): mean 60, sd 7.3; ±5 sd fails a correct split about once in 3.5 million runs.
    assert.ok(v2 >= 23 && v2 <= 97, `v2 served ${v2} of ${n}; a 10% canary gives 60 ± 37`);
  });

  it("answers 429 once a shopper exceeds the rate limit", async () => {
    const statuses: number[] = [];
    let limited: Reply | undefined;
    for (let i = 0; i < 20; i++) {
      const reply = await get(frontend(), { headers: { "x-user": "mallory" } });
      statuses.push(reply.status);
      if (reply.status === 429) limited ??= reply;
    }
    assert.equal(statuses[0], 200);
    assert.ok(limited, `no 429 in ${statuses.join(" ")}`);
    assert.ok(Number(limited.headers["retry-after"]) >= 1, "429 says when to retry");
    assert.equal((await get(frontend(), { headers: { "x-user": "grace" } })).status, 200, "another shopper is not limited");
  });

  it("refuses the catalog's calls to inventory (AccessPolicy), and counts them", async () => {
    const direct = await get("http://inventory.shop/stock/tea", { proxy: ports["catalog-v1"]!.outbound });
    assert.equal(direct.status, 403);
    assert.match(
      String(direct.headers["x-weft-error"]),
      /no access policy allows peer spiffe:\/\/cluster\.local\/ns\/shop\/sa\/catalog GET \/stock\/tea/,
    );
    const viaApp = JSON.parse((await get(`http://127.0.0.1:${ports["catalog-v1"]!.inbound}/products/tea/stock`)).body) as {
      askedInventory: number;
    };
    assert.equal(viaApp.askedInventory, 403);
    // inventory is STRICT: a plaintext caller's connection is closed before any HTTP answer.
    const plaintext = await get(`http://127.0.0.1:${ports.inventory!.inbound}/stock/tea`).then(
      (r) => `HTTP ${r.status}`,
      (e: Error & { code?: string }) => e.code ?? e.message,
    );
    assert.match(plaintext, /^(ECONNRESET|UND_ERR_SOCKET|socket hang up)/, `a plaintext caller got ${plaintext}`);
    assert.ok(count(await metrics(ports.inventory!.admin), `source_principal="${CATALOG_ID}"`, 'response_code="403"') >= 2);
  });

  it("has metrics for every edge on both of its ends", async () => {
    const source = await metrics(ports.frontend!.admin);
    for (const service of ["catalog", "inventory"]) {
      assert.ok(
        count(
          source,
          'reporter="source"',
          'source_workload="frontend"',
          `destination_service_name="${service === "catalog" ? "catalog-v" : service}`,
        ) > 0,
        `frontend -> ${service}`,
      );
    }
    assert.ok(
      count(await metrics(ports["catalog-v2"]!.admin), 'reporter="destination"', `source_principal="${FRONTEND_ID}"`) > 0,
      "frontend -> catalog-v2",
    );
  });

  it("applies a filter change saved in the directory without a restart or a failed request", async () => {
    const before = count(await metrics(ports.frontend!.admin), 'reporter="destination"');
    const file = path.join(mesh.dir, "filters.yaml");
    const seen = new Map<string, number>();
    let failures = 0;
    let sent = 0;
    let changed = false;
    const load = (async () => {
      // Bounded: at most 1500 requests, until the new greeting has been seen 50 times.
      while (sent < 1500 && (seen.get("bonjour from the catalog") ?? 0) < 50) {
        sent++;
        const reply = await get(frontend(), { headers: { "x-user": `load-${sent}` } }).catch((e: Error) => ({
          status: 0,
          body: e.message,
          headers: {},
        }));
        if (reply.status !== 200) {
          failures++;
          continue;
        }
        const greeting = (JSON.parse(reply.body) as { greeting: string }).greeting;
        seen.set(greeting, (seen.get(greeting) ?? 0) + 1);
        if (!changed && sent === 30) {
          changed = true;
          await writeFile(file, (await readFile(file, "utf8")).replace("hello from the catalog", "bonjour from the catalog"));
        }
      }
    })();
    await load;
    assert.equal(failures, 0, `${failures} of ${sent} requests failed during the change`);
    assert.ok((seen.get("hello from the catalog") ?? 0) >= 30);
    assert.equal(seen.get("bonjour from the catalog"), 50, `the new greeting never arrived (saw ${JSON.stringify([...seen])})`);
    assert.doesNotMatch(mesh.output(), /exited|stopping/, "no process was restarted");
    assert.ok(
      count(await metrics(ports.frontend!.admin), 'reporter="destination"') >= before + sent,
      "the frontend's sidecar kept its counters: same process",
    );
  });

  it("shows the traffic, the sidecars, their certificates and the filters on the dashboard", async () => {
    const state = async () =>
      JSON.parse((await get("http://127.0.0.1:25012/dashboard/api/state")).body) as {
        edges: { id: string; requestsTotal: number; errorRate: number | null }[];
        proxies: {
          pod: string;
          version: string;
          acked: string;
          certificate?: { spiffeId: string; notAfter: string };
          filters: { name: string; sha256: string }[];
        }[];
        filters: { name: string; ready: string; sha256?: string }[];
      };
    const expected = count(await metrics(ports.frontend!.admin), 'reporter="source"', 'destination_service_name="inventory"');
    let seen = await state();
    // The first ask starts the scraping; the totals arrive with the first scrape.
    await waitFor(
      "the frontend -> inventory edge",
      async () => {
        seen = await state();
        return seen.edges.find((e) => e.id === "shop/frontend->shop/inventory")?.requestsTotal === expected;
      },
      20_000,
    );
    assert.ok(seen.edges.some((e) => e.id === "shop/frontend->shop/catalog-v1" && e.requestsTotal > 0));
    assert.equal(seen.proxies.length, 4);
    for (const p of seen.proxies) {
      assert.equal(p.acked, p.version, `${p.pod} runs the newest configuration`);
      assert.ok(p.certificate && Date.parse(p.certificate.notAfter) > Date.now() + 20 * 3600_000, `${p.pod} has a fresh 24 h certificate`);
    }
    assert.deepEqual(seen.filters.map((f) => `${f.name} ${f.ready}`).sort(), ["greeting 2/2", "rate-limit 1/1"]);
    const frontendProxy = seen.proxies.find((p) => p.pod === "frontend")!;
    assert.deepEqual(
      frontendProxy.filters.map((f) => f.sha256),
      ["5a9a7ab9a03aff2f35092369fba07239a5c1c982692a1969fe7c89798a034314"],
    );
  });

  it("stops everything on Ctrl-C", async () => {
    const exited = new Promise<number | null>((resolve) => mesh.process.once("exit", (code) => resolve(code)));
    mesh.process.kill("SIGINT");
    assert.equal(await exited, 0);
    assert.match(mesh.output(), /weft up: stopped/);
    for (const p of Object.values(ports)) {
      const refused = await get(`http://127.0.0.1:${p.admin}/ready`).then(
        () => false,
        () => true,
      );
      assert.ok(refused, `the sidecar on admin port ${p.admin} is gone`);
    }
  });
});
