// runtimes: node
// needs: k8s
// The shop demo as plain Kubernetes objects (examples/shop/Kustomization, examples/shop/k8s/):
// `kubectl apply -k examples/shop` on a real API server with weft's CRDs and Gateway API's
// HTTPRoute CRD, as a user does once weft is installed. Checks that every object is created as
// the docs say (the Namespace labelled for injection, ServiceAccounts, Deployments with their
// labels, image, ports and probes, Services selecting them), that the Services, WasmFilters,
// HTTPRoute and AccessPolicy are the very ones `weft up` reads from examples/shop, that a second
// apply changes nothing, that `--dry-run=server` passes, and that the image is overridden in
// one place (a kustomize overlay's `images:`).
//
// test/k8s/cluster.ts runs no kubelet here, so no pod starts: this checks the manifests, not the
// running shop. The end-to-end run (pods with sidecars, the 429, the canary, the 403) belongs to
// a test on a real node (test/k8s/node.ts), still to be written.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { loadAll } from "js-yaml";
import { startCluster, waitEstablished, type Cluster } from "../k8s/cluster.ts";
import { gatewayApiCrd } from "../k8s/gateway-api.ts";
import { applyCrds } from "../support/control-process.ts";
import { readDirectory } from "../../control/local/directory.ts";
import { injectPod } from "../../control/inject/patch.ts";
import { inboundCapture } from "../../control/kubernetes/convert.ts";
import { capturesPort } from "../../control/mesh/world.ts";
import { DEFAULT_SETTINGS } from "../../control/inject/settings.ts";

const ROOT = path.resolve(import.meta.dirname ?? ".", "..", "..");
const SHOP = path.join(ROOT, "examples", "shop");
const IMAGE = "ghcr.io/weft-dev/weft-shop:0.1.0";
/** The files weft up reads that the cluster gets as they are. */
const SHARED = ["services.yaml", "filters.yaml", "canary.yaml", "access-policy.yaml"];

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  [key: string]: unknown;
}
interface Container {
  name: string;
  image: string;
  command: string[];
  env?: { name: string; value: string }[];
  ports: { name: string; containerPort: number; protocol: string }[];
  readinessProbe: Record<string, unknown>;
  livenessProbe: Record<string, unknown>;
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext: Record<string, unknown>;
}
interface Deployment extends Obj {
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: { serviceAccountName: string; containers: Container[] } };
  };
}

const key = (o: Obj) => `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;
const docs = (text: string) => (loadAll(text) as (Obj | null)[]).filter((o): o is Obj => o !== null);
const readDocs = async (file: string) => docs(await readFile(path.join(SHOP, file), "utf8"));

/** Every field `expected` has, `actual` has with the same value (the API server adds defaults). */
function assertContains(actual: unknown, expected: unknown, where: string): void {
  if (expected !== null && typeof expected === "object" && !Array.isArray(expected)) {
    assert.ok(
      actual !== null && typeof actual === "object" && !Array.isArray(actual),
      `${where}: expected an object, got ${JSON.stringify(actual)}`,
    );
    for (const [k, v] of Object.entries(expected)) assertContains((actual as Record<string, unknown>)[k], v, `${where}.${k}`);
  } else if (Array.isArray(expected)) {
    assert.ok(
      Array.isArray(actual) && actual.length === expected.length,
      `${where}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`,
    );
    expected.forEach((v, i) => assertContains(actual[i], v, `${where}[${i}]`));
  } else {
    assert.deepEqual(actual, expected, where);
  }
}

// The workloads as workloads.yaml (local mode) has them: name, labels, ServiceAccount, env.
const WORKLOADS = [
  { name: "frontend", labels: { app: "frontend" }, serviceAccount: "frontend", script: "frontend", env: undefined },
  {
    name: "catalog-v1",
    labels: { app: "catalog", version: "v1" },
    serviceAccount: "catalog",
    script: "catalog",
    env: [{ name: "VERSION", value: "v1" }],
  },
  {
    name: "catalog-v2",
    labels: { app: "catalog", version: "v2" },
    serviceAccount: "catalog",
    script: "catalog",
    env: [{ name: "VERSION", value: "v2" }],
  },
  { name: "inventory", labels: { app: "inventory" }, serviceAccount: "inventory", script: "inventory", env: undefined },
];

describe("the shop as plain Kubernetes manifests (kubectl apply -k examples/shop)", () => {
  let k8s: Cluster;
  let overlay: string;
  let firstApply: string;

  before(async () => {
    [k8s, overlay] = await Promise.all([startCluster({ controllerManager: false }), mkdtemp(path.join(os.tmpdir(), "weft-shop-overlay-"))]);
    await applyCrds(k8s);
    await k8s.kubectl(["apply", "-f", await gatewayApiCrd("httproutes")]);
    await waitEstablished(k8s.kubectl, ["crd/httproutes.gateway.networking.k8s.io"]);
    firstApply = await k8s.kubectl(["apply", "-k", SHOP]);
  });
  after(async () => {
    await k8s?.stop();
    if (overlay) await rm(overlay, { recursive: true, force: true });
  });

  it("renders the shared files exactly as weft up reads them, plus k8s/workloads.yaml", async () => {
    const rendered = docs(await k8s.kubectl(["kustomize", SHOP]));
    const byKey = new Map(rendered.map((o) => [key(o), o]));
    const expected = [...(await readDocs("k8s/workloads.yaml")), ...(await Promise.all(SHARED.map(readDocs))).flat()];
    assert.deepEqual([...byKey.keys()].sort(), expected.map(key).sort(), "the kustomization holds these objects and nothing else");
    // deepEqual: kustomize adds no label, prefix or field to any of them, and the default image
    // is the one the Deployments name.
    for (const o of expected) assert.deepEqual(byKey.get(key(o)), o, key(o));
  });

  it("creates every object on the first apply and changes nothing on the second", async () => {
    const created = firstApply.trim().split("\n");
    assert.equal(created.length, 17, firstApply);
    for (const line of created) assert.match(line, / created$/, firstApply);
    for (const name of [
      "namespace/shop",
      "serviceaccount/frontend",
      "deployment.apps/catalog-v2",
      "service/catalog-v1",
      "wasmfilter.weft.dev/rate-limit",
      "httproute.gateway.networking.k8s.io/catalog-canary",
      "accesspolicy.weft.dev/inventory-callers",
    ]) {
      assert.ok(created.includes(`${name} created`), `${name} in:\n${firstApply}`);
    }
    // kubectl says "configured" for the custom resources and the HTTPRoute even when nothing
    // changed: it patches them with a JSON merge patch, which sends whole lists whose items the
    // API server has filled with defaults (match[].methods, ...), and the API server then stores
    // nothing. So: built-in kinds "unchanged", and no object gets a new resourceVersion.
    const versions = async () =>
      (await k8s.kubectl(["get", "namespace", "shop", "-o", "jsonpath={.metadata.resourceVersion} "])) +
      (await k8s.kubectl([
        "get",
        "serviceaccounts,services,deployments,wasmfilters,accesspolicies,httproutes",
        "-n",
        "shop",
        "-o",
        "jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion} {end}",
      ]));
    const before = await versions();
    const again = await k8s.kubectl(["apply", "-k", SHOP]);
    for (const line of again.trim().split("\n")) assert.match(line, /\.weft\.dev\/|gateway\.networking\.k8s\.io\/| unchanged$/, again);
    assert.equal(await versions(), before, "nothing was written");
  });

  it("labels the namespace for sidecar injection", async () => {
    const ns = JSON.parse(await k8s.kubectl(["get", "namespace", "shop", "-o", "json"])) as Obj;
    assert.equal(ns.metadata.labels?.["weft.dev/inject"], "enabled");
  });

  it("runs each workload of workloads.yaml as a Deployment: labels, ServiceAccount, image, env, a named port, probes", async () => {
    const accounts = JSON.parse(await k8s.kubectl(["get", "serviceaccounts", "-n", "shop", "-l", "app", "-o", "json"])) as { items: Obj[] };
    assert.deepEqual(accounts.items.map((a) => a.metadata.name).sort(), ["catalog", "frontend", "inventory"]);
    for (const w of WORKLOADS) {
      const d = JSON.parse(await k8s.kubectl(["get", "deployment", w.name, "-n", "shop", "-o", "json"])) as Deployment;
      assert.deepEqual(d.metadata.labels, w.labels, `${w.name} labels`);
      assert.deepEqual(d.spec.selector.matchLabels, w.labels, `${w.name} selector`);
      assert.deepEqual(d.spec.template.metadata.labels, w.labels, `${w.name} pod labels`);
      const pod = d.spec.template.spec;
      assert.equal(pod.serviceAccountName, w.serviceAccount, `${w.name} identity`);
      assert.equal(pod.containers.length, 1);
      const c = pod.containers[0]!;
      assert.equal(c.image, IMAGE, `${w.name} image`);
      assert.deepEqual(c.command, ["node", `/opt/shop/${w.script}.mjs`], `${w.name} command`);
      assert.deepEqual(c.env, w.env, `${w.name} env`);
      assert.deepEqual(c.ports, [{ name: "http", containerPort: 8080, protocol: "TCP" }], `${w.name} ports`);
      for (const probe of [c.readinessProbe, c.livenessProbe]) {
        const target = (probe.httpGet ?? probe.tcpSocket) as { port: unknown; path?: string } | undefined;
        assert.equal(target?.port, "http", `${w.name}: probes check the app's port`);
      }
      // The probes ask what answers 200 without calling another service (the frontend's only page does).
      if (w.script === "frontend") assert.ok(c.readinessProbe.tcpSocket && c.livenessProbe.tcpSocket, "frontend: tcpSocket probes");
      else assert.equal((c.readinessProbe.httpGet as { path: string }).path, w.script === "catalog" ? "/products" : "/stock/tea");
      assert.ok(c.resources.requests?.cpu && c.resources.requests.memory && c.resources.limits?.memory, `${w.name} resources`);
      assert.equal(c.securityContext.runAsUser, 65534, `${w.name} never runs as the proxy's UID 1337`);
      assert.equal(c.securityContext.readOnlyRootFilesystem, true);

      // What the injector does with this pod: its declared port is one the sidecar captures.
      const injected = injectPod({ metadata: d.spec.template.metadata, spec: pod }, DEFAULT_SETTINGS);
      assert.equal(injected.outcome, "injected", JSON.stringify(injected));
      const init = (
        injected as unknown as { pod: { spec: { initContainers: { name: string; args: string[] }[] } } }
      ).pod.spec.initContainers.find((x) => x.name === "weft-init")!;
      const capture = inboundCapture({ spec: { containers: [], initContainers: [init] } });
      assert.ok(capture && capturesPort(capture, 8080), `${w.name}: ${init.args.join(" ")}`);
    }
  });

  it("has the Services of services.yaml, each selecting the Deployments it should on a declared port", async () => {
    const deployments = (JSON.parse(await k8s.kubectl(["get", "deployments", "-n", "shop", "-o", "json"])) as { items: Deployment[] })
      .items;
    const wanted: Record<string, string[]> = {
      frontend: ["frontend"],
      catalog: ["catalog-v1", "catalog-v2"],
      "catalog-v1": ["catalog-v1"],
      "catalog-v2": ["catalog-v2"],
      inventory: ["inventory"],
    };
    for (const file of await readDocs("services.yaml")) {
      const svc = JSON.parse(await k8s.kubectl(["get", "service", file.metadata.name, "-n", "shop", "-o", "json"])) as Obj;
      assertContains(svc.spec, file.spec, `service ${file.metadata.name}`);
      const selector = svc.spec!.selector as Record<string, string>;
      const selected = deployments.filter((d) => Object.entries(selector).every(([k, v]) => d.spec.template.metadata.labels[k] === v));
      assert.deepEqual(selected.map((d) => d.metadata.name).sort(), wanted[file.metadata.name], `service ${file.metadata.name} selects`);
      const targetPort = (svc.spec!.ports as { targetPort: number | string }[])[0]!.targetPort;
      for (const d of selected) {
        assert.ok(
          d.spec.template.spec.containers[0]!.ports.some((p) => p.containerPort === targetPort || p.name === targetPort),
          `${d.metadata.name} declares ${targetPort}`,
        );
      }
    }
  });

  it("stores the WasmFilters, the canary HTTPRoute and the AccessPolicy that weft up reads", async () => {
    const kinds: Record<string, string> = {
      WasmFilter: "wasmfilters.weft.dev",
      HTTPRoute: "httproutes.gateway.networking.k8s.io",
      AccessPolicy: "accesspolicies.weft.dev",
    };
    const files = (await Promise.all(["filters.yaml", "canary.yaml", "access-policy.yaml"].map(readDocs))).flat();
    assert.deepEqual(files.map((o) => o.kind).sort(), ["AccessPolicy", "HTTPRoute", "WasmFilter", "WasmFilter"]);
    for (const file of files) {
      const stored = JSON.parse(
        await k8s.kubectl(["get", kinds[file.kind]!, file.metadata.name, "-n", file.metadata.namespace!, "-o", "json"]),
      ) as Obj;
      assert.equal(stored.apiVersion, file.apiVersion);
      assertContains(stored.spec, file.spec, key(file));
    }
  });

  it("leaves weft up's reading of examples/shop as it was: k8s/ adds no problem and no resource", async () => {
    const local = await readDirectory(SHOP);
    assert.deepEqual(
      Object.fromEntries(local.problems),
      {},
      "weft up must read examples/shop without a problem: control/local/directory.ts has to skip the cluster-only objects of examples/shop/k8s/workloads.yaml (Deployment, ServiceAccount)",
    );
    const all = [...local.files.values()];
    assert.deepEqual(
      all
        .flatMap((f) => f.wasmFilters)
        .map((f) => f.metadata.name)
        .sort(),
      ["greeting", "rate-limit"],
    );
    assert.deepEqual(
      all
        .flatMap((f) => f.workloads)
        .map((w) => w.workload.metadata.name)
        .sort(),
      ["catalog-v1", "catalog-v2", "frontend", "inventory"],
    );
    assert.equal(all.flatMap((f) => f.services).length, 5);
  });

  it("passes kubectl apply --dry-run=server", async () => {
    const out = await k8s.kubectl(["apply", "-k", SHOP, "--dry-run=server"]);
    const lines = out.trim().split("\n");
    assert.equal(lines.length, 17, out);
    for (const line of lines) assert.match(line, / \(server dry run\)$/, out);
  });

  it("takes another image from one place: an overlay's images:", async () => {
    const image = "registry.example.com/shop/weft-shop:0.1.0-test";
    await writeFile(
      path.join(overlay, "kustomization.yaml"),
      `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [${path.relative(overlay, SHOP)}]
images:
  - { name: ghcr.io/weft-dev/weft-shop, newName: registry.example.com/shop/weft-shop, newTag: 0.1.0-test }
`,
    );
    const base = docs(await k8s.kubectl(["kustomize", SHOP]));
    const changed = docs(await k8s.kubectl(["kustomize", overlay]));
    assert.equal(changed.length, base.length);
    for (const [i, o] of changed.entries()) {
      if (o.kind !== "Deployment") {
        assert.deepEqual(o, base[i], `${key(o)} is untouched`);
        continue;
      }
      assert.deepEqual(
        (o as Deployment).spec.template.spec.containers.map((c) => c.image),
        [image],
        key(o),
      );
    }
    // The API server takes the change (as a dry run: the stored shop keeps the default image).
    const dry = JSON.parse(await k8s.kubectl(["apply", "-k", overlay, "--dry-run=server", "-o", "json"])) as { items: Obj[] };
    const images = dry.items.filter((o) => o.kind === "Deployment").map((o) => (o as Deployment).spec.template.spec.containers[0]!.image);
    assert.deepEqual(images, [image, image, image, image]);
    const stored = await k8s.kubectl([
      "get",
      "deployments",
      "-n",
      "shop",
      "-o",
      "jsonpath={.items[*].spec.template.spec.containers[0].image}",
    ]);
    assert.deepEqual(stored.trim().split(" "), [IMAGE, IMAGE, IMAGE, IMAGE]);
  });
});
