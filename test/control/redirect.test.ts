// runtimes: node
// needs: k8s
// The whole way for an app that knows nothing of the mesh: a Pod applied to a real
// kube-apiserver is injected by the control plane's webhook; the injected weft-init runs in a
// network namespace made for the test (the "pod"), and the injected sidecar runs there as its
// UID with the injected environment; the app then sends plain HTTP to a Service name, and the
// request leaves through its sidecar over mTLS to the Service's sidecar, which sees the app's
// SPIFFE ID. Inbound, a plaintext caller on the app's port reaches the app through the sidecar.
// Deviations from a real node, each because there is no kubelet or cluster DNS here: the
// control plane's address (the injected one names its Service), and the token and CA files
// (the kubelet would project them at the injected paths).
// Needs root, iproute2, iptables, setpriv and curl (.ci/run installs them).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { chmod, chown, mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { startCluster, freePorts, type Cluster } from "../k8s/cluster.ts";
import { startUpstream, type Upstream } from "../support/upstream.ts";
import { namespaceYaml, serviceAccountYaml, serviceYaml } from "../support/service.ts";
import { writeProxyToken } from "../support/control-process.ts";
import { startMeshControl } from "../support/mesh-control.ts";
import { startRegistry, type TestRegistry } from "../support/registry.ts";
import { builtFilter } from "../../sdk/build/cache.ts";
import { RegistryClient } from "../../shared/oci-registry.ts";
import type { Controller } from "../../control/controller.ts";
import { injectorWebhookConfiguration, WEBHOOK_PATH } from "../../control/inject/manifest.ts";
import { injectionWebhook } from "../../control/inject/webhook.ts";
import { createLogger } from "../../shared/log.ts";

const ROOT = path.resolve(import.meta.dirname ?? ".", "..", "..");
const NODE = path.join(ROOT, "node_modules", ".bin", "node");
const TAG = String(process.pid % 100000);
const POD_NS = `weft-rp-${TAG}`;
const HOST_LINK = `wrh${TAG}`;
const POD_LINK = `wrp${TAG}`;
const HOST_IP = "10.79.0.1";
const POD_IP = "10.79.0.2";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function run(
  command: string,
  args: string[],
  timeout = 15_000,
): Promise<{ code: number; stdout: string; stderr: string; missing: boolean }> {
  return new Promise((resolve) =>
    execFile(command, args, { cwd: ROOT, timeout, encoding: "utf8" }, (e, stdout, stderr) => {
      const err = e as (NodeJS.ErrnoException & { code?: unknown }) | null;
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr, missing: err?.code === "ENOENT" });
    }),
  );
}
async function must(command: string, ...args: string[]): Promise<string> {
  const r = await run(command, args);
  if (r.code !== 0) throw new Error(`${command} ${args.join(" ")} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}
const inPod = (...args: string[]) => ["netns", "exec", POD_NS, ...args];

async function preflight(): Promise<void> {
  const missing: string[] = [];
  for (const [tool, pkg] of [
    ["ip", "iproute2"],
    ["iptables-restore", "iptables"],
    ["setpriv", "util-linux"],
    ["curl", "curl"],
  ] as const) {
    if ((await run(tool, ["--version"])).missing && (await run(tool, ["-V"])).missing) missing.push(`${tool} (Debian package ${pkg})`);
  }
  if (missing.length > 0)
    throw new Error(`this suite needs ${missing.join(", ")}: apt-get install -y iproute2 iptables util-linux curl (.ci/run installs them)`);
  if (process.getuid?.() !== 0)
    throw new Error("this suite makes a network namespace and iptables rules in it: run it as root (in a container or VM)");
}

type Json = Record<string, any>;

describe("an app in a pod's network namespace, injected by the webhook, reaches a Service over mTLS through its sidecar", () => {
  let k8s: Cluster;
  let controller: Controller;
  let inventory: Upstream;
  let registry: TestRegistry;
  let scratch: string;
  const children: { name: string; child: ChildProcess; log: string }[] = [];
  const log = createLogger({ component: "redirect-test" }, "warn");

  const spawnLogged = (name: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env) => {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    const entry = { name, child, log: "" };
    child.stdout!.on("data", (d: Buffer) => (entry.log += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (entry.log += d.toString()));
    children.push(entry);
    return entry;
  };
  const logs = () => children.map((c) => `--- ${c.name}\n${c.log.slice(-3000)}`).join("\n");

  before(async () => {
    await preflight();
    scratch = await mkdtemp(path.join(tmpdir(), "weft-redirect-"));
    await chmod(scratch, 0o755);

    // The pod's network: a namespace joined to this one by a veth pair.
    await must("ip", "netns", "add", POD_NS);
    await must("ip", "link", "add", HOST_LINK, "type", "veth", "peer", "name", POD_LINK);
    await must("ip", "link", "set", POD_LINK, "netns", POD_NS);
    await must("ip", "addr", "add", `${HOST_IP}/24`, "dev", HOST_LINK);
    await must("ip", "link", "set", HOST_LINK, "up");
    await must("ip", ...inPod("ip", "addr", "add", `${POD_IP}/24`, "dev", POD_LINK));
    await must("ip", ...inPod("ip", "link", "set", POD_LINK, "up"));
    await must("ip", ...inPod("ip", "link", "set", "lo", "up"));
    await must("ip", ...inPod("ip", "route", "add", "default", "via", HOST_IP));

    [k8s, inventory, registry] = await Promise.all([
      startCluster({ controllerManager: false }),
      startUpstream("inventory"),
      startRegistry(),
    ]);
    const filter = await builtFilter("header-rewrite");
    const filterUrl = `oci://${registry.host}/filters/header-rewrite:1.0.0`;
    await new RegistryClient().pushWasm(filterUrl, filter.wasm, { plainHttp: true, annotations: {} });
    for (const file of ["weft.dev_wasmfilters.yaml", "weft.dev_trafficpolicies.yaml", "weft.dev_accesspolicies.yaml"])
      await k8s.kubectl(["apply", "-f", path.join(ROOT, "deploy", "crds", file)]);

    // The control plane as weft control runs it: its CA, HTTPS, enrollment and the webhook; on
    // every address, for the pod on the other side of the veth.
    const control = await startMeshControl(k8s, scratch, {
      log,
      address: "0.0.0.0",
      servingIps: [HOST_IP],
      insecureRegistries: [registry.host],
      routes: { [WEBHOOK_PATH]: injectionWebhook({ log }) },
    });
    controller = control.controller;
    const { authority, port: apiPort } = control;
    const webhook = injectorWebhookConfiguration({
      caBundle: authority.trustBundle(),
      target: { url: `https://127.0.0.1:${apiPort}${WEBHOOK_PATH}` },
    });
    await k8s.kubectl(["apply", "-f", "-"], JSON.stringify(webhook));

    // The inventory workload's sidecar runs on this side of the veth, its app on loopback.
    const [invAdmin, invOutbound, invInbound] = (await freePorts(3)) as [number, number, number];
    await k8s.kubectl(
      ["apply", "-f", "-"],
      `${namespaceYaml("shop", { "weft.dev/inject": "enabled" })}---
${serviceAccountYaml("shop", "web")}---
${serviceAccountYaml("shop", "inventory")}`,
    );
    await k8s.kubectl(
      ["apply", "-f", "-"],
      `apiVersion: v1
kind: Pod
# A pod whose sidecar runs by hand, on this side of the veth without redirection: its status
# annotation says it has a sidecar (so callers speak mTLS to it) and the webhook leaves it alone;
# without weft-init's flags it gets the one inbound listener, moved to --inbound-port, which the
# endpoint names directly (control/mesh/world.ts, PodInfo.capture).
metadata: { name: inventory-0, namespace: shop, labels: { app: inventory }, annotations: { weft.dev/status: '{"version":"by hand"}' } }
spec:
  serviceAccountName: inventory
  containers: [{ name: app, image: example.com/inventory:1, ports: [{ containerPort: ${inventory.port} }] }]
---
${serviceYaml({ namespace: "shop", name: "inventory", targetPort: inventory.port, address: HOST_IP, endpointPort: invInbound, pod: "inventory-0", clusterIP: "10.0.0.77" })}---
apiVersion: weft.dev/v1alpha1
kind: WasmFilter
metadata: { name: tag-calls, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  url: ${filterUrl}
  sha256: "${filter.sha256}"
  config: { request: { set: [{ name: x-called-by, value: "{{source.principal}}" }] } }
---
apiVersion: v1
kind: Pod
metadata: { name: web-0, namespace: shop, labels: { app: web } }
spec:
  serviceAccountName: web
  containers: [{ name: app, image: example.com/web:1, ports: [{ containerPort: 8080 }] }]
`,
    );
    const tokens = path.join(scratch, "tokens");
    await mkdir(tokens, { recursive: true, mode: 0o755 });
    for (const sa of ["web", "inventory"]) {
      const file = path.join(tokens, sa);
      await writeProxyToken(k8s, "shop", sa, file);
      await chmod(file, 0o644);
    }
    const caFile = path.join(tokens, "ca.crt");
    await writeFile(caFile, authority.trustBundle());
    await chmod(caFile, 0o644);
    spawnLogged("inventory sidecar", NODE, [
      "bin/weft.ts",
      "proxy",
      "--control-plane",
      `https://127.0.0.1:${apiPort}`,
      "--ca-file",
      caFile,
      "--namespace",
      "shop",
      "--pod",
      "inventory-0",
      "--token-file",
      path.join(tokens, "inventory"),
      "--admin-address",
      "127.0.0.1",
      "--admin-port",
      String(invAdmin),
      "--outbound-port",
      String(invOutbound),
      "--inbound-port",
      String(invInbound),
    ]);

    // The web pod as the API server stored it: what the webhook injected is what runs.
    const pod = JSON.parse(await k8s.kubectl(["get", "pod", "web-0", "-n", "shop", "-o", "json"])) as Json;
    const init = (pod.spec.initContainers as Json[]).find((c) => c.name === "weft-init");
    const sidecar = (pod.spec.initContainers as Json[]).find((c) => c.name === "weft-proxy");
    assert.ok(init && sidecar, `the webhook injected weft-init and weft-proxy: ${JSON.stringify(pod.spec.initContainers)}`);
    const initRun = await run("ip", inPod(NODE, "bin/weft.ts", ...(init.args as string[])));
    assert.equal(initRun.code, 0, `weft ${init.args.join(" ")}: ${initRun.stderr}`);

    const fields: Record<string, string> = { "metadata.name": "web-0", "metadata.namespace": "shop", "spec.serviceAccountName": "web" };
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: scratch };
    for (const e of sidecar.env as Json[]) env[e.name] = e.value ?? fields[e.valueFrom.fieldRef.fieldPath];
    Object.assign(env, {
      WEFT_CONTROL_PLANE: `https://${HOST_IP}:${apiPort}`,
      WEFT_TOKEN_FILE: path.join(tokens, "web"),
      WEFT_CA_FILE: caFile,
      WEFT_FILTER_CACHE: path.join(scratch, "filters"),
    });
    await mkdir(env.WEFT_FILTER_CACHE!, { recursive: true });
    const uid = sidecar.securityContext.runAsUser as number;
    await chown(env.WEFT_FILTER_CACHE!, uid, uid);
    spawnLogged(
      "web sidecar (in the pod, as its UID)",
      "ip",
      inPod("setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", NODE, "bin/weft.ts", ...(sidecar.args as string[])),
      env,
    );
    // The web app itself, on its container port, knowing nothing of the mesh.
    spawnLogged(
      "web app",
      "ip",
      inPod(
        NODE,
        "-e",
        `require("node:http").createServer((q, s) => s.end(JSON.stringify({ app: "web", xfcc: q.headers["x-forwarded-client-cert"] ?? null }))).listen(8080)`,
      ),
    );

    for (let i = 0; i < 300; i++) {
      const ready = await run(
        "ip",
        inPod("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", `http://127.0.0.1:${env.WEFT_ADMIN_PORT}/ready`),
      );
      if (ready.stdout === "200") break;
      await sleep(100);
    }
    // Ready means a first configuration; the WasmFilter comes in a later one once its module
    // has been pulled from the registry.
    for (let i = 0; i < 300; i++) {
      const dump = await run("ip", inPod("curl", "-s", `http://127.0.0.1:${env.WEFT_ADMIN_PORT}/config_dump`));
      const status = dump.code === 0 && dump.stdout.startsWith("{") ? (JSON.parse(dump.stdout) as Json).filterStatus : [];
      if ((status as Json[]).some((f) => f.filter === "shop/tag-calls" && f.ready)) return;
      await sleep(100);
    }
    throw new Error(`the injected sidecar did not get ready with its WasmFilter in 60 s\n${logs()}`);
  });

  after(async () => {
    // Teardown, not a claim: no drain (test/lifecycle.test.ts covers draining).
    for (const c of children) c.child.kill("SIGKILL");
    await controller?.stop();
    await Promise.all([inventory?.close(), registry?.stop(), k8s?.stop()]);
    await run("ip", ["link", "del", HOST_LINK]);
    await run("ip", ["netns", "del", POD_NS]);
  });

  it("plain HTTP from the app to a Service name leaves through the sidecar over mTLS", async () => {
    // Any address on port 80: the redirect sends it to the sidecar, which routes by Host.
    const r = await run("ip", inPod("curl", "-sS", "--max-time", "5", "-H", "Host: inventory.shop", "http://10.0.0.77/echo"));
    assert.equal(r.code, 0, `curl: ${r.stderr}\n${logs()}`);
    if (!r.stdout.startsWith("{")) throw new Error(`not the upstream echo: ${r.stdout}\n${logs()}`);
    const seen = JSON.parse(r.stdout) as { url: string; headers: Record<string, string> };
    assert.equal(seen.url, "/echo");
    // The inventory sidecar verified the web sidecar's certificate: its SPIFFE ID is the app's identity.
    assert.equal(
      seen.headers["x-forwarded-client-cert"],
      "By=spiffe://cluster.local/ns/shop/sa/inventory;URI=spiffe://cluster.local/ns/shop/sa/web",
    );
    // The WasmFilter that selects the web pod ran in its sidecar (outbound: the source is the sidecar's own identity).
    assert.equal(seen.headers["x-called-by"], "spiffe://cluster.local/ns/shop/sa/web");
  });

  it("kubectl shows the WasmFilter Ready on the one proxy it selects", async () => {
    let ready = "";
    for (let i = 0; i < 100 && ready !== "True 1/1"; i++) {
      const f = JSON.parse(await k8s.kubectl(["get", "wasmfilter", "tag-calls", "-n", "shop", "-o", "json"])) as Json;
      ready = `${(f.status?.conditions as Json[] | undefined)?.find((c) => c.type === "Ready")?.status} ${f.status?.ready}`;
      if (ready !== "True 1/1") await sleep(100);
    }
    assert.equal(ready, "True 1/1");
    assert.match(await k8s.kubectl(["get", "wasmfilters", "-n", "shop"]), /tag-calls\s.*1\/1/);
  });

  it("a plaintext caller on the app's port reaches the app through the sidecar's inbound listener", async () => {
    const reply = await must("curl", "-sS", "--max-time", "5", `http://${POD_IP}:8080/`);
    const body = JSON.parse(reply) as { app: string; xfcc: string | null };
    assert.equal(body.app, "web");
    // The inbound sidecar removes what a plaintext caller claims about identity; its metrics show the request.
    assert.equal(body.xfcc, null);
    const metrics = (await run("ip", inPod("curl", "-s", "http://127.0.0.1:15000/metrics"))).stdout;
    assert.match(metrics, /istio_requests_total\{[^}]*reporter="destination"[^}]*\} [1-9]/, "the inbound listener carried the request");
  });
});
