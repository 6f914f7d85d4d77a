// runtimes: node
// needs: k8s
// The control plane end to end on a real kube-apiserver: resources applied with kubectl, a
// filter pulled from a real OCI registry, a real sidecar process that authenticates with a
// real ServiceAccount token (TokenReview), gets its configuration and the filter over the
// configuration stream, and serves traffic; WasmFilter status as kubectl shows it; a filter
// change swapped under load; a bad digest reported without touching traffic; a control
// plane restart that leaves the proxy serving.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readdir, writeFile } from "node:fs/promises";
import { networkInterfaces, tmpdir } from "node:os";
import path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { startCluster, freePorts, waitEstablished, type Cluster } from "../k8s/cluster.ts";
import { gatewayApiCrd } from "../k8s/gateway-api.ts";
import { startUpstream, type Upstream } from "../support/upstream.ts";
import { namespaceYaml, podYaml, serviceAccountYaml, serviceYaml } from "../support/service.ts";
import { until, weftStatus, writeProxyToken } from "../support/control-process.ts";
import { startRegistry, type TestRegistry } from "../support/registry.ts";
import { builtFilter } from "../../sdk/build/cache.ts";
import { request } from "../support/client.ts";
import { RegistryClient } from "../../shared/oci-registry.ts";
import { startController, type Controller } from "../../control/controller.ts";
import { openAuthority, type CertificateAuthority } from "../../control/ca/authority.ts";
import { directoryStore } from "../../control/ca/dir-store.ts";
import { ENROLLMENT_PATH, enrollmentHandler } from "../../control/ca/enrollment.ts";
import { kubernetesTokenReviewer } from "../../control/ca/token-review.ts";
import { createLogger } from "../../shared/log.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..", "..");
const bin = (name: string) => path.join(root, "node_modules", ".bin", name);
// The sidecar is the data plane: one per runtime, each in its own pod.
const RUNTIMES = {
  node: [bin("node"), "bin/weft.ts"],
  deno: [bin("deno"), "run", "-A", "bin/weft.ts"],
  bun: [bin("bun"), "bin/weft.ts"],
} as const;
type RuntimeName = keyof typeof RUNTIMES;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// EndpointSlices may not hold loopback addresses, so the upstream listens on this machine's
// own non-loopback address.
function hostAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  throw new Error(
    "this machine has no non-loopback IPv4 address; the control plane test needs one for EndpointSlices (which refuse 127.0.0.0/8)",
  );
}
const HOST = hostAddress();

describe("control plane on a real API server", () => {
  let k8s: Cluster;
  let registry: TestRegistry;
  let catalog: Upstream;
  let catalogV2: Upstream;
  let meshApp: Upstream;
  let authority: CertificateAuthority;
  let serving: { cert: string; key: string };
  let server: { process: ChildProcess; log: string; admin: number; inbound: number };
  let controller: Controller | null = null;
  const proxies = {} as Record<RuntimeName, { process: ChildProcess; log: string; admin: number; outbound: number }>;
  let scratch: string;
  let apiPort: number;
  const filters: Record<string, { sha256: string; url: string }> = {};
  const log = createLogger({ component: "control-test" }, "warn");

  const kubectl = (args: string[], input?: string) => k8s.kubectl(args, input);
  const apply = (yaml: string) => kubectl(["apply", "-f", "-"], yaml);
  const wasmFilter = async () =>
    JSON.parse(await kubectl(["get", "wasmfilter", "rewrite", "-n", "shop", "-o", "json"])) as {
      status?: { ready?: string; sha256?: string; conditions?: { type: string; status: string; reason: string; message: string }[] };
    };
  const condition = async (type: string) => (await wasmFilter()).status?.conditions?.find((c) => c.type === type);
  const viaProxy = (runtime: RuntimeName = "node") => request(proxies[runtime].outbound, { path: "/", host: "catalog.shop" });

  const start = async () => {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(k8s.kubeconfig);
    // As weft control runs it: HTTPS with a certificate from its own CA, which also signs the
    // sidecars' certificates for their ServiceAccount tokens.
    controller = await startController({
      kubeConfig,
      log,
      address: "127.0.0.1",
      port: apiPort,
      tls: serving,
      insecureRegistries: [registry.host],
      caBundle: authority.trustBundle(),
      report: { namespace: "weft-system", replica: "test-replica" },
      routes: { [ENROLLMENT_PATH]: enrollmentHandler({ authority, reviewToken: kubernetesTokenReviewer({ kubeConfig }), log }) },
    });
    await controller.synced;
  };

  const startProxy = (
    runtime: RuntimeName,
    pod: string,
    tokenFile: string,
    ports: { admin: number; outbound: number; inbound: number },
  ) => {
    const command = RUNTIMES[runtime];
    const child = spawn(
      command[0]!,
      [
        ...command.slice(1),
        "proxy",
        "--control-plane",
        `https://127.0.0.1:${apiPort}`,
        "--ca-file",
        path.join(scratch, "ca.crt"),
        "--namespace",
        "shop",
        "--pod",
        pod,
        "--token-file",
        tokenFile,
        "--admin-address",
        "127.0.0.1",
        "--admin-port",
        String(ports.admin),
        "--outbound-port",
        String(ports.outbound),
        "--inbound-port",
        String(ports.inbound),
      ],
      { cwd: root, env: { ...process.env, WEFT_FILTER_CACHE: path.join(scratch, `filters-${pod}`) }, stdio: ["ignore", "ignore", "pipe"] },
    );
    const entry = { process: child, log: "" };
    child.stderr!.on("data", (d: Buffer) => (entry.log += d.toString()));
    return entry;
  };

  before(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), "weft-control-"));
    [k8s, registry, catalog, catalogV2, meshApp] = await Promise.all([
      startCluster({ controllerManager: false }),
      startRegistry(),
      startUpstream("catalog", 0, HOST),
      startUpstream("catalog-v2", 0, HOST),
      // The app of a pod with a sidecar: only its sidecar reaches it, on loopback.
      startUpstream("inventory"),
    ]);
    [apiPort] = (await freePorts(1)) as [number];
    authority = await openAuthority({ store: directoryStore(path.join(scratch, "ca")) });
    const cert = await authority.issueServing([], ["127.0.0.1"], 3600_000);
    serving = { cert: cert.certificateChain, key: cert.privateKey };
    await writeFile(path.join(scratch, "ca.crt"), authority.trustBundle());

    // Two versions of a marketplace filter, published to the registry as a user would.
    const client = new RegistryClient();
    for (const [tag, plugin] of [
      ["v1", "header-rewrite"],
      ["v2", "header-rewrite"],
    ] as const) {
      const built = await builtFilter(plugin);
      await client.pushWasm(`oci://${registry.host}/filters/header-rewrite:${tag}`, built.wasm, { plainHttp: true, annotations: {} });
      filters[tag] = { sha256: built.sha256, url: `oci://${registry.host}/filters/header-rewrite:${tag}` };
    }

    for (const file of await readdir(path.join(root, "deploy", "crds")))
      await kubectl(["apply", "-f", path.join(root, "deploy", "crds", file)]);
    await kubectl(["apply", "-f", await gatewayApiCrd("httproutes")]);
    await waitEstablished(kubectl, ["crd/wasmfilters.weft.dev"]);
    const [serverAdmin, serverOutbound, serverInbound] = (await freePorts(3)) as [number, number, number];
    await apply(`
${namespaceYaml("weft-system")}---
${namespaceYaml("shop", { "weft.dev/inject": "enabled" })}---
${serviceAccountYaml("shop", "web")}---
${serviceAccountYaml("shop", "inventory")}---
${podYaml({ namespace: "shop", name: "inventory-0", app: "inventory", serviceAccount: "inventory", port: meshApp.port, inMesh: true })}---
${Object.keys(RUNTIMES)
  .map((runtime) => podYaml({ namespace: "shop", name: `web-${runtime}`, app: "web", serviceAccount: "web", port: 8080 }))
  .join("---\n")}---
${serviceYaml({ namespace: "shop", name: "catalog", targetPort: catalog.port, address: HOST })}---
${serviceYaml({ namespace: "shop", name: "catalog-v2", targetPort: catalogV2.port, address: HOST })}---
# In a pod, weft init redirects the app port to the sidecar's inbound listener; here the
# endpoint names the inbound listener's port directly.
${serviceYaml({ namespace: "shop", name: "inventory", targetPort: meshApp.port, address: HOST, endpointPort: serverInbound, pod: "inventory-0" })}---
apiVersion: weft.dev/v1alpha1
kind: WasmFilter
metadata: { name: rewrite, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  url: ${filters.v1!.url}
  sha256: "${filters.v1!.sha256}"
  config:
    response:
      set: [{ name: x-filter-version, value: one }]
`);
    for (const sa of ["web", "inventory"]) await writeProxyToken(k8s, "shop", sa, path.join(scratch, `${sa}.token`));

    await start();
    for (const runtime of Object.keys(RUNTIMES) as RuntimeName[]) {
      const [admin, outbound, inbound] = (await freePorts(3)) as [number, number, number];
      proxies[runtime] = {
        ...startProxy(runtime, `web-${runtime}`, path.join(scratch, "web.token"), { admin, outbound, inbound }),
        admin,
        outbound,
      };
    }
    server = {
      ...startProxy("node", "inventory-0", path.join(scratch, "inventory.token"), {
        admin: serverAdmin,
        outbound: serverOutbound,
        inbound: serverInbound,
      }),
      admin: serverAdmin,
      inbound: serverInbound,
    };
  });

  after(async () => {
    for (const p of [...Object.values(proxies), server]) p?.process.kill("SIGTERM");
    await controller?.stop();
    await Promise.all([registry?.stop(), catalog?.close(), catalogV2?.close(), meshApp?.close(), k8s?.stop()]);
  });

  it("sidecars on Node, Deno and Bun, authenticated by a ServiceAccount token, get their configuration and filter, and route by Service name", async () => {
    for (const [runtime, p] of Object.entries(proxies) as [RuntimeName, (typeof proxies)[RuntimeName]][]) {
      await until(`the ${runtime} proxy to be ready`, async () => (await fetch(`http://127.0.0.1:${p.admin}/ready`)).status === 200).catch(
        (e: Error) => {
          throw new Error(`${e.message}\n${runtime} proxy log:\n${p.log}`);
        },
      );
      // Ready means a first configuration; the filter arrives once its module has been pulled.
      await until(`the ${runtime} proxy to run the filter`, async () => {
        const dump = (await (await fetch(`http://127.0.0.1:${p.admin}/config_dump`)).json()) as {
          filterStatus: { filter: string; ready: boolean }[];
        };
        return dump.filterStatus.some((f) => f.filter === "shop/rewrite" && f.ready);
      });
      const reply = await viaProxy(runtime);
      assert.equal(reply.status, 200, `${runtime}: ${reply.body}`);
      assert.equal(reply.body, "hello from catalog\n");
      assert.equal(reply.headers["x-filter-version"], "one", `${runtime}: the WasmFilter's config reached the filter`);
      const dump = (await (await fetch(`http://127.0.0.1:${p.admin}/config_dump`)).json()) as {
        filterStatus: { filter: string; sha256: string; ready: boolean }[];
      };
      assert.deepEqual(
        dump.filterStatus.map((f) => [f.filter, f.sha256, f.ready]),
        [["shop/rewrite", filters.v1!.sha256, true]],
        runtime,
      );
    }
  });

  it("carries a call between two sidecars over mTLS with certificates the control plane issued for their ServiceAccounts", async () => {
    await until(
      "the inventory sidecar to be ready",
      async () => (await fetch(`http://127.0.0.1:${server.admin}/ready`)).status === 200,
    ).catch((e: Error) => {
      throw new Error(`${e.message}\ninventory proxy log:\n${server.log}`);
    });
    for (const runtime of Object.keys(RUNTIMES) as RuntimeName[]) {
      const reply = await request(proxies[runtime].outbound, { path: "/echo", host: "inventory.shop" });
      assert.equal(reply.status, 200, `${runtime}: ${reply.body}`);
      const seen = JSON.parse(reply.body) as { headers: Record<string, string> };
      // Set by the inbound sidecar from the client certificate it verified.
      assert.equal(
        seen.headers["x-forwarded-client-cert"],
        "By=spiffe://cluster.local/ns/shop/sa/inventory;URI=spiffe://cluster.local/ns/shop/sa/web",
        runtime,
      );
    }
    const dump = (await (await fetch(`http://127.0.0.1:${proxies.node.admin}/config_dump`)).json()) as {
      clusters: { name: string; tls?: { identities: string[] } }[];
    };
    assert.deepEqual(dump.clusters.find((c) => c.name.includes("||inventory.shop."))?.tls?.identities, [
      "spiffe://cluster.local/ns/shop/sa/inventory",
    ]);
    // The mesh's root is where injected sidecars read it.
    const configMap = JSON.parse(await kubectl(["get", "configmap", "weft-ca-root", "-n", "shop", "-o", "json"])) as {
      data: Record<string, string>;
    };
    assert.equal(configMap.data["ca.crt"], authority.trustBundle());
  });

  it("follows an HTTPRoute attached to the Service: header and query matches, a 90/10 split, a header modifier, a redirect, a URL rewrite with a mirror, and a 500 for a filter weft does not do", async () => {
    await apply(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: catalog-canary, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: catalog, port: 80 }]
  rules:
    - matches: [{ headers: [{ name: x-canary, value: "yes" }] }, { queryParams: [{ name: canary, value: "yes" }] }]
      backendRefs: [{ name: catalog-v2, port: 80 }]
    - backendRefs:
        - { name: catalog, port: 80, weight: 90, filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: x-backend, value: v1 }] } }] }
        - { name: catalog-v2, port: 80, weight: 10 }
      filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: x-routed-by, value: catalog-canary }] } }]
    - matches: [{ path: { type: PathPrefix, value: /old } }]
      filters:
        - type: RequestRedirect
          requestRedirect: { hostname: shop.example, statusCode: 301, path: { type: ReplacePrefixMatch, replacePrefixMatch: /new } }
    - matches: [{ path: { type: PathPrefix, value: /legacy } }]
      filters:
        - type: URLRewrite
          urlRewrite: { hostname: catalog.internal, path: { type: ReplacePrefixMatch, replacePrefixMatch: /v2 } }
        - type: RequestMirror
          requestMirror: { backendRef: { name: catalog-v2, port: 80 } }
      backendRefs: [{ name: catalog, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /ext } }]
      filters: [{ type: ExtensionRef, extensionRef: { group: auth.example, kind: Check, name: strict } }]
      backendRefs: [{ name: catalog, port: 80 }]
`);
    await until(
      "the route to be in force",
      async () =>
        (await request(proxies.node.outbound, { path: "/", host: "catalog.shop", headers: { "x-canary": "yes" } })).body ===
        "hello from catalog-v2\n",
    );
    for (const runtime of Object.keys(RUNTIMES) as RuntimeName[]) {
      const canary = await request(proxies[runtime].outbound, { path: "/", host: "catalog.shop", headers: { "x-canary": "yes" } });
      assert.equal(canary.body, "hello from catalog-v2\n", runtime);
      const byQuery = await request(proxies[runtime].outbound, { path: "/?canary=yes", host: "catalog.shop" });
      assert.equal(byQuery.body, "hello from catalog-v2\n", runtime);
      const moved = await request(proxies[runtime].outbound, { path: "/old/tea?size=2", host: "catalog.shop" });
      assert.equal(moved.status, 301, runtime);
      assert.equal(moved.headers.location, "http://shop.example/new/tea?size=2", runtime);
      const mirrored = catalogV2.received.length;
      const rewritten = await request(proxies[runtime].outbound, { path: "/legacy/tea?size=2", host: "catalog.shop" });
      assert.equal(rewritten.body, "hello from catalog\n", runtime);
      assert.equal(catalog.received.at(-1)?.url, "/v2/tea?size=2", `${runtime}: URLRewrite's path`);
      assert.equal(catalog.received.at(-1)?.headers.host, "catalog.internal", `${runtime}: URLRewrite's hostname`);
      const copy = await until(
        `${runtime}: the RequestMirror's copy`,
        async () => catalogV2.received.slice(mirrored).find((r) => r.url === "/v2/tea?size=2") ?? null,
      );
      assert.equal(copy.headers.host, "catalog.internal-shadow", runtime);
      // a filter weft does not do is never skipped: its rule answers 500 and says why
      const extension = await request(proxies[runtime].outbound, { path: "/ext/tea", host: "catalog.shop" });
      assert.equal(extension.status, 500, runtime);
      assert.match(String(extension.headers["x-weft-error"]), /asks for what weft does not do: filter ExtensionRef/, runtime);
    }
    const before = catalog.received.length;
    const counts = { catalog: 0, "catalog-v2": 0 } as Record<string, number>;
    const N = 400;
    for (let i = 0; i < N; i++) {
      const r = await viaProxy();
      assert.equal(r.status, 200);
      counts[String(r.headers["x-upstream"])]!++;
    }
    // 10% of 400 is 40; the bounds hold with probability > 0.9999 for a fair 90/10 split.
    assert.ok(counts["catalog-v2"]! >= 15 && counts["catalog-v2"]! <= 70, JSON.stringify(counts));
    assert.equal(catalog.received.at(-1)?.headers["x-routed-by"], "catalog-canary", "the rule's request header modifier");
    assert.equal(catalog.received.at(-1)?.headers["x-backend"], "v1", "the backendRef's own request header modifier");
    assert.ok(
      catalogV2.received.slice(-20).every((r) => r.headers["x-backend"] === undefined),
      "only the backend whose backendRef carries it",
    );
    assert.ok(catalog.received.length > before);
    const status = JSON.parse(await kubectl(["get", "httproute", "catalog-canary", "-n", "shop", "-o", "json"])) as {
      status: { parents: { conditions: { type: string; status: string; reason: string; message: string }[] }[] };
    };
    const partial = status.status.parents[0]!.conditions.find((c) => c.type === "PartiallyInvalid");
    assert.equal(partial?.status, "True", JSON.stringify(status.status));
    assert.equal(partial?.reason, "UnsupportedValue");
    assert.match(partial!.message, /weft does not do rules\[4\]: filter ExtensionRef: requests those rules match get 500/);
  });

  it("kubectl shows the WasmFilter Accepted, Resolved to its digest, and Ready on 3 of 3 proxies", async () => {
    const status = await until("Ready=True", async () => {
      const s = (await wasmFilter()).status;
      return s?.conditions?.find((c) => c.type === "Ready")?.status === "True" ? s : null;
    });
    assert.equal(status.ready, "3/3");
    assert.equal(status.sha256, filters.v1!.sha256);
    const byType = Object.fromEntries((status.conditions ?? []).map((c) => [c.type, c]));
    assert.equal(byType.Accepted?.status, "True");
    assert.equal(byType.Resolved?.status, "True");
    assert.match(byType.Resolved!.message, new RegExp(`sha256:${filters.v1!.sha256} from oci://`));
    const table = await kubectl(["get", "wasmfilters", "-n", "shop"]);
    assert.match(table, /rewrite\s.*3\/3/, table);
  });

  it("weft status lists every sidecar with the version it runs and its filters, and the WasmFilter", async () => {
    const out = await until("weft status to show the four sidecars running", async () => {
      const text = await weftStatus(k8s);
      return (text.match(/ running /g) ?? []).length === 4 ? text : null;
    });
    const sha = filters.v1!.sha256.slice(0, 12);
    for (const runtime of Object.keys(RUNTIMES)) {
      assert.match(out, new RegExp(`^shop/web-${runtime}\\s+[0-9a-f]{16}\\s+running\\s+shop/rewrite@${sha}\\s+test-replica$`, "m"), out);
    }
    assert.match(out, /^shop\/inventory-0\s+[0-9a-f]{16}\s+running\s+-\s+test-replica$/m, out);
    assert.match(out, new RegExp(`^shop/rewrite\\s+True\\s+3/3\\s+${sha}`, "m"), out);
  });

  it("swaps the filter's config under load with no failed request", async () => {
    let sent = 0;
    let failed = 0;
    const seen = new Set<string>();
    let stop = false;
    const load = (async () => {
      // Bounded: at most 2,000 requests or until the change has been seen.
      while (!stop && sent < 2000) {
        sent++;
        const r = await viaProxy().catch(() => null);
        if (r?.status !== 200) failed++;
        else seen.add(String(r.headers["x-filter-version"]));
      }
    })();
    await sleep(200);
    await kubectl([
      "patch",
      "wasmfilter",
      "rewrite",
      "-n",
      "shop",
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { config: { response: { set: [{ name: "x-filter-version", value: "two" }] } } } }),
    ]);
    await until("the new config to answer", async () => seen.has("two"));
    stop = true;
    await load;
    assert.equal(failed, 0, `${failed} of ${sent} requests failed during the swap`);
    assert.ok(seen.has("one") && seen.has("two"), `saw ${[...seen].join(", ")}`);
  });

  it("a wrong sha256 is reported as DigestMismatch and changes nothing else", async () => {
    await kubectl([
      "patch",
      "wasmfilter",
      "rewrite",
      "-n",
      "shop",
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { url: filters.v2!.url, sha256: "0".repeat(64) } }),
    ]);
    const resolved = await until("Resolved=False", async () => {
      const c = await condition("Resolved");
      return c?.status === "False" ? c : null;
    });
    assert.equal(resolved.reason, "DigestMismatch");
    assert.match(resolved.message, /not the 0{64} the WasmFilter pins/);
    const reply = await viaProxy();
    assert.equal(reply.status, 200);
    assert.equal(reply.headers["x-filter-version"], "two", "the proxy keeps the last good module and config");
  });

  it("an unreachable registry is reported as PullFailed and changes nothing else", async () => {
    await kubectl([
      "patch",
      "wasmfilter",
      "rewrite",
      "-n",
      "shop",
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { url: `oci://127.0.0.1:${(await freePorts(1))[0]}/filters/none:v1`, sha256: filters.v1!.sha256 } }),
    ]);
    const resolved = await until("Resolved=False PullFailed", async () => {
      const c = await condition("Resolved");
      return c?.reason === "PullFailed" ? c : null;
    });
    assert.match(resolved.message, /connection refused|ECONNREFUSED/i);
    assert.equal((await viaProxy()).status, 200);
  });

  it("killing the control plane leaves the proxies serving; a new one resyncs", async () => {
    await controller!.stop();
    controller = null;
    for (const runtime of Object.keys(RUNTIMES) as RuntimeName[]) {
      for (let i = 0; i < 10; i++)
        assert.equal((await viaProxy(runtime)).status, 200, `${runtime}: served while the control plane is down`);
    }
    await start();
    // The proxies reconnect with the version they run; the status comes back as Ready 3/3.
    await kubectl([
      "patch",
      "wasmfilter",
      "rewrite",
      "-n",
      "shop",
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { url: filters.v2!.url, sha256: filters.v2!.sha256 } }),
    ]);
    const status = await until(
      "Ready 3/3 after the restart",
      async () => {
        const s = (await wasmFilter()).status;
        return s?.ready === "3/3" && s.conditions?.find((c) => c.type === "Resolved")?.status === "True" ? s : null;
      },
      30_000,
    );
    assert.equal(status.sha256, filters.v2!.sha256);
    assert.equal((await viaProxy()).headers["x-filter-version"], "two");
  });
});
