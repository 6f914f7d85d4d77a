// runtimes: node
// needs: k8s
// `weft status` on a real API server with the control plane writing status (issue 14): it lists
// TrafficPolicies, AccessPolicies and HTTPRoutes with their conditions next to the sidecars and
// WasmFilters, every line fits 120 columns (a long message is cut with "…"), and -o wide and
// -o json give the whole text. A sidecar a killed replica still lists shows once, where it is now,
// and not at all once its pod is gone.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { KubeConfig } from "@kubernetes/client-node";
import { startCluster, freePorts, type Cluster } from "../k8s/cluster.ts";
import { namespaceYaml, podYaml, serviceAccountYaml, serviceYaml } from "../support/service.ts";
import { applyCrds, until, weftStatus } from "../support/control-process.ts";
import { startController, type Controller } from "../../control/controller.ts";
import { createLogger } from "../../shared/log.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// a sidecar's refusal as long as the ones the issue saw (400+ characters on one line)
const LONG_ERROR = `filters[0].config.response.set[0].value: is required; ${"the configuration names a header without a value, ".repeat(8)}end`;

describe("weft status", () => {
  let k8s: Cluster;
  let controller: Controller | null = null;
  const kubectl = (args: string[], input?: string) => k8s.kubectl(args, input);
  const apply = (yaml: string) => kubectl(["apply", "-f", "-"], yaml);
  const line = (out: string, start: string) =>
    out.split("\n").find((l) => l.startsWith(`${start} `)) ?? assert.fail(`no line for ${start} in:\n${out}`);

  before(async () => {
    k8s = await startCluster({ controllerManager: false });
    await applyCrds(k8s, { httpRoutes: true });
    await apply(
      `${namespaceYaml("weft-system")}---\n${namespaceYaml("shop")}---\n${serviceYaml({ namespace: "shop", name: "ledger", targetPort: 8080, address: "10.0.0.7" })}`,
    );
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(k8s.kubeconfig);
    const [port] = (await freePorts(1)) as [number];
    controller = await startController({
      kubeConfig,
      log: createLogger({ component: "status-cli-test" }, "warn"),
      address: "127.0.0.1",
      port,
    });
    await controller.synced;

    await apply(`apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: ledger-old, namespace: shop }
spec: { targetRefs: [{ kind: Service, name: ledger }], timeoutMs: 1111 }
`);
    // creationTimestamp has one-second resolution: the newer one must be visibly newer
    await sleep(1100);
    await apply(`apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: a-ledger-new, namespace: shop }
spec: { targetRefs: [{ kind: Service, name: ledger }], timeoutMs: 2222 }
---
apiVersion: weft.dev/v1alpha1
kind: AccessPolicy
metadata: { name: ghost-callers, namespace: shop }
spec:
  targetRefs: [{ kind: Service, name: ghost }]
  action: DENY
  rules: [{ from: [{ namespaces: [other] }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ledger-split, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: ledger, port: 80 }]
  rules: [{ backendRefs: [{ name: ledger, port: 80, weight: 90 }, { name: ledger-v3, port: 80, weight: 10 }] }]
`);
    // what a replica reports of a sidecar that refused a configuration (proxy-report.ts)
    const now = Date.now();
    const report = {
      replica: "replica-a",
      updatedAt: new Date(now).toISOString(),
      proxies: [
        {
          pod: "shop/web-0",
          sent: "v2",
          running: "v1",
          rejected: { version: "v2", error: LONG_ERROR },
          filters: [],
          connectedAt: new Date(now - 5_000).toISOString(),
        },
      ],
    };
    // and what a replica killed a minute ago still lists (its key is not stale yet): web-0 before
    // it reconnected to replica-a, and the sidecar of a pod deleted since
    const killed = {
      replica: "replica-b",
      updatedAt: new Date(now - 60_000).toISOString(),
      proxies: ["shop/web-0", "shop/gone-0"].map((pod) => ({
        pod,
        sent: "v1",
        running: "v1",
        filters: [],
        connectedAt: new Date(now - 600_000).toISOString(),
      })),
    };
    await apply(
      `${serviceAccountYaml("shop", "web")}---\n${podYaml({ namespace: "shop", name: "web-0", app: "web", serviceAccount: "web", port: 8080 })}---\n${JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "weft-proxies", namespace: "weft-system" }, data: { "replica-a.json": JSON.stringify(report), "replica-b.json": JSON.stringify(killed) } })}`,
    );
  });

  after(async () => {
    await controller?.stop();
    await k8s?.stop();
  });

  it("lists policies and routes with their conditions; every line fits 120 columns", async () => {
    const out = await until("weft status to show every status written", async () => {
      const text = await weftStatus(k8s);
      return /shop\/a-ledger-new .*Conflicted/.test(text) &&
        /shop\/ghost-callers .*TargetNotFound/.test(text) &&
        /shop\/ledger-split .*BackendNotFound/.test(text)
        ? text
        : null;
    });
    for (const l of out.split("\n")) assert.ok(l.length <= 120, `a line of ${l.length} characters:\n${l}`);

    assert.match(
      line(out, "shop/web-0"),
      /^shop\/web-0\s+v1\s+rejected v2: filters\[0\]\.config\.response\.set\[0\]\.value: is required; the.*…\s+-\s+replica-a$/,
    );
    assert.equal(
      out.split("\n").filter((l) => l.startsWith("shop/web-0 ")).length,
      1,
      `a sidecar that moved between replicas is listed once, where it is now:\n${out}`,
    );
    assert.doesNotMatch(out, /shop\/gone-0/, "the sidecar of a deleted pod is not listed");
    assert.match(out, /^TRAFFICPOLICY\s+TARGETS\s+ACCEPTED\s+RESOLVEDREFS\s+READY\s+PROBLEM$/m);
    assert.match(
      line(out, "shop/a-ledger-new"),
      /^shop\/a-ledger-new\s+ledger\s+False\s+True\s+False\s+Accepted: Conflicted: TrafficPolicy shop\/ledger-old.*…$/,
    );
    assert.match(line(out, "shop/ledger-old"), /^shop\/ledger-old\s+ledger\s+True\s+True\s+True$/);
    assert.match(out, /^ACCESSPOLICY\s+ACTION\s+TARGETS\s+ACCEPTED\s+RESOLVEDREFS\s+READY\s+PROBLEM$/m);
    assert.match(
      line(out, "shop/ghost-callers"),
      /^shop\/ghost-callers\s+DENY\s+ghost\s+True\s+False\s+False\s+ResolvedRefs: TargetNotFound: Service shop\/g.*…$/,
    );
    assert.match(out, /^HTTPROUTE\s+PARENT\s+ACCEPTED\s+RESOLVEDREFS\s+PROBLEM$/m);
    assert.match(
      line(out, "shop/ledger-split"),
      /^shop\/ledger-split\s+shop\/ledger:80\s+True\s+False\s+ResolvedRefs: BackendNotFound: rules\[0\]: .*…$/,
    );
  });

  it("-o wide prints every message whole, -o json every status", async () => {
    const wide = await weftStatus(k8s, ["-o", "wide"]);
    assert.ok(line(wide, "shop/web-0").includes(`rejected v2: ${LONG_ERROR}`), wide);
    assert.match(
      line(wide, "shop/a-ledger-new"),
      /Accepted: Conflicted: TrafficPolicy shop\/ledger-old also targets Service shop\/ledger and is in force there .*this policy is in force for no Service$/,
    );
    assert.match(
      line(wide, "shop/ghost-callers"),
      /ResolvedRefs: TargetNotFound: Service shop\/ghost does not exist, so the policy applies to no pod through it/,
    );
    assert.match(line(wide, "shop/ledger-split"), /ResolvedRefs: BackendNotFound: rules\[0\]: .*ledger-v3.*\(weight 10 of 100\)/);
    assert.ok(wide.split("\n").some((l) => l.length > 120));

    const json = JSON.parse(await weftStatus(k8s, ["-o", "json"])) as Record<
      string,
      { name: string; status: { conditions?: { type: string; reason: string }[]; parents?: unknown[] } }[]
    >;
    assert.deepEqual(Object.keys(json), ["replicas", "wasmFilters", "trafficPolicies", "accessPolicies", "httpRoutes"]);
    assert.deepEqual(
      json.trafficPolicies!.map((p) => p.name),
      ["shop/a-ledger-new", "shop/ledger-old"],
    );
    assert.equal(json.trafficPolicies![0]!.status.conditions!.find((c) => c.type === "Accepted")!.reason, "Conflicted");
    assert.equal(json.accessPolicies![0]!.status.conditions!.find((c) => c.type === "ResolvedRefs")!.reason, "TargetNotFound");
    assert.equal(json.httpRoutes![0]!.status.parents!.length, 1);
    assert.deepEqual(JSON.parse(await weftStatus(k8s, ["--json"])), json, "--json is -o json");
    await assert.rejects(weftStatus(k8s, ["-o", "yaml"]), /-o yaml: use -o wide or -o json/);
  });
});
