// runtimes: node
// GAMMA's producer and consumer routes: an HTTPRoute in the Service's own namespace (a producer
// route) is for every client; one in another namespace (a consumer route) is only for that
// namespace's clients, in place of the producer's. Gateway API's MeshConsumerRoute test asks it.
// The control plane's model is filled as the API server holds the objects, and each client's
// configuration is computed as its sidecar gets it.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { podInfo, serviceInfo } from "../../control/kubernetes/convert.ts";
import { httpRouteInfo } from "../../control/kubernetes/httproute.ts";
import { computeProxyConfig, DEFAULT_SETTINGS } from "../../control/mesh/proxy-config.ts";
import { emptyWorld, keyOf, type MeshWorld } from "../../control/mesh/world.ts";

function world(): MeshWorld {
  const w = emptyWorld();
  for (const name of ["ledger", "ledger-v2"])
    w.services.set(keyOf("payments", name), serviceInfo({ metadata: { namespace: "payments", name }, spec: { ports: [{ port: 80 }] } }));
  const route = (namespace: string, name: string, backend: string) => {
    const info = httpRouteInfo({
      metadata: { namespace, name },
      spec: {
        parentRefs: [{ group: "", kind: "Service", name: "ledger", namespace: "payments", port: 80 }],
        rules: [{ backendRefs: [{ name: backend, namespace: "payments", port: 80 }] }],
      },
    });
    w.httpRoutes.set(keyOf(namespace, name), info!);
  };
  route("payments", "producer", "ledger-v2");
  route("shop", "consumer", "ledger");
  route("elsewhere", "someone-elses", "ledger-v2");
  return w;
}

/** The route names a client in `namespace` gets for ledger.payments:80. */
function routesFor(w: MeshWorld, namespace: string): string[] {
  const client = podInfo({
    metadata: { namespace, name: "client", labels: { app: "client" } },
    spec: { containers: [] },
    status: { podIP: "10.0.0.9" },
  });
  w.pods.set(keyOf(namespace, "client"), client);
  const config = computeProxyConfig(w, client, new Map(), DEFAULT_SETTINGS);
  const outbound = config.listeners.find((l) => l.direction === "Outbound")!;
  const host = outbound.virtualHosts.find((vh) => vh.name === "ledger.payments:80");
  assert.ok(host, `a virtual host for ledger.payments:80 in ${JSON.stringify(outbound.virtualHosts.map((vh) => vh.name))}`);
  return host.routes.map((r) => r.name ?? "");
}

describe("HTTPRoutes for mesh clients by namespace (GAMMA)", () => {
  it("a client in the consumer route's namespace follows it and not the producer's", () => {
    assert.deepEqual(routesFor(world(), "shop"), ["shop/consumer/0"]);
  });

  it("a client elsewhere follows the producer route; another namespace's consumer route is not for it", () => {
    assert.deepEqual(routesFor(world(), "billing"), ["payments/producer/0"]);
    assert.deepEqual(routesFor(world(), "payments"), ["payments/producer/0"]);
  });

  it("without a producer route, a client with no consumer route of its own gets the Service's default route", () => {
    const w = world();
    w.httpRoutes.delete(keyOf("payments", "producer"));
    assert.deepEqual(routesFor(w, "billing"), ["default"]);
    assert.deepEqual(routesFor(w, "elsewhere"), ["elsewhere/someone-elses/0"]);
  });

  it("where two routes' rules tie, the older route's come first (Gateway API), then namespace/name", () => {
    const w = world();
    const producer = (name: string, createdAt: string) => {
      const info = httpRouteInfo({
        metadata: { namespace: "payments", name, creationTimestamp: createdAt },
        spec: {
          parentRefs: [{ group: "", kind: "Service", name: "ledger", port: 80 }],
          rules: [{ backendRefs: [{ name: "ledger", port: 80 }] }],
        },
      });
      w.httpRoutes.set(keyOf("payments", name), info!);
    };
    w.httpRoutes.delete(keyOf("payments", "producer"));
    producer("a-newer", "2026-12-07T10:00:00Z");
    producer("z-older", "2026-12-01T10:00:00Z");
    assert.deepEqual(routesFor(w, "billing"), ["payments/z-older/0", "payments/a-newer/0"]);
  });
});
