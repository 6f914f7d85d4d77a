// runtimes: node
// needs: k8s
// TrafficPolicy, AccessPolicy and HTTPRoute status on a real API server, with real sidecars
// where traffic is involved (issue 14, items 3 and 4): conflicting TrafficPolicies are reported
// on the loser and the oldest is in force; a policy naming a missing Service says so, and an
// AccessPolicy edited to name one keeps its last good version in force (never wider access);
// an HTTPRoute backend that does not exist costs only its own share of requests (500), never
// the parent's other routes; a parentRef to a missing Service is Accepted=False; other
// controllers' status.parents entries are kept. Each asserts what kubectl get prints too.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { startCluster, freePorts, type Cluster } from "../k8s/cluster.ts";
import { startUpstream, type Upstream } from "../support/upstream.ts";
import { namespaceYaml, podYaml, serviceAccountYaml, serviceYaml } from "../support/service.ts";
import { applyCrds, hostAddress, startSidecar, until, writeProxyToken, type SidecarProcess } from "../support/control-process.ts";
import { startMeshControl } from "../support/mesh-control.ts";
import { request } from "../support/client.ts";
import type { Controller } from "../../control/controller.ts";
import { createLogger } from "../../shared/log.ts";

const HOST = hostAddress();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
}
interface ParentStatus {
  parentRef: { group?: string; kind?: string; name: string; port?: number };
  controllerName: string;
  conditions: Condition[];
}

describe("TrafficPolicy, AccessPolicy and HTTPRoute status", () => {
  let k8s: Cluster;
  let ledger: Upstream;
  let inventoryApp: Upstream;
  let controller: Controller | null = null;
  let web: SidecarProcess;
  let inventory: SidecarProcess;
  const log = createLogger({ component: "policy-status-test" }, "warn");

  const kubectl = (args: string[], input?: string) => k8s.kubectl(args, input);
  const apply = (yaml: string) => kubectl(["apply", "-f", "-"], yaml);
  const conditions = async (kind: string, name: string) => {
    const o = JSON.parse(await kubectl(["get", kind, name, "-n", "shop", "-o", "json"])) as {
      metadata: { generation: number };
      status?: { conditions?: Condition[] };
    };
    return {
      generation: o.metadata.generation,
      byType: Object.fromEntries((o.status?.conditions ?? []).map((c) => [c.type, c])) as Record<string, Condition>,
    };
  };
  /** Waits until the condition `type` of kind/name has `status` for the current generation. */
  const condition = (kind: string, name: string, type: string, status: string, reason?: string) =>
    until(`${kind} ${name} ${type}=${status}${reason ? ` ${reason}` : ""}`, async () => {
      const { generation, byType } = await conditions(kind, name);
      const c = byType[type];
      return c && c.status === status && c.observedGeneration === generation && (!reason || c.reason === reason) ? c : null;
    });
  const parents = async (route: string) => {
    const o = JSON.parse(await kubectl(["get", "httproute", route, "-n", "shop", "-o", "json"])) as {
      metadata: { generation: number };
      status?: { parents?: ParentStatus[] };
    };
    return { generation: o.metadata.generation, parents: o.status?.parents ?? [] };
  };
  const weftParent = (route: string, type: string, status: string, reason?: string) =>
    until(`HTTPRoute ${route} ${type}=${status}${reason ? ` ${reason}` : ""}`, async () => {
      const { generation, parents: list } = await parents(route);
      const c = list.find((p) => p.controllerName === "weft.dev/mesh-controller")?.conditions.find((x) => x.type === type);
      return c && c.status === status && c.observedGeneration === generation && (!reason || c.reason === reason) ? c : null;
    });
  const row = (table: string, name: string) =>
    table
      .split("\n")
      .find((l) => l.startsWith(`${name} `))
      ?.trim()
      .split(/\s+/) ?? [];
  const call = (path: string, host = "ledger.shop") => request(web.outbound, { path, host });

  before(async () => {
    const scratch = await mkdtemp(path.join(tmpdir(), "weft-policy-status-"));
    [k8s, ledger, inventoryApp] = await Promise.all([
      startCluster({ controllerManager: false }),
      startUpstream("ledger", 0, HOST),
      startUpstream("inventory"),
    ]);
    const [admin, outbound, inbound] = (await freePorts(3)) as [number, number, number];
    await applyCrds(k8s, { httpRoutes: true });
    await apply(`
${namespaceYaml("weft-system")}---
${namespaceYaml("shop", { "weft.dev/inject": "enabled" })}---
${serviceAccountYaml("shop", "web")}---
${serviceAccountYaml("shop", "inventory")}---
${podYaml({ namespace: "shop", name: "web-0", app: "web", serviceAccount: "web", port: 8080 })}---
${podYaml({ namespace: "shop", name: "inventory-0", app: "inventory", serviceAccount: "inventory", port: inventoryApp.port, inMesh: true })}---
${serviceYaml({ namespace: "shop", name: "ledger", targetPort: ledger.port, address: HOST })}---
${serviceYaml({ namespace: "shop", name: "inventory", targetPort: inventoryApp.port, address: HOST, endpointPort: inbound, pod: "inventory-0" })}
`);
    // The Services select their app's pods, as AccessPolicy targetRefs need.
    await kubectl([
      "patch",
      "service",
      "inventory",
      "-n",
      "shop",
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { selector: { app: "inventory" } } }),
    ]);
    for (const sa of ["web", "inventory"]) await writeProxyToken(k8s, "shop", sa, path.join(scratch, `${sa}.token`));

    const control = await startMeshControl(k8s, scratch, { log });
    controller = control.controller;
    const { url: controlPlane, caFile } = control;
    [web, inventory] = await Promise.all([
      startSidecar({
        controlPlane,
        caFile,
        namespace: "shop",
        pod: "web-0",
        tokenFile: path.join(scratch, "web.token"),
        tmp: path.join(scratch, "web"),
      }),
      startSidecar({
        controlPlane,
        caFile,
        namespace: "shop",
        pod: "inventory-0",
        tokenFile: path.join(scratch, "inventory.token"),
        tmp: path.join(scratch, "inventory"),
        ports: { admin, outbound, inbound },
      }),
    ]);
  });

  after(async () => {
    await Promise.all([web?.stop(), inventory?.stop()]);
    await controller?.stop();
    await Promise.all([ledger?.close(), inventoryApp?.close(), k8s?.stop()]);
  });

  it("two TrafficPolicies on one Service: the older is in force, the other says Conflicted and names it", async () => {
    await apply(`apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: ledger-old, namespace: shop }
spec: { targetRefs: [{ kind: Service, name: ledger }], timeoutMs: 1111 }
`);
    await condition("trafficpolicy", "ledger-old", "Ready", "True", "InForce");
    // creationTimestamp has one-second resolution: the newer one must be visibly newer.
    await sleep(1100);
    // "a-..." sorts first: by name it would win; by age it loses.
    await apply(`apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: a-ledger-new, namespace: shop }
spec: { targetRefs: [{ kind: Service, name: ledger }], timeoutMs: 2222 }
`);
    const accepted = await condition("trafficpolicy", "a-ledger-new", "Accepted", "False", "Conflicted");
    assert.match(accepted.message, /TrafficPolicy shop\/ledger-old also targets Service shop\/ledger and is in force there/);
    assert.match(accepted.message, /in force for no Service/);
    const { byType: old } = await conditions("trafficpolicy", "ledger-old");
    assert.equal(old.Accepted?.status, "True");

    // The sidecar's route to ledger has the older policy's timeout.
    const timeout = await until("the web sidecar to have ledger's route with the older policy's timeout", async () => {
      const dump = await web.dump();
      const listeners = dump.listeners as { name: string; virtualHosts: { name: string; routes: { timeoutMs: number }[] }[] }[];
      return listeners.find((l) => l.name === "outbound")?.virtualHosts.find((v) => v.name === "ledger.shop:80")?.routes[0]?.timeoutMs;
    });
    assert.equal(timeout, 1111);
    assert.equal((await call("/")).status, 200);

    const table = await kubectl(["get", "trafficpolicies", "-n", "shop"]);
    assert.match(table, /^NAME\s+ACCEPTED\s+RESOLVEDREFS\s+READY\s+REASON\s+AGE/m, table);
    assert.deepEqual(row(table, "a-ledger-new").slice(0, 5), ["a-ledger-new", "False", "True", "False", "Conflicted"], table);
    assert.deepEqual(row(table, "ledger-old").slice(0, 5), ["ledger-old", "True", "True", "True", "InForce"], table);
  });

  it("a TrafficPolicy naming a Service that does not exist: ResolvedRefs=False TargetNotFound", async () => {
    await apply(`apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: ledgr, namespace: shop }
spec: { targetRefs: [{ kind: Service, name: ledgr }] }
`);
    const resolved = await condition("trafficpolicy", "ledgr", "ResolvedRefs", "False", "TargetNotFound");
    assert.match(resolved.message, /^Service shop\/ledgr does not exist/);
    const table = await kubectl(["get", "trafficpolicies", "-n", "shop"]);
    assert.deepEqual(row(table, "ledgr").slice(0, 5), ["ledgr", "True", "False", "False", "TargetNotFound"], table);
  });

  it("an AccessPolicy edited to name a missing Service keeps its last good version in force; an ALLOW naming nothing opens nothing", async () => {
    await apply(`apiVersion: weft.dev/v1alpha1
kind: AccessPolicy
metadata: { name: no-admin, namespace: shop }
spec:
  targetRefs: [{ kind: Service, name: inventory }]
  action: DENY
  rules: [{ to: [{ paths: [{ value: /admin }] }] }]
`);
    const ready = await condition("accesspolicy", "no-admin", "Ready", "True", "InForce");
    assert.equal(ready.message, "enforced by the sidecars of 1 pod");
    await until("/admin on inventory to be refused", async () => (await call("/admin", "inventory.shop")).status === 403);
    assert.equal((await call("/stock", "inventory.shop")).status, 200);

    // A typo in the target: the DENY stays in force on the pods it protected.
    await kubectl([
      "patch",
      "accesspolicy",
      "no-admin",
      "-n",
      "shop",
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { targetRefs: [{ kind: "Service", name: "inventroy" }] } }),
    ]);
    const resolved = await condition("accesspolicy", "no-admin", "ResolvedRefs", "False", "TargetNotFound");
    assert.match(
      resolved.message,
      /^Service shop\/inventroy does not exist: this generation is not in force; the sidecars keep enforcing generation 1/,
    );
    for (let i = 0; i < 5; i++) assert.equal((await call("/admin", "inventory.shop")).status, 403, "the last good DENY is still enforced");
    const table = await kubectl(["get", "accesspolicies", "-n", "shop"]);
    assert.match(table, /^NAME\s+ACTION\s+DEFAULTDENY\s+ACCEPTED\s+RESOLVEDREFS\s+READY\s+REASON\s+AGE/m, table);
    assert.deepEqual(row(table, "no-admin").slice(0, 7), ["no-admin", "DENY", "false", "True", "False", "True", "InForce"], table);

    // Fixed: the new generation is in force.
    await kubectl([
      "patch",
      "accesspolicy",
      "no-admin",
      "-n",
      "shop",
      "--type=merge",
      "-p",
      JSON.stringify({
        spec: { targetRefs: [{ kind: "Service", name: "inventory" }], rules: [{ to: [{ paths: [{ value: "/stock" }] }] }] },
      }),
    ]);
    await condition("accesspolicy", "no-admin", "ResolvedRefs", "True");
    await until(
      "/stock to be refused and /admin served",
      async () => (await call("/stock", "inventory.shop")).status === 403 && (await call("/admin", "inventory.shop")).status === 200,
    );

    // A new ALLOW policy naming a missing Service grants nothing and selects no pod.
    await apply(`apiVersion: weft.dev/v1alpha1
kind: AccessPolicy
metadata: { name: allow-typo, namespace: shop }
spec: { targetRefs: [{ kind: Service, name: nothing-here }], rules: [{}] }
`);
    const allow = await condition("accesspolicy", "allow-typo", "ResolvedRefs", "False", "TargetNotFound");
    assert.match(allow.message, /an ALLOW policy grants nothing there/);
    await condition("accesspolicy", "allow-typo", "Ready", "False", "NoPodsSelected");
    assert.equal((await call("/stock", "inventory.shop")).status, 403, "still refused by no-admin");
  });

  it("an HTTPRoute backend that does not exist gets 500 for its share only; the parent's other routes keep working", async () => {
    await apply(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ledger-canary, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: ledger, port: 80 }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /pay } }]
      backendRefs: [{ name: ledger, port: 80, weight: 50 }, { name: ledger-v3, port: 80, weight: 50 }]
    - matches: [{ path: { type: PathPrefix, value: /typo } }]
      backendRefs: [{ name: ledger-v3, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ledger-main, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: ledger, port: 80 }]
  rules:
    - backendRefs: [{ name: ledger, port: 80 }]
`);
    const resolved = await weftParent("ledger-canary", "ResolvedRefs", "False", "BackendNotFound");
    assert.match(resolved.message, /rules\[0\]: Service shop\/ledger-v3 does not exist \(weight 50 of 100\)/);
    assert.match(resolved.message, /requests for that backend's share get 500/);
    await weftParent("ledger-canary", "Accepted", "True", "Accepted");
    await weftParent("ledger-main", "ResolvedRefs", "True");
    const { parents: list } = await parents("ledger-canary");
    assert.deepEqual(
      list.map((p) => [p.controllerName, p.parentRef]),
      [["weft.dev/mesh-controller", { group: "", kind: "Service", name: "ledger", port: 80 }]],
    );

    await until("the routes to be in force", async () => (await call("/typo")).status === 500);
    const counts: Record<number, number> = {};
    const N = 200;
    for (let i = 0; i < N; i++) {
      const r = await call("/pay");
      counts[r.status] = (counts[r.status] ?? 0) + 1;
      if (r.status === 500)
        assert.match(String(r.headers["x-weft-error"]), /invalid backend: HTTPRoute backend Service shop\/ledger-v3 does not exist/);
      else assert.equal(r.headers["x-upstream"], "ledger");
    }
    // Half of 200 is 100; the bounds hold with probability > 0.9999 for a fair split.
    assert.equal((counts[200] ?? 0) + (counts[500] ?? 0), N, JSON.stringify(counts));
    assert.ok(counts[500]! >= 65 && counts[500]! <= 135, JSON.stringify(counts));
    for (let i = 0; i < 20; i++) {
      const r = await call("/anything-else");
      assert.equal(r.status, 200, "the parent's other route is served");
      assert.equal(r.body, "hello from ledger\n");
    }
    const typo = await call("/typo");
    assert.equal(typo.status, 500, "a rule whose only backend is missing answers 500 for all of its requests");

    // The upstream HTTPRoute CRD's columns are Hostnames and Age; custom columns show the status.
    const table = await kubectl([
      "get",
      "httproutes",
      "-n",
      "shop",
      "-o",
      'custom-columns=NAME:.metadata.name,ACCEPTED:.status.parents[*].conditions[?(@.type=="Accepted")].reason,REFS:.status.parents[*].conditions[?(@.type=="ResolvedRefs")].reason',
    ]);
    assert.deepEqual(row(table, "ledger-canary"), ["ledger-canary", "Accepted", "BackendNotFound"], table);
    assert.deepEqual(row(table, "ledger-main"), ["ledger-main", "Accepted", "ResolvedRefs"], table);
  });

  it("another controller's status.parents entry is kept when weft rewrites its own", async () => {
    const other = {
      parentRef: { group: "gateway.networking.k8s.io", kind: "Gateway", name: "edge" },
      controllerName: "example.net/gateway-controller",
      conditions: [
        {
          type: "Accepted",
          status: "True",
          reason: "Accepted",
          message: "by the edge gateway",
          lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
          observedGeneration: 1,
        },
      ],
    };
    await kubectl([
      "patch",
      "httproute",
      "ledger-main",
      "-n",
      "shop",
      "--subresource=status",
      "--type=json",
      "-p",
      JSON.stringify([{ op: "add", path: "/status/parents/-", value: other }]),
    ]);
    // A change to the route makes weft rewrite its entry for the new generation.
    await kubectl([
      "patch",
      "httproute",
      "ledger-main",
      "-n",
      "shop",
      "--type=merge",
      "-p",
      JSON.stringify({
        spec: {
          rules: [
            {
              backendRefs: [
                { name: "ledger", port: 80 },
                { name: "ledger-gone", port: 80 },
              ],
            },
          ],
        },
      }),
    ]);
    await weftParent("ledger-main", "ResolvedRefs", "False", "BackendNotFound");
    const { generation, parents: list } = await parents("ledger-main");
    assert.equal(generation, 2);
    assert.deepEqual(list.map((p) => p.controllerName).sort(), ["example.net/gateway-controller", "weft.dev/mesh-controller"]);
    assert.equal(list.find((p) => p.controllerName === "example.net/gateway-controller")?.conditions[0]?.message, "by the edge gateway");
    // Back to one good backend, so that what follows sees every request of / answered.
    await kubectl([
      "patch",
      "httproute",
      "ledger-main",
      "-n",
      "shop",
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { rules: [{ backendRefs: [{ name: "ledger", port: 80 }] }] } }),
    ]);
    await weftParent("ledger-main", "ResolvedRefs", "True");
    await until("/ to be served by ledger alone", async () => {
      for (let i = 0; i < 10; i++) if ((await call("/")).status !== 200) return null;
      return true;
    });
  });

  it("an HTTPRoute whose parent Service does not exist: Accepted=False NoMatchingParent", async () => {
    await apply(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: orphan, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: ledgr, port: 80 }]
  rules: [{ backendRefs: [{ name: ledger, port: 80 }] }]
`);
    const accepted = await weftParent("orphan", "Accepted", "False", "NoMatchingParent");
    assert.match(accepted.message, /^Service shop\/ledgr does not exist/);
    await weftParent("orphan", "ResolvedRefs", "True");
    assert.equal((await call("/")).status, 200, "ledger's own routes are untouched");
  });
});
