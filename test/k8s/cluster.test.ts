// The test environment itself: a real etcd + kube-apiserver + kube-controller-manager on
// loopback (test/k8s/cluster.ts) serves requests and its controllers do their work.
//   node --test test/k8s/cluster.test.ts
// Builds the binaries first if the cache lacks them (test/k8s/build.sh; slow on a cold cache).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:https";
import { startCluster, smoke, type Cluster } from "./cluster.ts";

describe("Kubernetes test environment", { timeout: 30 * 60_000 }, () => {
  let k8s: Cluster;
  before(async () => {
    k8s = await startCluster({ build: true });
  });
  after(async () => {
    await k8s?.stop();
  });

  it("serves the system:masters client certificate and refuses anonymous requests (RBAC)", async () => {
    const get = (tls: object) =>
      new Promise<number>((resolve, reject) => {
        request(`${k8s.server}/api/v1/namespaces`, { ca: k8s.ca, ...tls }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
          .on("error", reject)
          .end();
      });
    assert.equal(await get({ cert: k8s.clientCert, key: k8s.clientKey }), 200);
    assert.equal(await get({}), 403); // anonymous is authenticated as system:anonymous, RBAC says no
  });

  it("reports the version it was built as", async () => {
    const v = JSON.parse(await k8s.kubectl(["version", "-o", "json"]));
    assert.equal(v.serverVersion.gitVersion, k8s.version);
    assert.equal(v.clientVersion.gitVersion, k8s.version);
  });

  it("runs controllers: Deployment -> ReplicaSet -> Pods, tokens, namespace deletion", async () => {
    await smoke(k8s);
  });
});
