// runtimes: node
// needs: k8s-node
// weft in real pods on a real node (test/k8s/node.ts: kubelet, containerd, runc, kube-proxy,
// CoreDNS): the images `npm run image` builds, pushed to the node's registry; `weft install
// --image` brings up the control plane (2 replicas, one leader); the shop's plain manifests
// (`kubectl apply -k examples/shop`) in the labelled namespace are injected by the webhook, their
// init containers redirect the pods' traffic, and the native sidecars enroll, get their
// configuration and filters, and carry the shop's calls over mTLS. Then what `weft up` shows is
// checked the cluster's way: the SPIFFE ID the catalog sees, the rate limit's 429, the 90/10
// canary, the AccessPolicy's 403, WasmFilter READY and `weft status`. Node only; needs root.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { spawn } from "node:child_process";
import path from "node:path";
import process from "node:process";
import type { Cluster } from "../k8s/cluster.ts";
import { until } from "../support/control-process.ts";
import { applyShop, startRealMesh, type RealMesh } from "../support/real-mesh.ts";
import { shopLoad } from "../support/shop-load.ts";
import { metricSeries } from "../support/metrics.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..", "..");
const NODE = path.join(root, "node_modules", ".bin", "node");
// What this machine (2 cores for the node, every pod and the load generator) sustains with room
// to spare; bench/k8s/disruption.ts measures higher rates (docs/k8s-test-env.md).
const LOAD_RATE = 30;
const LOAD_SECONDS = 60;

describe("weft in real pods on a real node", { timeout: 20 * 60_000 }, () => {
  let mesh: RealMesh;
  let k8s: Cluster;
  const kubectl = (args: string[], input?: string) => k8s.kubectl(args, input);
  const pods = (ns: string) => mesh.pods(ns);
  /**
   * Runs `script` with Node in the app container of `deployment` (the shop's image has no shell):
   * its calls go out through that pod's sidecar.
   */
  /** Asks `probe` until it answers `expected`, for at most a minute; failing, says the last answer. */
  const answers = async (what: string, probe: () => Promise<string>, expected: string) => {
    let last = "";
    await until(what, async () => (last = await probe()) === expected, 60_000).catch((e: Error) =>
      assert.fail(`${e.message}; the last answer: ${JSON.stringify(last)}`),
    );
  };
  const podIp = async (namespace: string, name: string) =>
    (await kubectl(["get", "pod", name, "-n", namespace, "-o", "jsonpath={.status.podIP}"])).trim();
  /** From this machine (the node, no sidecar), in plaintext: what the line server at `ip`:6379 says to "ping". */
  const pingFromNode = (ip: string) =>
    new Promise<string>((resolve) => {
      const s = net.connect(6379, ip);
      let got = "";
      s.on("connect", () => s.write("ping\n"));
      s.on("data", (d) => {
        got += d.toString();
        if (got.endsWith("ping\n")) s.destroy();
      });
      s.on("close", () => resolve(got));
      s.on("error", () => {});
      s.setTimeout(5_000, () => s.destroy());
    });
  const inPod = (deployment: string, container: string, script: string) =>
    kubectl(["exec", "-n", "shop", `deploy/${deployment}`, "-c", container, "--", "node", "-e", script]);

  before(async () => {
    mesh = await startRealMesh();
    k8s = mesh.k8s;
    await mesh.install();
    await applyShop(mesh);
  });

  after(async () => {
    await mesh?.stop();
  });

  it("weft install --image brings the control plane to Ready: 2 replicas, one leader", async () => {
    const deployment = JSON.parse(await kubectl(["get", "deployment", "weft-control", "-n", "weft-system", "-o", "json"])) as {
      status: { readyReplicas?: number; availableReplicas?: number };
    };
    assert.equal(deployment.status.readyReplicas, 2);
    const replicas = (await pods("weft-system")).map((p) => p.metadata.name);
    assert.equal(replicas.length, 2);
    const lease = JSON.parse(await kubectl(["get", "lease", "weft-control", "-n", "weft-system", "-o", "json"])) as {
      spec: { holderIdentity: string };
    };
    assert.ok(
      replicas.some((name) => lease.spec.holderIdentity.startsWith(name)),
      `the Lease holder ${lease.spec.holderIdentity} is one of ${replicas.join(", ")}`,
    );
  });

  it("every shop pod is Running 2/2 (app and native sidecar), its init container completed", async () => {
    const shop = await pods("shop");
    assert.equal(shop.length, 4, shop.map((p) => p.metadata.name).join(", "));
    for (const p of shop) {
      const name = p.metadata.name;
      assert.equal(p.status.phase, "Running", name);
      const init = p.status.initContainerStatuses ?? [];
      assert.deepEqual(
        init.map((c) => c.name),
        ["weft-init", "weft-proxy"],
        name,
      );
      assert.equal(init[0]!.state.terminated?.exitCode, 0, `${name}: weft-init ${JSON.stringify(init[0]!.state)}`);
      assert.equal(init[0]!.state.terminated?.reason, "Completed", name);
      assert.ok(init[1]!.started && init[1]!.ready, `${name}: the sidecar is started and ready`);
      assert.ok(
        (p.status.containerStatuses ?? []).every((c) => c.ready),
        `${name}: the app is ready`,
      );
    }
    const table = await kubectl(["get", "pods", "-n", "shop"]);
    for (const line of table.trim().split("\n").slice(1)) assert.match(line, /\s2\/2\s+Running\s/, line);
  });

  it("the frontend reaches catalog and inventory over mTLS through the sidecars; the catalog sees the frontend's SPIFFE ID", async () => {
    const page = JSON.parse(
      await inPod(
        "catalog-v1",
        "catalog",
        `fetch("http://frontend.shop/", { headers: { "x-user": "page" } }).then(async (r) => console.log(await r.text()))`,
      ),
    ) as {
      catalogVersion: string;
      greeting: string | null;
      catalogSawCaller: string;
      products: { inStock: number | null }[];
    };
    assert.equal(page.catalogSawCaller, "spiffe://cluster.local/ns/shop/sa/frontend");
    assert.equal(page.greeting, "hello from the catalog", "the greeting filter runs in the catalog's sidecar");
    assert.ok(page.products.length > 0 && page.products.every((p) => typeof p.inStock === "number"), JSON.stringify(page.products));
  });

  it("the rate limit answers 429, the canary splits 90/10, and the AccessPolicy refuses the catalog with 403", async () => {
    // 15 at once, so that the bucket (burst 10, 5 tokens/s) barely refills however slow the machine.
    const codes = (
      await inPod(
        "catalog-v1",
        "catalog",
        `Promise.all(Array.from({ length: 15 }, () => fetch("http://frontend.shop/", { headers: { "x-user": "bob" } }).then((r) => r.status))).then((c) => console.log(c.join(" ")))`,
      )
    )
      .trim()
      .split(" ");
    const count = (code: string) => codes.filter((c) => c === code).length;
    assert.equal(count("200") + count("429"), 15, `only 200 and 429: ${codes.join(" ")}`);
    assert.ok(count("200") >= 10, `the burst of 10 passes: ${codes.join(" ")}`);
    assert.ok(count("429") >= 3, `the rest is limited: ${codes.join(" ")}`);

    const CALLS = 500;
    // One shopper each, so the rate limit does not count them together; 10 at a time.
    const split = JSON.parse(
      await inPod(
        "catalog-v1",
        "catalog",
        `(async () => {
      const seen = {}; let next = 0;
      const worker = async () => { for (let i = next++; i < ${CALLS}; i = next++) { const r = await fetch("http://frontend.shop/", { headers: { "x-user": "u" + i } }); const v = r.status === 200 ? (await r.json()).catalogVersion : "status " + r.status; seen[v] = (seen[v] ?? 0) + 1; } };
      await Promise.all(Array.from({ length: 10 }, worker)); console.log(JSON.stringify(seen));
    })()`,
      ),
    ) as Record<string, number>;
    assert.equal((split.v1 ?? 0) + (split.v2 ?? 0), CALLS, JSON.stringify(split));
    // 10 % of 500 is 50, one standard deviation sqrt(500 * 0.1 * 0.9) = 6.7: within 5 of them.
    const sd = Math.sqrt(CALLS * 0.1 * 0.9);
    assert.ok(Math.abs(split.v2! - CALLS * 0.1) <= 5 * sd, `v2 got ${split.v2} of ${CALLS}, not 10 % within 5 standard deviations`);

    const refused = JSON.parse(
      await inPod(
        "catalog-v1",
        "catalog",
        `fetch("http://inventory.shop/stock/tea").then((r) => console.log(JSON.stringify({ status: r.status, error: r.headers.get("x-weft-error") })))`,
      ),
    ) as { status: number; error: string };
    assert.equal(refused.status, 403);
    assert.match(refused.error, /spiffe:\/\/cluster\.local\/ns\/shop\/sa\/catalog/);
  });

  it("kubectl get wasmfilters shows READY equal to the running pods each selects, and weft status lists every sidecar", async () => {
    let last = "";
    const table = await until(
      "the WasmFilters to be Ready",
      async () => {
        last = await kubectl(["get", "wasmfilters", "-n", "shop"]);
        return /greeting\s.*\s2\/2\s+Running/.test(last) && /rate-limit\s.*\s1\/1\s+Running/.test(last) ? last : null;
      },
      60_000,
    ).catch(async (e: Error) => {
      throw new Error(
        `${e.message}:\n${last}\n${await kubectl(["get", "wasmfilters", "-n", "shop", "-o", 'jsonpath={range .items[*]}{.metadata.name}: {.status.conditions}{"\\n"}{end}'])}`,
      );
    });
    assert.match(table, /greeting\s+True\s+True\s+2\/2\s+Running/);
    const status = await mesh.weft(["status"]);
    assert.equal(status.code, 0, status.stderr);
    for (const p of await pods("shop"))
      assert.ok(status.stdout.includes(`shop/${p.metadata.name}`), `weft status lists ${p.metadata.name}:\n${status.stdout}`);
  });

  it("weft dashboard opens the cluster's dashboard through kubectl port-forward, with every sidecar", async () => {
    const child = spawn(NODE, ["bin/weft.ts", "dashboard", "--port", "0", "--kubeconfig", k8s.kubeconfig], {
      cwd: root,
      env: { ...process.env, PATH: `${k8s.binDir}:${process.env.PATH}` },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    try {
      const url = await until(
        "weft dashboard to print its address",
        async () => /dashboard {2}(http:\/\/127\.0\.0\.1:\d+\/dashboard\/)/.exec(out)?.[1],
        30_000,
      );
      // Every running shop pod, and no pod that is gone (a rollout, a finished load generator).
      let shown: string[] = [];
      let running: string[] = [];
      await until(
        "the dashboard to list the shop's running sidecars",
        async () => {
          const s = (await (await fetch(`${url}api/state`)).json()) as {
            proxies: { namespace: string; pod: string; scrape: { state: string } }[];
          };
          shown = s.proxies
            .filter((p) => p.namespace === "shop")
            .map((p) => p.pod)
            .sort();
          running = (await pods("shop"))
            .filter((p) => p.status.phase === "Running")
            .map((p) => p.metadata.name)
            .sort();
          return JSON.stringify(shown) === JSON.stringify(running) && s.proxies.every((p) => p.scrape.state === "ok") ? s : null;
        },
        60_000,
      ).catch((e: Error) => {
        throw new Error(`${e.message}: the dashboard shows ${shown.join(", ")}; running: ${running.join(", ")}`);
      });
    } finally {
      child.kill("SIGTERM");
    }
  });

  it(`under ${LOAD_RATE} pages/s for ${LOAD_SECONDS} s through the frontend, a catalog rollout, a control-plane pod deleted, a filter config changed and a sidecar killed fail no request; only inventory's restart degrades pages; nothing is OOMKilled`, async () => {
    const result = await shopLoad(mesh, { rate: LOAD_RATE, seconds: LOAD_SECONDS });
    const summary = JSON.stringify(result);
    assert.equal(result.ok + result.degraded, LOAD_RATE * LOAD_SECONDS, `every page answered 200: ${summary}`);
    assert.deepEqual(result.failed, {}, summary);
    assert.equal(result.dropped, 0, summary);
    assert.equal(result.warmup.notOk, 0, `every warm-up page answered 200: ${summary}`);
    // inventory has one replica: while its sidecar restarts nothing can answer for it, and the
    // frontend serves pages without stock. That is the only loss, and only then (the second the
    // kill was sent in is counted from the harness's clock, which starts up to 2 s after the
    // generator's).
    const killed = result.disruptions["inventory sidecar killed"]!;
    const degradedSeconds = Object.entries(result.perSecond)
      .filter(([, what]) => what.degraded)
      .map(([s]) => Number(s));
    assert.ok(
      degradedSeconds.every((s) => s >= killed - 2 && s <= killed + 20),
      `degraded pages only after inventory's sidecar was killed (second ${killed}): ${summary}`,
    );
    assert.ok(result.degraded <= LOAD_RATE * 10, `inventory's sidecar is back within 10 s: ${summary}`);
    assert.deepEqual(result.oomKilled, [], summary);
    const shop = await pods("shop");
    const inventory = shop.find((p) => p.metadata.name.startsWith("inventory-"))!;
    assert.equal(
      inventory.status.initContainerStatuses?.find((c) => c.name === "weft-proxy")?.restartCount,
      1,
      "kubelet restarted the killed sidecar",
    );
  });

  it("a meshed pod reaches, on port 80, a server in a pod without a sidecar and a host-network server: outbound traffic ALLOW_ANY passes through", async () => {
    const busybox = k8s.node!.images.busybox;
    await kubectl(
      ["apply", "-f", "-"],
      `apiVersion: v1
kind: Namespace
metadata: { name: outside }
---
apiVersion: v1
kind: Pod
metadata: { name: plain, namespace: outside }
spec:
  terminationGracePeriodSeconds: 1
  containers: [{ name: web, image: ${busybox}, command: [sh, -c, "mkdir -p /www && echo plain pod > /www/index.html && exec httpd -f -p 80 -h /www"] }]
---
apiVersion: v1
kind: Pod
metadata: { name: host-web, namespace: outside }
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers: [{ name: web, image: ${busybox}, command: [sh, -c, "mkdir -p /www && echo host network > /www/index.html && exec httpd -f -p 80 -h /www"] }]
`,
    );
    await kubectl(["wait", "--for=condition=Ready", "pod/plain", "pod/host-web", "-n", "outside", "--timeout=60s"]);
    for (const [name, body] of [
      ["plain", "plain pod"],
      ["host-web", "host network"],
    ] as const) {
      const got = JSON.parse(
        await inPod(
          "catalog-v1",
          "catalog",
          `fetch("http://${await podIp("outside", name)}/").then(async (r) => console.log(JSON.stringify({ status: r.status, body: (await r.text()).trim() })))`,
        ),
      ) as { status: number; body: string };
      assert.deepEqual(got, { status: 200, body }, name);
    }
    // Through the sidecar, not around it: its access log names the passthrough cluster.
    const log = await kubectl(["logs", "-n", "shop", "deploy/catalog-v1", "-c", "weft-proxy"]);
    assert.match(log, /"upstream_cluster":"PassthroughCluster"/);
  });

  it("every port of a meshed pod goes through its sidecar: one a Service targets is served, one nobody declared is refused, not open to the app", async () => {
    // The app declares no port, and serves two; a Service targets one of them.
    const busybox = k8s.node!.images.busybox;
    await kubectl(
      ["apply", "-f", "-"],
      `apiVersion: v1
kind: Namespace
metadata: { name: capture, labels: { weft.dev/inject: enabled } }
---
apiVersion: v1
kind: Pod
metadata: { name: two-ports, namespace: capture, labels: { app: two-ports } }
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: web
      image: ${busybox}
      command: [sh, -c, "mkdir -p /a /b && echo by a Service > /a/index.html && echo undeclared > /b/index.html && httpd -p 80 -h /a && exec httpd -f -p 9000 -h /b"]
---
apiVersion: v1
kind: Service
metadata: { name: two-ports, namespace: capture }
spec: { selector: { app: two-ports }, ports: [{ name: http, port: 80 }] }
`,
    );
    await kubectl(["wait", "--for=condition=Ready", "pod/two-ports", "-n", "capture", "--timeout=90s"]);
    const ip = await podIp("capture", "two-ports");
    // From this machine, the node: plain TCP, as any caller outside the mesh.
    const fetchFromOutside = (port: number) =>
      fetch(`http://${ip}:${port}/`, { signal: AbortSignal.timeout(5_000) }).then(
        async (r) => `${r.status} ${(await r.text()).trim()}`,
        (e: Error) => `failed: ${(e.cause as { code?: string } | undefined)?.code ?? e.message}`,
      );
    await answers("the sidecar to serve the Service's target port", () => fetchFromOutside(80), "200 by a Service");
    assert.equal(await fetchFromOutside(9000), "failed: ECONNREFUSED", "the undeclared port never reaches the app around the sidecar");
    // The sidecar's outbound listener speaks for the pod (its identity, its AccessPolicy grants):
    // only the pod's own processes may use it, never a caller from the network.
    assert.equal(await fetchFromOutside(15001), "failed: ECONNREFUSED", "the outbound listener is not reachable from outside the pod");
    const inbound = (await metricSeries(`http://${ip}:15000/metrics`, "istio_requests_total")).filter((l) =>
      l.includes('reporter="destination"'),
    );
    assert.ok(
      inbound.some((l) => l.includes("two-ports") && !l.endsWith(" 0")),
      `port 80 came through the sidecar: ${inbound.join("\n")}`,
    );
  });

  it("a TCP server in a meshed pod is carried through its sidecar as opaque TCP: a port whose Service names its protocol is never parsed as HTTP", async () => {
    // A server-first line protocol (a greeting, then every line echoed), behind a Service port named redis.
    const script = "require('node:net').createServer((s) => { s.write('hello\\n'); s.pipe(s); }).listen(6379)";
    await kubectl(
      ["apply", "-f", "-"],
      `apiVersion: v1
kind: Pod
metadata: { name: db, namespace: capture, labels: { app: db } }
spec:
  terminationGracePeriodSeconds: 1
  containers: [{ name: app, image: ${mesh.shopImage}, command: [node, -e, ${JSON.stringify(script)}] }]
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: capture }
spec: { selector: { app: db }, ports: [{ name: redis, port: 6379 }] }
`,
    );
    await kubectl(["wait", "--for=condition=Ready", "pod/db", "-n", "capture", "--timeout=90s"]);
    const ip = await podIp("capture", "db");
    // From the node, a client without a sidecar; it speaks first, as a PERMISSIVE sidecar needs a
    // first byte to tell plaintext from TLS (docs/tcp.md).
    await answers("the TCP server to answer through its sidecar", () => pingFromNode(ip), "hello\nping\n");
    const opened = (await metricSeries(`http://${ip}:15000/metrics`, "istio_tcp_connections_opened_total")).filter((l) =>
      l.includes('reporter="destination"'),
    );
    assert.ok(
      opened.some((l) => l.includes('connection_security_policy="none"') && !l.endsWith(" 0")),
      `counted by the sidecar as a plaintext TCP connection: ${opened.join("\n")}`,
    );
  });

  it("a meshed client's TCP to that Service goes through its own sidecar, over mTLS: an AccessPolicy allows one ServiceAccount and refuses another, and its STRICT refuses plaintext", async () => {
    const idle = "setInterval(() => {}, 1 << 30)";
    await kubectl(
      ["apply", "-f", "-"],
      `apiVersion: v1
kind: ServiceAccount
metadata: { name: allowed, namespace: capture }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: denied, namespace: capture }
---
apiVersion: weft.dev/v1alpha1
kind: AccessPolicy
metadata: { name: db-callers, namespace: capture }
spec:
  selector: { matchLabels: { app: db } }
  mtls: STRICT
  defaultDeny: true
  rules: [{ from: [{ principals: ["spiffe://cluster.local/ns/capture/sa/allowed"] }] }]
${["allowed", "denied"]
  .map(
    (sa) => `---
apiVersion: v1
kind: Pod
metadata: { name: client-${sa}, namespace: capture }
spec:
  serviceAccountName: ${sa}
  terminationGracePeriodSeconds: 1
  containers: [{ name: app, image: ${mesh.shopImage}, command: [node, -e, ${JSON.stringify(idle)}] }]
`,
  )
  .join("")}`,
    );
    await kubectl(["wait", "--for=condition=Ready", "pod/client-allowed", "pod/client-denied", "-n", "capture", "--timeout=90s"]);
    // By the Service's name, as an app would: its ClusterIP, port 6379 (neither 80 nor 8080).
    const talk = `const s = require("node:net").connect(6379, "db.capture.svc.cluster.local"); let got = "";
s.on("connect", () => s.write("ping\\n")); s.on("data", (d) => { got += d; if (got.endsWith("ping\\n")) s.destroy(); });
s.on("close", () => console.log(JSON.stringify(got))); s.on("error", () => {}); s.setTimeout(5000, () => s.destroy());`;
    const from = (sa: string) => async () =>
      JSON.parse(await kubectl(["exec", "-n", "capture", `client-${sa}`, "-c", "app", "--", "node", "-e", talk])) as string;
    await answers("the allowed client to reach the TCP server", from("allowed"), "hello\nping\n");
    await answers("the denied client to be refused before a byte", from("denied"), "");
    const db = await podIp("capture", "db");
    const opened = (await metricSeries(`http://${db}:15000/metrics`, "istio_tcp_connections_opened_total")).filter(
      (l) => l.includes('reporter="destination"') && l.includes('connection_security_policy="mutual_tls"') && !l.endsWith(" 0"),
    );
    for (const sa of ["allowed", "denied"])
      assert.ok(
        opened.some((l) => l.includes(`source_principal="spiffe://cluster.local/ns/capture/sa/${sa}"`)),
        `the server's sidecar saw ${sa} over mTLS, by its own identity: ${opened.join("\n")}`,
      );
    // STRICT on the pod's running listener (this policy came after it started): plaintext is
    // refused at the TLS layer, before any AccessPolicy.
    assert.equal(await pingFromNode(db), "");
    const refused = (await metricSeries(`http://${db}:15000/metrics`, "weft_tls_refused_total")).filter(
      (l) => l.includes('listener="inbound|6379"') && l.includes('reason="plaintext"') && !l.endsWith(" 0"),
    );
    assert.equal(refused.length, 1, "the sidecar refused the node's plaintext under STRICT");
    const logged = await kubectl(["logs", "-n", "capture", "db", "-c", "weft-proxy"]);
    assert.match(logged, /"msg":"TCP connection refused".*no access policy allows peer spiffe:\/\/cluster\.local\/ns\/capture\/sa\/denied/);
  });

  it("with weft install --outbound-traffic REGISTRY_ONLY, the meshed pod gets a 404 naming the setting", async () => {
    await mesh.install(["--outbound-traffic", "REGISTRY_ONLY"]);
    const target = await podIp("outside", "plain");
    const refused = await until(
      "the sidecar to refuse hosts outside the mesh",
      async () => {
        const r = JSON.parse(
          await inPod(
            "catalog-v1",
            "catalog",
            `fetch("http://${target}/").then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.text() })))`,
          ),
        ) as { status: number; body: string };
        return r.status === 404 ? r : null;
      },
      90_000,
    );
    assert.match(
      refused.body,
      /outbound traffic is REGISTRY_ONLY, so the mesh refuses hosts outside it that no Service of type ExternalName declares: declare this one, or let every host through with --outbound-traffic ALLOW_ANY \(docs\/egress\.md\)/,
    );
  });
});
