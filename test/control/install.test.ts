// runtimes: node
// needs: k8s helm
// `weft install | kubectl apply -f -` on a real API server: everything applies (twice, the
// second time unchanged), the API server then refuses invalid WasmFilters with a readable
// message, and the control plane, running with nothing but its own ServiceAccount's token,
// can do its job: list and watch what it needs and write WasmFilter status.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { startCluster, freePorts, waitEstablished, type Cluster } from "../k8s/cluster.ts";
import { helmBinary } from "../k8s/helm.ts";
import { loadAll } from "js-yaml";
import { startController, type Controller } from "../../control/controller.ts";
import { createLogger } from "../../shared/log.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..", "..");
const weft = (args: string[]) =>
  new Promise<string>((resolve, reject) =>
    execFile(
      path.join(root, "node_modules", ".bin", "node"),
      ["bin/weft.ts", ...args],
      { cwd: root, encoding: "utf8" },
      (e, stdout, stderr) => (e ? reject(new Error(`weft ${args.join(" ")}: ${stderr || e.message}`)) : resolve(stdout)),
    ),
  );
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("weft install", () => {
  let k8s: Cluster;
  let manifests: string;

  before(async () => {
    [k8s, manifests] = await Promise.all([startCluster({ controllerManager: false }), weft(["install", "--replicas", "1"])]);
  });
  after(async () => {
    await k8s?.stop();
  });

  it("applies with kubectl, and again with nothing changed", async () => {
    const first = await k8s.kubectl(["apply", "-f", "-"], manifests);
    for (const kind of [
      "customresourcedefinition.apiextensions.k8s.io/wasmfilters.weft.dev",
      "namespace/weft-system",
      "deployment.apps/weft-control",
      "mutatingwebhookconfiguration.admissionregistration.k8s.io/weft-sidecar-injector",
    ]) {
      assert.match(first, new RegExp(`${kind.replaceAll(".", "\\.")} created`), first);
    }
    const second = await k8s.kubectl(["apply", "-f", "-"], manifests);
    assert.doesNotMatch(second, /created|configured/, second);
  });

  it("runs the control plane, which holds the CA key, with Node's SIGUSR1 inspector switched off", async () => {
    const options = await k8s.kubectl([
      "get",
      "deployment/weft-control",
      "-n",
      "weft-system",
      "-o",
      'jsonpath={.spec.template.spec.containers[0].env[?(@.name=="NODE_OPTIONS")].value}',
    ]);
    assert.match(options, /(^| )--disable-sigusr1( |$)/, `NODE_OPTIONS is "${options}"`);
  });

  it("has a Helm chart that renders the same objects as weft install (helm lint and helm template)", async () => {
    const helm = await helmBinary();
    const run = (args: string[]) =>
      new Promise<string>((resolve, reject) =>
        execFile(helm, args, { cwd: root, encoding: "utf8" }, (e, stdout, stderr) =>
          e ? reject(new Error(`helm ${args.join(" ")}: ${stderr || e.message}`)) : resolve(stdout),
        ),
      );
    await run(["lint", "deploy/helm/weft", "--strict"]);
    const values = ["--set", "image=example.com/weft:1", "--set", "replicas=3", "--set", "insecureRegistries={registry.local:5000}"];
    const rendered = await run(["template", "weft", "deploy/helm/weft", "--namespace", "mesh", "--include-crds", ...values]);
    const cli = await weft([
      "install",
      "--namespace",
      "mesh",
      "--image",
      "example.com/weft:1",
      "--replicas",
      "3",
      "--insecure-registries",
      "registry.local:5000",
    ]);
    const objects = (text: string) =>
      (loadAll(text) as ({ kind: string; metadata: { name: string } } | null)[])
        .filter((o): o is { kind: string; metadata: { name: string } } => o !== null && o.kind !== "Namespace")
        .sort((a, b) => `${a.kind}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.name}`));
    const fromHelm = objects(rendered);
    assert.ok(fromHelm.length >= 10, rendered);
    assert.deepEqual(fromHelm, objects(cli));
  });

  it("refuses an invalid WasmFilter with a message that names each field and the allowed values", async () => {
    await waitEstablished(k8s.kubectl, ["crd/wasmfilters.weft.dev"]);
    const refusal = (spec: string) =>
      k8s
        .kubectl(
          ["apply", "-f", "-"],
          `apiVersion: weft.dev/v1alpha1
kind: WasmFilter
metadata: { name: bad, namespace: default }
spec:
${spec}
`,
        )
        .then(
          () => assert.fail("the API server stored an invalid WasmFilter"),
          (e: Error) => e.message,
        );
    // The schema's own checks first; the API server runs the rules (the url's message) only
    // on an object that passed them, so each mistake is shown on its own.
    const strategy = await refusal("  url: oci://registry.example.com/f:1\n  failStrategy: Sometimes");
    assert.match(
      strategy,
      /spec\.failStrategy: Unsupported value: "Sometimes": supported values: "FailClose", "FailOpen", "FailReload"/,
      strategy,
    );
    const url = await refusal("  url: http://example.com/filter.wasm");
    assert.match(
      url,
      /spec\.url: Invalid value: "http:\/\/example\.com\/filter\.wasm": must be oci:\/\/REGISTRY\/REPO:TAG, https:\/\/\.\.\., file:\/\/\.\.\. or marketplace:\/\/NAME@VERSION/,
      url,
    );
  });

  it("gives the control plane's ServiceAccount exactly what it needs", async () => {
    const as = "--as=system:serviceaccount:weft-system:weft-control";
    const can = (verb: string, resource: string, ...extra: string[]) =>
      k8s.kubectl(["auth", "can-i", verb, resource, as, ...extra]).then(
        (o) => o.trim(),
        () => "no",
      );
    assert.equal(await can("watch", "pods", "-A"), "yes");
    assert.equal(await can("watch", "endpointslices.discovery.k8s.io", "-A"), "yes");
    assert.equal(await can("patch", "wasmfilters.weft.dev", "--subresource=status", "-n", "shop"), "yes");
    assert.equal(await can("update", "wasmfilters.weft.dev", "-n", "shop"), "no", "it writes status, never a user's spec");
    assert.equal(await can("create", "tokenreviews.authentication.k8s.io"), "yes");
    assert.equal(await can("create", "secrets", "-n", "weft-system"), "yes");
    assert.equal(await can("create", "secrets", "-n", "default"), "no", "it creates Secrets only in its own namespace");
    assert.equal(await can("delete", "pods", "-A"), "no");
    assert.equal(await can("patch", "mutatingwebhookconfigurations/other"), "no", "it patches its own webhook only");
  });

  it("runs two control plane replicas with their own token: one leads and writes WasmFilter status, the other takes over", async () => {
    const token = (await k8s.kubectl(["create", "token", "weft-control", "-n", "weft-system", "--duration", "1h"])).trim();
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromOptions({
      clusters: [{ name: "test", server: k8s.server, caData: Buffer.from(k8s.ca).toString("base64") }],
      users: [{ name: "weft-control", token }],
      contexts: [{ name: "test", cluster: "test", user: "weft-control" }],
      currentContext: "test",
    });
    await k8s.kubectl(
      ["apply", "-f", "-"],
      `apiVersion: weft.dev/v1alpha1
kind: WasmFilter
metadata: { name: unreachable, namespace: default }
spec:
  url: oci://127.0.0.1:${(await freePorts(1))[0]}/filters/none:v1
`,
    );
    const ports = (await freePorts(2)) as [number, number];
    const replicas: Controller[] = [];
    try {
      // Two replicas, as weft install runs them: one Lease picks the one that writes status.
      for (const [i, identity] of ["replica-a", "replica-b"].entries()) {
        const c = await startController({
          kubeConfig,
          log: createLogger({}, "error"),
          address: "127.0.0.1",
          port: ports[i]!,
          leaderElection: { namespace: "weft-system", identity, leaseSeconds: 2 },
        });
        replicas.push(c);
        await c.synced;
      }
      const leaders = async () => {
        for (let i = 0; i < 100; i++) {
          const now = replicas.filter((r) => r.leading());
          if (now.length === 1) return now;
          await sleep(100);
        }
        return replicas.filter((r) => r.leading());
      };
      const [first] = await leaders();
      assert.ok(first, "one replica leads");
      let resolved: { status: string; reason: string } | undefined;
      for (let i = 0; i < 100 && resolved?.reason !== "PullFailed"; i++) {
        const filter = JSON.parse(await k8s.kubectl(["get", "wasmfilter", "unreachable", "-n", "default", "-o", "json"])) as {
          status?: { conditions?: { type: string; status: string; reason: string }[] };
        };
        resolved = filter.status?.conditions?.find((c) => c.type === "Resolved");
        await sleep(100);
      }
      assert.deepEqual(resolved && { status: resolved.status, reason: resolved.reason }, { status: "False", reason: "PullFailed" });
      // The leader goes away (handing the Lease back): the other replica takes over.
      await first.stop();
      replicas.splice(replicas.indexOf(first), 1);
      const [next] = await leaders();
      assert.ok(next?.leading(), "the remaining replica leads");
      const lease = JSON.parse(await k8s.kubectl(["get", "lease", "weft-control", "-n", "weft-system", "-o", "json"])) as {
        spec: { leaseTransitions: number };
      };
      assert.ok(lease.spec.leaseTransitions >= 1, JSON.stringify(lease.spec));
    } finally {
      for (const r of replicas) await r.stop();
    }
  });
});
