// runtimes: node
// What a pod's sidecar captures outbound to Services, and what the control plane makes of it.
// With the cluster's Service range, the injected weft-init sends the app's TCP to port P of a
// Service's address to ClusterIP:P + 32768 (control/init/rules.ts and routing.ts;
// test/control/init.test.ts runs them), so the pod's configuration needs a listener there for
// each Service port, carrying what the port says, and its inbound listeners must leave those
// ports to them (they bind the pod's own IP). Pods go through the real injector, then the
// control plane's model of them, then the configuration computed for them.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { V1Pod } from "@kubernetes/client-node";
import { injectPod } from "../../control/inject/patch.ts";
import { DEFAULT_SETTINGS as INJECT_SETTINGS, type InjectSettings } from "../../control/inject/settings.ts";
import { endpointSliceInfo, podInfo, serviceInfo } from "../../control/kubernetes/convert.ts";
import { computeProxyConfig, DEFAULT_SETTINGS } from "../../control/mesh/proxy-config.ts";
import { emptyWorld, keyOf } from "../../control/mesh/world.ts";

const NS = "shop";
const CIDR = "10.96.0.0/12";
const CAPTURING: InjectSettings = { ...INJECT_SETTINGS, serviceCidrs: [CIDR] };

function injected(name: string, ip: string, settings: InjectSettings, ports: number[] = []): V1Pod {
  const input = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { namespace: NS, name, labels: { app: name } },
    spec: {
      serviceAccountName: name,
      containers: [{ name: "app", image: "app", ...(ports.length ? { ports: ports.map((containerPort) => ({ containerPort })) } : {}) }],
    },
  };
  const r = injectPod(input, settings);
  assert.equal(r.outcome, "injected");
  return { ...(r.pod as V1Pod), status: ip ? { podIP: ip } : {} };
}

/** A mesh with `client` and a "cache" pod behind Service cache (10.96.3.7), and a Service outside the range. */
function meshWith(client: V1Pod) {
  const world = emptyWorld();
  const caller = podInfo(client);
  const cache = podInfo(injected("cache", "10.244.0.20", CAPTURING, [6379]));
  for (const p of [caller, cache]) world.pods.set(keyOf(p.namespace, p.name), p);
  const service = (name: string, clusterIP: string, ports: { name: string; port: number; appProtocol?: string }[]) =>
    world.services.set(
      keyOf(NS, name),
      serviceInfo({ metadata: { namespace: NS, name }, spec: { clusterIP, selector: { app: "cache" }, ports } }),
    );
  service("cache", "10.96.3.7", [
    { name: "redis", port: 6379 },
    { name: "http", port: 80 },
    { name: "admin", port: 9090 },
    { name: "tcp-high", port: 40000 },
  ]);
  service("elsewhere", "10.200.0.5", [{ name: "redis", port: 6379 }]);
  world.endpointSlices.set(
    keyOf(NS, "cache-1"),
    endpointSliceInfo({
      addressType: "IPv4",
      metadata: { namespace: NS, name: "cache-1", labels: { "kubernetes.io/service-name": "cache" } },
      ports: [
        { name: "redis", port: 6379 },
        { name: "http", port: 6379 },
        { name: "admin", port: 9090 },
        { name: "tcp-high", port: 40000 },
      ],
      endpoints: [{ addresses: [cache.ip], targetRef: { kind: "Pod", namespace: NS, name: "cache" } }],
    })!,
  );
  return { world, caller };
}

describe("Service capture: the injector, the pod model and the client's listeners", () => {
  it("the injector gives weft-init the Service range, and the pod model reads back which ports it captures", () => {
    const pod = injected("client", "10.244.0.9", CAPTURING, [8080]);
    const args = pod.spec!.initContainers!.find((c) => c.name === "weft-init")!.args!;
    assert.deepEqual(args.slice(args.indexOf("--service-cidr"), args.indexOf("--service-cidr") + 2), ["--service-cidr", CIDR]);
    assert.deepEqual(podInfo(pod).serviceCapture, { cidrs: [CIDR], kept: [80, 8080] });
    assert.equal(podInfo(injected("plain", "10.244.0.9", INJECT_SETTINGS)).serviceCapture, undefined);
  });

  it("one listener per captured Service port, on ClusterIP:port + 32768, carrying what the port says", () => {
    const { world, caller } = meshWith(injected("client", "10.244.0.9", CAPTURING, [8080]));
    const config = computeProxyConfig(world, caller, new Map(), DEFAULT_SETTINGS);
    const outbound = config.listeners.filter((l) => l.name.startsWith("outbound|"));
    assert.deepEqual(
      outbound.map((l) => [l.name, l.address, l.port]),
      [
        ["outbound|10.96.3.7:6379", "10.96.3.7", 39147],
        ["outbound|10.96.3.7:9090", "10.96.3.7", 41858],
      ],
      "not 80 (the outbound listener's, by Host), not 40000 (beyond the shift), not a Service outside the range",
    );
    const [redis, admin] = outbound;
    assert.deepEqual(redis!.tcp, { cluster: "outbound|6379||cache.shop.svc.cluster.local" });
    assert.deepEqual(redis!.virtualHosts, []);
    assert.deepEqual(admin!.tcp, { cluster: "outbound|9090||cache.shop.svc.cluster.local", detectHttpMs: 5000 });
    assert.ok(
      admin!.virtualHosts.some((vh) => vh.domains.includes("cache:9090")),
      "detected HTTP is routed by Host, as on the outbound port",
    );
    const cluster = config.clusters.find((c) => c.name === "outbound|6379||cache.shop.svc.cluster.local");
    assert.deepEqual(cluster?.tls, { identities: ["spiffe://cluster.local/ns/shop/sa/cache"] }, "mTLS to the Redis pod's sidecar");
  });

  it("the inbound listeners take the pod's own IP, leaving ClusterIP:port + 32768 to the Service listeners; none before the pod has one", () => {
    const { world, caller } = meshWith(injected("client", "10.244.0.9", CAPTURING, [6379]));
    const inbound = computeProxyConfig(world, caller, new Map(), DEFAULT_SETTINGS).listeners.filter((l) => l.direction === "Inbound");
    assert.deepEqual(
      inbound.map((l) => [l.name, l.address, l.port]),
      [["inbound|6379", "10.244.0.9", 39147]],
    );
    const early = meshWith(injected("client", "", CAPTURING, [6379]));
    assert.deepEqual(
      computeProxyConfig(early.world, early.caller, new Map(), DEFAULT_SETTINGS).listeners.filter((l) => l.direction === "Inbound"),
      [],
    );
  });

  it("a pod injected without a Service range keeps its inbound listeners on every address and gets no Service listeners; the outbound one is on loopback only", () => {
    const { world, caller } = meshWith(injected("client", "10.244.0.9", INJECT_SETTINGS, [8080]));
    const config = computeProxyConfig(world, caller, new Map(), DEFAULT_SETTINGS);
    assert.deepEqual(
      config.listeners.map((l) => [l.name, l.address]),
      [
        ["outbound", "127.0.0.1"],
        ["inbound|8080", "0.0.0.0"],
      ],
    );
  });
});
