// runtimes: node
// What a pod's sidecar captures inbound, and what the control plane makes of it. The injected
// weft-init captures every inbound port up to 32767 but the admin port and annotated ones, and
// delivers port P to the sidecar on P + 32768 (control/init/rules.ts; test/control/init.test.ts
// runs the rules). So the pod's own configuration needs a listener on P + 32768 for each port
// its app serves, forwarding to that port, and a caller's sidecar speaks mTLS to exactly the
// captured ports: to any other, the app answers itself, in plain HTTP (the conformance suite's
// echo pods, which declare no ports, once failed every request on a TLS handshake to the app:
// docs/design/conformance.md). Here pods go through the real injector, then the control plane's
// model of them, then the configuration computed for them and for a caller.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { V1Pod } from "@kubernetes/client-node";
import { injectPod } from "../../control/inject/patch.ts";
import { DEFAULT_SETTINGS as INJECT_SETTINGS } from "../../control/inject/settings.ts";
import { endpointSliceInfo, inboundCapture, podInfo, serviceInfo } from "../../control/kubernetes/convert.ts";
import { computeProxyConfig, DEFAULT_SETTINGS } from "../../control/mesh/proxy-config.ts";
import { emptyWorld, keyOf } from "../../control/mesh/world.ts";

const NS = "shop";

/** The pod `name` as the API server holds it once the webhook has injected it and it runs at `ip`. */
function injected(name: string, ip: string, ports: number[], annotations: Record<string, string> = {}): V1Pod {
  const input = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { namespace: NS, name, labels: { app: name }, annotations },
    spec: {
      containers: [{ name: "app", image: "echo", ...(ports.length ? { ports: ports.map((containerPort) => ({ containerPort })) } : {}) }],
    },
  };
  const r = injectPod(input, INJECT_SETTINGS);
  assert.equal(r.outcome, "injected");
  return { ...(r.pod as V1Pod), status: { podIP: ip } };
}

/** A mesh with a caller and `pod` behind Service `name` (port 80 to the app's 8080, and 9090 as "metrics"). */
function meshWith(pod: V1Pod) {
  const name = pod.metadata!.labels!.app;
  const world = emptyWorld();
  const caller = podInfo(injected("caller", "10.244.0.9", [8080]));
  const backend = podInfo(pod);
  for (const p of [caller, backend]) world.pods.set(keyOf(p.namespace, p.name), p);
  world.services.set(
    keyOf(NS, name),
    serviceInfo({
      metadata: { namespace: NS, name },
      spec: {
        selector: { app: name },
        ports: [
          { name: "http", port: 80, targetPort: 8080 },
          { name: "metrics", port: 9090, targetPort: 9090 },
        ],
      },
    }),
  );
  world.endpointSlices.set(
    keyOf(NS, `${name}-1`),
    endpointSliceInfo({
      addressType: "IPv4",
      metadata: { namespace: NS, name: `${name}-1`, labels: { "kubernetes.io/service-name": name } },
      ports: [
        { name: "http", port: 8080 },
        { name: "metrics", port: 9090 },
      ],
      endpoints: [{ addresses: [backend.ip], targetRef: { kind: "Pod", namespace: NS, name: backend.name } }],
    })!,
  );
  return { world, caller, backend, name };
}

/** The caller's cluster for the Service's `port`. */
function clusterFor(pod: V1Pod, port = 80) {
  const { world, caller, name } = meshWith(pod);
  const config = computeProxyConfig(world, caller, new Map(), DEFAULT_SETTINGS);
  const cluster = config.clusters.find((c) => c.name === `outbound|${port}||${name}.${NS}.svc.cluster.local`);
  assert.ok(cluster, `no cluster for ${name} in ${config.clusters.map((c) => c.name).join(", ")}`);
  return cluster;
}

/** The pod's own inbound listeners: name, port, and the endpoint its route leads to. */
function inboundOf(pod: V1Pod) {
  const { world, backend } = meshWith(pod);
  const config = computeProxyConfig(world, backend, new Map(), DEFAULT_SETTINGS);
  return config.listeners
    .filter((l) => l.direction === "Inbound")
    .map((l) => {
      const cluster = config.clusters.find((c) => c.name === l.virtualHosts[0]!.routes[0]!.backends![0]!.cluster)!;
      return { name: l.name, port: l.port, to: cluster.endpoints };
    });
}

const withoutFlag = (pod: V1Pod, flag: string) => {
  const init = pod.spec!.initContainers!.find((c) => c.name === "weft-init")!;
  init.args!.splice(init.args!.indexOf(flag), 2);
  return pod;
};

const SA = ["spiffe://cluster.local/ns/shop/sa/default"];

describe("inbound capture: every port through the sidecar, each to its own listener", () => {
  it("reads what weft-init captures from the injected container's arguments", () => {
    assert.deepEqual(inboundCapture(injected("web", "10.244.0.5", [8080, 9090])), { ports: "*", excluded: [15000] });
    assert.deepEqual(inboundCapture(injected("web", "10.244.0.5", [8080], { "weft.dev/exclude-inbound-ports": "9090" })), {
      ports: "*",
      excluded: [9090, 15000],
    });
    assert.equal(inboundCapture({ spec: { containers: [] } }), undefined, "no weft-init");
  });

  it("a declared port: mTLS to the peer's identity, and the peer listens for it on port + 32768", () => {
    const pod = injected("web", "10.244.0.5", [8080]);
    const cluster = clusterFor(pod);
    assert.deepEqual(cluster.endpoints, [{ address: "10.244.0.5", port: 8080 }]);
    assert.deepEqual(cluster.tls?.identities, SA);
    assert.deepEqual(inboundOf(pod), [
      { name: "inbound|8080", port: 40848, to: [{ address: "127.0.0.1", port: 8080 }] },
      { name: "inbound|9090", port: 41858, to: [{ address: "127.0.0.1", port: 9090 }] },
    ]);
    // What each port carries, as the Service port that sends there says (docs/tcp.md): "http" is
    // HTTP; "metrics" says nothing, so HTTP is detected and anything else carried as TCP.
    const { world, backend } = meshWith(pod);
    const tcp = computeProxyConfig(world, backend, new Map(), DEFAULT_SETTINGS).listeners.map((l) => [l.name, l.tcp]);
    assert.deepEqual(tcp, [
      ["outbound", undefined],
      ["inbound|8080", undefined],
      ["inbound|9090", { cluster: "inbound|9090||", detectHttpMs: 5000 }],
    ]);
  });

  it("ports the app never declared are captured too: its Services' target ports get listeners and mTLS", () => {
    const pod = injected("echo", "10.244.0.5", []);
    assert.deepEqual(clusterFor(pod).tls?.identities, SA);
    assert.deepEqual(clusterFor(pod, 9090).tls?.identities, SA);
    assert.deepEqual(
      inboundOf(pod).map((l) => [l.port, l.to[0]!.port]),
      [
        [40848, 8080],
        [41858, 9090],
      ],
      "each port to itself, not every port to the first one",
    );
  });

  it("a port the pod excludes reaches the app directly: plain from callers, no listener", () => {
    const pod = injected("web", "10.244.0.5", [8080, 9090], { "weft.dev/exclude-inbound-ports": "9090" });
    assert.deepEqual(clusterFor(pod).tls?.identities, SA);
    assert.equal(clusterFor(pod, 9090).tls, undefined);
    assert.deepEqual(
      inboundOf(pod).map((l) => l.name),
      ["inbound|8080"],
    );
  });

  it("weft-init given a port list (by hand) captures only those", () => {
    const pod = injected("web", "10.244.0.5", [8080]);
    const init = pod.spec!.initContainers!.find((c) => c.name === "weft-init")!;
    init.args![init.args!.indexOf("--include-inbound-ports") + 1] = "8080";
    assert.deepEqual(clusterFor(pod).tls?.identities, SA);
    assert.equal(clusterFor(pod, 9090).tls, undefined);
  });

  it("a pod without --include-inbound-ports (redirected by hand, or local mode): every port is mTLS, one inbound listener on 15006", () => {
    const pod = withoutFlag(injected("old", "10.244.0.5", []), "--include-inbound-ports");
    assert.deepEqual(clusterFor(pod).tls?.identities, SA);
    assert.deepEqual(inboundOf(pod), [{ name: "inbound", port: 15006, to: [{ address: "127.0.0.1", port: 8080 }] }]);
  });

  it("the injector refuses a declared port above 32767 unless the pod excludes it", () => {
    const input = (annotations: Record<string, string>) => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { namespace: NS, name: "high", annotations },
      spec: { containers: [{ name: "app", image: "x", ports: [{ containerPort: 40000 }] }] },
    });
    const refused = injectPod(input({}), INJECT_SETTINGS);
    assert.equal(refused.outcome, "refused");
    assert.match(
      JSON.stringify(refused),
      /container \\"app\\" declares port 40000, above 32767, the highest port weft's sidecar can capture: .*weft.dev\/exclude-inbound-ports: \\"40000\\"/,
    );
    assert.equal(injectPod(input({ "weft.dev/exclude-inbound-ports": "40000" }), INJECT_SETTINGS).outcome, "injected");
  });
});
