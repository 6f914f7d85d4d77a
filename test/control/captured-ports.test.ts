// runtimes: node
// mTLS only to a port the peer's sidecar captures. weft-init redirects to the sidecar only the
// inbound ports the app declared when it was injected; any other port reaches the app directly,
// so a caller's sidecar that spoke TLS there failed every request (the app answered the
// handshake in plain HTTP: ERR_SSL_WRONG_VERSION_NUMBER). The Gateway API conformance suite's
// echo pods declare no ports, and every MESH-HTTP test failed so (docs/design/conformance.md).
// Here a pod goes through the real injector, then the control plane's model of it, then the
// configuration computed for a caller: the cluster of a port the sidecar captures has mTLS, one
// it does not is plain.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { V1Pod } from "@kubernetes/client-node";
import { injectPod } from "../../control/inject/patch.ts";
import { DEFAULT_SETTINGS as INJECT_SETTINGS } from "../../control/inject/settings.ts";
import { capturedPorts, endpointSliceInfo, podInfo, serviceInfo } from "../../control/kubernetes/convert.ts";
import { computeProxyConfig, DEFAULT_SETTINGS } from "../../control/mesh/proxy-config.ts";
import { emptyWorld, keyOf } from "../../control/mesh/world.ts";

const NS = "shop";

/** The pod `name` as the API server holds it once the webhook has injected it and it runs at `ip`. */
function injected(name: string, ip: string, ports: number[]): V1Pod {
  const input = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { namespace: NS, name, labels: { app: name } },
    spec: {
      containers: [{ name: "app", image: "echo", ...(ports.length ? { ports: ports.map((containerPort) => ({ containerPort })) } : {}) }],
    },
  };
  const r = injectPod(input, INJECT_SETTINGS);
  assert.equal(r.outcome, "injected");
  return { ...(r.pod as V1Pod), status: { podIP: ip } };
}

/** A caller's configuration for Service `name` (port 80 to the app's 8080), backed by `pod`. */
function clusterFor(pod: V1Pod) {
  const name = pod.metadata!.labels!.app;
  const world = emptyWorld();
  const caller = podInfo(injected("caller", "10.244.0.9", [8080]));
  const backend = podInfo(pod);
  for (const p of [caller, backend]) world.pods.set(keyOf(p.namespace, p.name), p);
  world.services.set(
    keyOf(NS, name),
    serviceInfo({
      metadata: { namespace: NS, name },
      spec: { selector: { app: name }, ports: [{ name: "http", port: 80, targetPort: 8080 }] },
    }),
  );
  world.endpointSlices.set(
    keyOf(NS, `${name}-1`),
    endpointSliceInfo({
      addressType: "IPv4",
      metadata: { namespace: NS, name: `${name}-1`, labels: { "kubernetes.io/service-name": name } },
      ports: [{ name: "http", port: 8080 }],
      endpoints: [{ addresses: [backend.ip], targetRef: { kind: "Pod", namespace: NS, name: backend.name } }],
    })!,
  );
  const config = computeProxyConfig(world, caller, new Map(), DEFAULT_SETTINGS);
  const cluster = config.clusters.find((c) => c.name === `outbound|80||${name}.${NS}.svc.cluster.local`);
  assert.ok(cluster, `no cluster for ${name} in ${config.clusters.map((c) => c.name).join(", ")}`);
  return cluster;
}

describe("a meshed peer's port gets mTLS only if its sidecar captures it", () => {
  it("reads the captured ports from the injected weft-init's arguments", () => {
    assert.deepEqual(capturedPorts(injected("web", "10.244.0.5", [8080, 9090])), [8080, 9090]);
    assert.deepEqual(capturedPorts(injected("echo", "10.244.0.5", [])), []);
    assert.equal(capturedPorts({ spec: { containers: [] } }), undefined, "no weft-init: every port");
  });

  it("a declared port: mTLS to the peer's identity", () => {
    const cluster = clusterFor(injected("web", "10.244.0.5", [8080]));
    assert.deepEqual(cluster.endpoints, [{ address: "10.244.0.5", port: 8080 }]);
    assert.deepEqual(cluster.tls?.identities, ["spiffe://cluster.local/ns/shop/sa/default"]);
  });

  it("an undeclared port (the app reached directly): plain, not a TLS handshake the app cannot answer", () => {
    const cluster = clusterFor(injected("echo", "10.244.0.5", []));
    assert.deepEqual(cluster.endpoints, [{ address: "10.244.0.5", port: 8080 }]);
    assert.equal(cluster.tls, undefined);
  });

  it("a pod injected without --include-inbound-ports (by hand, or local mode) counts as capturing every port", () => {
    const pod = injected("old", "10.244.0.5", []);
    const init = pod.spec!.initContainers!.find((c) => c.name === "weft-init")!;
    const at = init.args!.indexOf("--include-inbound-ports");
    init.args!.splice(at, 2);
    assert.deepEqual(clusterFor(pod).tls?.identities, ["spiffe://cluster.local/ns/shop/sa/default"]);
  });
});
