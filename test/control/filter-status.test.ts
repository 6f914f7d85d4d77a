// runtimes: node
// A sidecar that acknowledges a configuration but could not load one of its filters: the hub
// keeps the filter out of what it runs, and the WasmFilter's Ready condition says LoadFailed
// with the pod and the reason (the sidecar answers that filter's requests with its failStrategy).
// One that has a filter quarantined (proxy/filters/quarantine.ts) says so in a re-acknowledgement:
// Ready is False with reason Quarantined, the pod, why and until when, and Running again once the
// sidecar says the quarantine ended.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createLogger } from "../../shared/log.ts";
import { FilterDistribution } from "../../control/distribution/filters.ts";
import { FilterResolver } from "../../control/distribution/resolve.ts";
import { wasmFilterStatus } from "../../control/mesh/filter-status.ts";
import { emptyWorld, keyOf, type PodInfo } from "../../control/mesh/world.ts";
import { newProxySession, PushHub, type ProxySession } from "../../control/push/hub.ts";
import { reportOf } from "../../control/push/report.ts";
import { parseWasmFilter } from "../../control/resources/wasm-filter.ts";

const log = createLogger({}, "error");

/** Two pods of app web, a WasmFilter selecting them with a module in force, and a hub both sidecars are connected to. */
async function mesh(spec: { failStrategy?: string } = {}) {
  const world = emptyWorld();
  const pod = (name: string): PodInfo => ({
    namespace: "shop",
    name,
    labels: { app: "web" },
    workload: "web",
    serviceAccount: "web",
    ip: "10.0.0.1",
    inMesh: true,
    containerPorts: [],
  });
  for (const name of ["web-0", "web-late"]) world.pods.set(keyOf("shop", name), pod(name));
  // A module in force (the digest its status reports, kept while no registry answers).
  const parsed = parseWasmFilter({
    apiVersion: "weft.dev/v1alpha1",
    kind: "WasmFilter",
    metadata: { name: "rewrite", namespace: "shop" },
    spec: { selector: { matchLabels: { app: "web" } }, url: "oci://127.0.0.1:1/f:1", ...spec },
    status: { sha256: "a".repeat(64) },
  });
  assert.ok(parsed.ok);
  const filter = parsed.value;
  world.wasmFilters.set(keyOf("shop", "rewrite"), filter);

  // What the hub computes for every proxy: changed by a test to send a new version.
  const computed = { config: { listeners: [] as unknown[] }, filters: ["shop/rewrite"] };
  const hub = new PushHub({ log, compute: () => ({ ...computed }), acknowledged: () => {} });
  const session = (name: string): ProxySession => newProxySession("shop", name, () => true);
  const sessions = [session("web-0"), session("web-late")];
  for (const s of sessions) hub.connect(s, null);

  const distribution = new FilterDistribution({
    resolver: new FilterResolver({ insecureRegistries: new Set(), maxBytes: 1024, allowFiles: false, marketplace: async () => null }),
    log,
    credentials: async () => ({ username: "", password: "" }),
    changed: () => {},
  });
  distribution.sync([filter]);
  await distribution.settled();
  distribution.stop();
  const status = () => wasmFilterStatus(world, distribution, filter, reportOf(hub.connected), new Date().toISOString());
  const ready = () => status().conditions!.find((c) => c.type === "Ready")!;
  return { filter, hub, sessions, version: sessions[0]!.sent!.version, computed, status, ready };
}

describe("status of a filter a sidecar could not load", () => {
  it("counts it as not running and says LoadFailed with the pod and reason", async () => {
    const { hub, sessions, version, status, ready } = await mesh();
    hub.ack({ namespace: "shop", pod: "web-0" }, version, true, undefined);
    hub.ack({ namespace: "shop", pod: "web-late" }, version, true, undefined, {
      unavailable: [{ filter: "shop/rewrite", reason: "cannot fetch module sha256 abc from the control plane: HTTP 404" }],
    });
    assert.deepEqual(sessions[1]!.acked!.filters, [], "the filter it could not load is not among what it runs");

    const report = reportOf(hub.connected);
    assert.deepEqual(report.find((r) => r.pod === "shop/web-late")?.unavailable, [
      { filter: "shop/rewrite", reason: "cannot fetch module sha256 abc from the control plane: HTTP 404" },
    ]);
    assert.equal(status().ready, "1/2");
    assert.equal(ready().reason, "LoadFailed");
    assert.match(
      ready().message,
      /1 of 2 selected pods run .*; 1 cannot load it \(shop\/web-late: cannot fetch module sha256 abc from the control plane: HTTP 404\), so its failStrategy FailClose applies there \(requests are refused\)/,
    );

    // Any change recomputes every proxy; the same configuration again must not count the
    // filter it could not load as running (it did, and LoadFailed flipped back to Running).
    hub.refresh();
    assert.deepEqual(sessions[1]!.acked!.filters, [], "a recomputation put the filter it could not load back among what it runs");
    assert.equal(status().ready, "1/2");

    // Once it loads the module and acknowledges again, it counts as running.
    hub.ack({ namespace: "shop", pod: "web-late" }, version, true, undefined, {});
    assert.equal(status().ready, "2/2");
  });
});

describe("status of a filter a sidecar has quarantined", () => {
  const REASON = "it failed 5 times in 5 calls within 10 s (the last: the filter trapped: unreachable)";
  const held = (filter = "shop/rewrite") => ({
    quarantined: [{ filter, reason: REASON, backoffMs: 1000, until: "2030-01-01T00:00:01.000Z" }],
  });

  it("says Ready False, Quarantined, with the pod, why and until when; Running again once the sidecar says it ended", async () => {
    const { hub, version, status, ready } = await mesh({ failStrategy: "FailOpen" });
    for (const pod of ["web-0", "web-late"]) hub.ack({ namespace: "shop", pod }, version, true, undefined);
    assert.equal(ready().reason, "Running");
    const runningSince = ready().lastTransitionTime;

    // The sidecar of web-0 re-acknowledges what it runs with the filter quarantined.
    hub.ack({ namespace: "shop", pod: "web-0" }, version, true, undefined, held());
    assert.deepEqual(reportOf(hub.connected).find((r) => r.pod === "shop/web-0")?.quarantined, held().quarantined);
    const quarantined = status();
    assert.equal(quarantined.ready, "1/2", "its failStrategy answers on web-0: the filter does not run there");
    const condition = quarantined.conditions!.find((c) => c.type === "Ready")!;
    assert.equal(condition.status, "False");
    assert.equal(condition.reason, "Quarantined");
    assert.equal(
      condition.message,
      `1 of 2 selected pods run sha256:${"a".repeat(64)}; 1 has it quarantined after repeated failures (shop/web-0: ${REASON}; back-off 1 s, until 2030-01-01T00:00:01.000Z), so its failStrategy FailOpen applies there (requests skip it) until the back-off ends`,
    );

    // Another filter's quarantine is not this one's.
    hub.ack({ namespace: "shop", pod: "web-0" }, version, true, undefined, held("shop/other"));
    assert.equal(ready().reason, "Running");
    assert.equal(status().ready, "2/2");

    // Quarantined again, then the sidecar says it ended (its back-off passed).
    hub.ack({ namespace: "shop", pod: "web-0" }, version, true, undefined, held());
    assert.equal(ready().reason, "Quarantined");
    hub.ack({ namespace: "shop", pod: "web-0" }, version, true, undefined, {});
    assert.equal(ready().reason, "Running");
    assert.equal(status().ready, "2/2");
    assert.ok(runningSince, "conditions have a transition time");
  });

  it("says LoadFailed when another pod cannot load it, naming the quarantine too", async () => {
    const { hub, version, status, ready } = await mesh();
    hub.ack({ namespace: "shop", pod: "web-0" }, version, true, undefined, held());
    hub.ack({ namespace: "shop", pod: "web-late" }, version, true, undefined, {
      unavailable: [{ filter: "shop/rewrite", reason: "cannot fetch it" }],
    });
    assert.equal(status().ready, "0/2");
    assert.equal(ready().reason, "LoadFailed");
    assert.match(
      ready().message,
      /^0 of 2 selected pods run sha256:a+; 1 cannot load it \(shop\/web-late: cannot fetch it\); 1 has it quarantined after repeated failures \(shop\/web-0: .*\), so its failStrategy FailClose applies there \(requests are refused\)$/,
    );
  });

  it("a re-acknowledgement of the version a sidecar runs keeps the newer version it rejected, and what it runs", async () => {
    const { hub, sessions, version, computed } = await mesh();
    hub.ack({ namespace: "shop", pod: "web-0" }, version, true, undefined);
    computed.config = { listeners: [{ name: "changed" }] };
    hub.refresh();
    const newer = sessions[0]!.sent!.version;
    assert.notEqual(newer, version);
    hub.ack({ namespace: "shop", pod: "web-0" }, newer, false, "listeners[0]: refused");
    hub.ack({ namespace: "shop", pod: "web-0" }, version, true, undefined, held());
    const entry = reportOf(hub.connected).find((r) => r.pod === "shop/web-0")!;
    assert.deepEqual(entry.rejected, { version: newer, error: "listeners[0]: refused" }, "the rejection of the newer version stays");
    assert.equal(entry.running, version);
    assert.deepEqual(entry.filters, ["shop/rewrite"], "the filters of what it runs stay");
    assert.deepEqual(entry.quarantined, held().quarantined);
  });
});
