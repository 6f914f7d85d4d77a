// runtimes: node
// A sidecar that acknowledges a configuration but could not load one of its filters: the hub
// keeps the filter out of what it runs, and the WasmFilter's Ready condition says LoadFailed
// with the pod and the reason (the sidecar answers that filter's requests with its failStrategy).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createLogger } from "../../shared/log.ts";
import { FilterDistribution } from "../../control/distribution/filters.ts";
import { FilterResolver } from "../../control/distribution/resolve.ts";
import { wasmFilterStatus } from "../../control/mesh/filter-status.ts";
import { emptyWorld, keyOf, type PodInfo } from "../../control/mesh/world.ts";
import { PushHub, type ProxySession } from "../../control/push/hub.ts";
import { reportOf } from "../../control/push/report.ts";
import { parseWasmFilter } from "../../control/resources/wasm-filter.ts";

const log = createLogger({}, "error");

describe("status of a filter a sidecar could not load", () => {
  it("counts it as not running and says LoadFailed with the pod and reason", async () => {
    const world = emptyWorld();
    const pod = (name: string): PodInfo => ({
      namespace: "shop",
      name,
      labels: { app: "web" },
      serviceAccount: "web",
      ip: "10.0.0.1",
      inMesh: true,
      containerPorts: [],
    });
    for (const name of ["web-0", "web-late"]) world.pods.set(keyOf("shop", name), pod(name));
    // A module in force (the digest its status reports, kept while no registry answers) that one sidecar cannot fetch.
    const parsed = parseWasmFilter({
      apiVersion: "weft.dev/v1alpha1",
      kind: "WasmFilter",
      metadata: { name: "rewrite", namespace: "shop" },
      spec: { selector: { matchLabels: { app: "web" } }, url: "oci://127.0.0.1:1/f:1" },
      status: { sha256: "a".repeat(64) },
    });
    assert.ok(parsed.ok);
    const filter = parsed.value;
    world.wasmFilters.set(keyOf("shop", "rewrite"), filter);

    const hub = new PushHub({ log, compute: () => ({ config: { listeners: [] }, filters: ["shop/rewrite"] }), acknowledged: () => {} });
    const session = (name: string): ProxySession => ({
      namespace: "shop",
      pod: name,
      send: () => true,
      sent: null,
      acked: null,
      rejected: null,
      unavailable: [],
      connectedAt: Date.now(),
    });
    const sessions = [session("web-0"), session("web-late")];
    for (const s of sessions) hub.connect(s, null);
    const version = sessions[0]!.sent!.version;
    hub.ack({ namespace: "shop", pod: "web-0" }, version, true, undefined);
    hub.ack({ namespace: "shop", pod: "web-late" }, version, true, undefined, [
      { filter: "shop/rewrite", reason: "cannot fetch module sha256 abc from the control plane: HTTP 404" },
    ]);
    assert.deepEqual(sessions[1]!.acked!.filters, [], "the filter it could not load is not among what it runs");

    const distribution = new FilterDistribution({
      resolver: new FilterResolver({ insecureRegistries: new Set(), maxBytes: 1024, allowFiles: false, marketplace: async () => null }),
      log,
      credentials: async () => ({ username: "", password: "" }),
      changed: () => {},
    });
    distribution.sync([filter]);
    await distribution.settled();
    distribution.stop();
    const report = reportOf(hub.connected);
    assert.deepEqual(report.find((r) => r.pod === "shop/web-late")?.unavailable, [
      { filter: "shop/rewrite", reason: "cannot fetch module sha256 abc from the control plane: HTTP 404" },
    ]);
    const status = wasmFilterStatus(world, distribution, filter, report, new Date().toISOString());
    const ready = status.conditions!.find((c) => c.type === "Ready")!;
    assert.equal(status.ready, "1/2");
    assert.equal(ready.reason, "LoadFailed");
    assert.match(
      ready.message,
      /1 of 2 selected pods run .*; 1 cannot load it \(shop\/web-late: cannot fetch module sha256 abc from the control plane: HTTP 404\), so its failStrategy FailClose applies there \(requests are refused\)/,
    );

    // Any change recomputes every proxy; the same configuration again must not count the
    // filter it could not load as running (it did, and LoadFailed flipped back to Running).
    hub.refresh();
    assert.deepEqual(sessions[1]!.acked!.filters, [], "a recomputation put the filter it could not load back among what it runs");
    assert.equal(wasmFilterStatus(world, distribution, filter, reportOf(hub.connected), new Date().toISOString()).ready, "1/2");

    // Once it loads the module and acknowledges again, it counts as running.
    hub.ack({ namespace: "shop", pod: "web-late" }, version, true, undefined, []);
    const after = wasmFilterStatus(world, distribution, filter, reportOf(hub.connected), new Date().toISOString());
    assert.equal(after.ready, "2/2");
  });
});
