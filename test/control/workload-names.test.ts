// runtimes: node
// The name the metrics give a workload (source_workload, destination_workload) is Istio's: the
// Deployment a pod belongs to, not its app label, which the versions of one app share (catalog-v1
// and catalog-v2 are both app: catalog). From a Kubernetes pod's owner, into the configuration
// its sidecar gets. (Local mode names a LocalWorkload's replicas after it:
// test/telemetry-backends.test.ts queries catalog-v1 and catalog-v2 in Prometheus.)
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { V1Pod } from "@kubernetes/client-node";
import { podInfo, workloadOf } from "../../control/kubernetes/convert.ts";
import { computeProxyConfig, DEFAULT_SETTINGS } from "../../control/mesh/proxy-config.ts";
import { emptyWorld, keyOf } from "../../control/mesh/world.ts";

const pod = (name: string, owner?: { kind: string; name: string }, labels: Record<string, string> = {}): V1Pod => ({
  metadata: {
    name,
    namespace: "shop",
    labels,
    ...(owner ? { ownerReferences: [{ apiVersion: "apps/v1", kind: owner.kind, name: owner.name, uid: "u", controller: true }] } : {}),
  },
  spec: { serviceAccountName: "catalog", containers: [{ name: "app", ports: [{ containerPort: 8080 }] }] },
});

describe("workload names", () => {
  it("names a pod after its Deployment, else its controller, else itself", () => {
    const hash = { app: "catalog", version: "v1", "pod-template-hash": "7f4669bdd9" };
    assert.equal(workloadOf(pod("catalog-v1-7f4669bdd9-dg7vn", { kind: "ReplicaSet", name: "catalog-v1-7f4669bdd9" }, hash)), "catalog-v1");
    // A ReplicaSet of its own (no Deployment's hash in its name) is the workload.
    assert.equal(workloadOf(pod("batch-x2k9p", { kind: "ReplicaSet", name: "batch" }, { app: "batch" })), "batch");
    assert.equal(workloadOf(pod("db-0", { kind: "StatefulSet", name: "db" })), "db");
    assert.equal(workloadOf(pod("debug")), "debug");
  });

  it("gives the sidecar its workload's name as the node's, not the app label", () => {
    const world = emptyWorld();
    const info = podInfo(
      pod("catalog-v2-5c4b8-abcde", { kind: "ReplicaSet", name: "catalog-v2-5c4b8" }, { app: "catalog", "pod-template-hash": "5c4b8" }),
    );
    world.pods.set(keyOf("shop", info.name), info);
    const config = computeProxyConfig(world, info, new Map(), DEFAULT_SETTINGS);
    assert.equal(config.node?.workload, "catalog-v2");
    assert.equal(config.clusters.find((c) => c.name.startsWith("inbound|"))?.workload, "catalog-v2");
  });
});
