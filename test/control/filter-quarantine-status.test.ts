// runtimes: node
// needs: k8s
// A filter that keeps trapping is quarantined by the sidecar (proxy/filters/quarantine.ts), and the
// WasmFilter's status says so (issue 17): on a real kube-apiserver, with `weft control` and
// `weft proxy --control-plane` as processes, a FailOpen filter that traps on every request trips
// its quarantine; the sidecar re-acknowledges what it runs with the filter quarantined, Ready
// turns False with reason Quarantined (what `kubectl get` and `weft status` show), and once the
// back-off passes without requests it is Running again, with no new configuration pushed.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { startCluster, freePorts, type Cluster } from "../k8s/cluster.ts";
import { startUpstream, type Upstream } from "../support/upstream.ts";
import { namespaceYaml, podYaml, serviceAccountYaml, serviceYaml } from "../support/service.ts";
import { startRegistry, type TestRegistry } from "../support/registry.ts";
import { request } from "../support/client.ts";
import {
  applyCrds,
  hostAddress,
  startControl,
  startSidecar,
  until,
  weftStatus,
  writeMeshRoot,
  writeProxyToken,
  type ControlProcess,
  type SidecarProcess,
} from "../support/control-process.ts";
import { HOSTILE, filterModule, op, proceed, set, whenHostile } from "../hostile/wasm-modules.ts";
import { sha256Hex } from "../../proxy/filters/module.ts";
import { QUARANTINE_POLICY } from "../../proxy/filters/quarantine.ts";
import { RegistryClient } from "../../shared/oci-registry.ts";

const HOST = hostAddress();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Traps on every request that carries the hostile header; the others pass.
const TRAPPER = filterModule({ phases: { on_request_headers: [...set("x-ran", "yes"), ...whenHostile(op.unreachable), ...proceed] } });

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

describe("a quarantined filter in the WasmFilter's status", () => {
  let k8s: Cluster;
  let registry: TestRegistry;
  let ledger: Upstream;
  let control: ControlProcess | null = null;
  let web: SidecarProcess | null = null;
  let scratch: string;
  const kubectl = (args: string[], input?: string) => k8s.kubectl(args, input);
  const apply = (yaml: string) => kubectl(["apply", "-f", "-"], yaml);
  const status = async () =>
    (
      JSON.parse(await kubectl(["get", "wasmfilter", "trapper", "-n", "shop", "-o", "json"])) as {
        status?: { ready?: string; conditions?: Condition[] };
      }
    ).status ?? {};
  const ready = async (reason: string) => {
    const s = await status();
    const c = s.conditions?.find((x) => x.type === "Ready");
    return c?.reason === reason ? { ...c, ready: s.ready } : null;
  };

  before(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), "weft-quarantine-status-"));
    [k8s, registry, ledger] = await Promise.all([
      startCluster({ controllerManager: false }),
      startRegistry(),
      startUpstream("ledger", 0, HOST),
    ]);
    const url = `oci://${registry.host}/filters/trapper:v1`;
    await new RegistryClient().pushWasm(url, TRAPPER, { plainHttp: true, annotations: {} });
    await applyCrds(k8s);
    await apply(`
${namespaceYaml("weft-system")}---
${namespaceYaml("shop")}---
${serviceAccountYaml("shop", "web")}---
${podYaml({ namespace: "shop", name: "web-0", app: "web", serviceAccount: "web", port: 8080 })}---
${serviceYaml({ namespace: "shop", name: "ledger", targetPort: ledger.port, address: HOST })}---
apiVersion: weft.dev/v1alpha1
kind: WasmFilter
metadata: { name: trapper, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  url: ${url}
  sha256: "${sha256Hex(TRAPPER)}"
  failStrategy: FailOpen
`);
    await writeProxyToken(k8s, "shop", "web", path.join(scratch, "web.token"));
    const [port] = (await freePorts(1)) as [number];
    control = await startControl(k8s, { port, insecureRegistries: [registry.host] });
    await writeMeshRoot(k8s, "weft-system", path.join(scratch, "ca.crt"));
    web = await startSidecar({
      controlPlane: control.url,
      caFile: path.join(scratch, "ca.crt"),
      namespace: "shop",
      pod: "web-0",
      tokenFile: path.join(scratch, "web.token"),
      tmp: path.join(scratch, "web"),
    });
  });

  after(async () => {
    await web?.stop();
    await control?.stop();
    await Promise.all([registry?.stop(), ledger?.close(), k8s?.stop()]);
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it("Ready turns False (Quarantined) while the sidecar has the filter quarantined, and Running once the back-off passed", async () => {
    const running = await until("Ready=True (Running) on the one selected pod", () => ready("Running"), 60_000);
    assert.equal(running.status, "True");
    assert.equal(running.ready, "1/1");
    const version = (await web!.dump()).version;

    // Requests that make it trap, one after another, until the status says Quarantined: past the
    // first back-off the next one fails again and the back-off doubles, so the quarantine holds
    // for as long as they come, whatever the status write takes. FailOpen: every one is answered.
    let loading = true;
    let sent = 0;
    const load = (async () => {
      while (loading) {
        const reply = await request(web!.outbound, { path: "/", host: "ledger.shop", headers: { [HOSTILE]: "1" } });
        assert.equal(reply.status, 200, `FailOpen: the trap skips the filter, the request is served (${reply.body})`);
        sent++;
        await sleep(20);
      }
    })();
    try {
      const quarantined = await until("Ready=False (Quarantined)", () => ready("Quarantined"), 60_000);
      assert.ok(sent >= QUARANTINE_POLICY.failures, `${sent} requests`);
      assert.equal(quarantined.status, "False");
      assert.equal(quarantined.ready, "0/1", "its failStrategy answers on web-0: the filter does not run there");
      assert.match(
        quarantined.message,
        /^0 of 1 selected pods run sha256:[0-9a-f]{64}; 1 has it quarantined after repeated failures \(shop\/web-0: it failed \d+ times (?:in \d+ calls )?within (?:1|10) s \(the last: the filter trapped: unreachable\); back-off \d+ s, until \d{4}-\d\d-\d\dT[0-9:.]+Z\), so its failStrategy FailOpen applies there \(requests skip it\) until the back-off ends$/,
      );
      // What `kubectl get` shows: the REASON column is Ready's reason.
      const table = await kubectl(["get", "wasmfilter", "trapper", "-n", "shop"]);
      assert.match(table, /^trapper\s+(<none>\s+)?True\s+True\s+0\/1\s+Quarantined\s/m, table);
      // And `weft status`: the sidecar's state and the WasmFilter's PROBLEM.
      const out = await until("weft status to show the quarantine", async () => {
        const text = await weftStatus(k8s, ["-o", "wide"]);
        return /^shop\/web-0\s+\S+\s+running; quarantined shop\/trapper \(until \S+: it failed/m.test(text) ? text : null;
      });
      assert.match(out, /^shop\/trapper\s+True\s+0\/1\s+[0-9a-f]{12}\s+Ready: Quarantined: 0 of 1 selected pods run/m, out);
    } finally {
      loading = false;
      await load;
    }

    // No more requests: the back-off passes (at most the 60 s cap), the sidecar says so, Ready is True again.
    const back = await until(
      "Ready=True (Running) once the back-off passed",
      () => ready("Running"),
      QUARANTINE_POLICY.maxBackoffMs + 30_000,
    );
    assert.equal(back.status, "True");
    assert.equal(back.ready, "1/1");
    const dump = await web!.dump();
    assert.equal(dump.version, version, "a re-acknowledgement, not a new configuration, carried both changes");
    assert.ok(!dump.filterStatus.some((f) => "quarantine" in f), "the sidecar has no quarantine left");
    const out = await weftStatus(k8s, ["-o", "wide"]);
    assert.match(out, /^shop\/web-0\s+\S+\s+running\s/m, out);
    assert.doesNotMatch(out, /quarantined/, out);
    // The filter runs again: a request without the hostile header passes through it.
    assert.equal((await request(web!.outbound, { path: "/", host: "ledger.shop" })).status, 200);
  });
});
