// runtimes: node
// needs: k8s
// What a control plane that restarts keeps in force (issue 14; docs/resources.md, the rule: a
// change that cannot be applied never widens access): a WasmFilter whose spec now holds a config
// its schema refuses keeps its last accepted config, FailOpen and FailClose alike, and an
// AccessPolicy whose targetRef Service is gone, or that is edited from a label selector to a
// targetRef naming no Service, keeps its last good DENY, all read back from their status
// (status.inForce). `weft control` is a real process on a real kube-apiserver,
// killed (SIGKILL) and started again on the same port; real sidecars keep running through it and
// one starts after it. Each test first sees a change made while the control plane was down reach
// a sidecar, so what the sidecars enforce afterwards is what the restarted control plane
// computed, not what they kept from before. Node only.
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
  writeMeshRoot,
  writeProxyToken,
  type ControlProcess,
  type SidecarProcess,
} from "../support/control-process.ts";
import { builtFilter } from "../../sdk/build/cache.ts";
import { RegistryClient } from "../../shared/oci-registry.ts";

const HOST = hostAddress();

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
}
interface Stored {
  metadata: { generation: number };
  status?: { conditions?: Condition[]; inForce?: { generation: number } & Record<string, unknown> };
}
type Dump = Awaited<ReturnType<SidecarProcess["dump"]>>;
type Listener = { name: string; virtualHosts: { name: string }[]; authorization?: { policies: { name: string }[] } };

const listener = (dump: Dump, name: string) => (dump.listeners as Listener[]).find((l) => l.name === name);
const hasVirtualHost = (dump: Dump, host: string) => listener(dump, "outbound")?.virtualHosts.some((v) => v.name === host) ?? false;

describe("a control plane restart keeps the last good version in force", () => {
  let k8s: Cluster;
  let registry: TestRegistry;
  let inventoryApp: Upstream;
  let control: ControlProcess | null = null;
  let controlPort: number;
  let scratch: string;
  let url: string;
  let sha256: string;
  let web: SidecarProcess;
  let inventory: SidecarProcess;
  const sidecars: SidecarProcess[] = [];

  const kubectl = (args: string[], input?: string) => k8s.kubectl(args, input);
  const apply = (yaml: string) => kubectl(["apply", "-f", "-"], yaml);
  const stored = async (kind: string, name: string) => JSON.parse(await kubectl(["get", kind, name, "-n", "shop", "-o", "json"])) as Stored;
  /** Waits until kind/name's condition `type` passes `check` for the current generation; the error shows the last one seen. */
  const conditionWhen = (kind: string, name: string, type: string, check: (c: Condition) => boolean) => {
    let last: Condition | undefined;
    return until(
      `${kind} ${name}'s ${type}`,
      async () => {
        const o = await stored(kind, name);
        last = o.status?.conditions?.find((c) => c.type === type);
        return last && last.observedGeneration === o.metadata.generation && check(last) ? last : null;
      },
      30_000,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; it was ${JSON.stringify(last)}`);
    });
  };
  const sidecar = async (pod: string, sa: string, ports?: { admin: number; outbound: number; inbound: number }) => {
    const s = await startSidecar({
      controlPlane: control!.url,
      caFile: path.join(scratch, "ca.crt"),
      namespace: "shop",
      pod,
      tokenFile: path.join(scratch, `${sa}.token`),
      tmp: path.join(scratch, `tmp-${pod}`),
      ...(ports ? { ports } : {}),
    });
    sidecars.push(s);
    return s;
  };
  /** SIGKILLs the control plane (no graceful stop), runs `whileDown`, and starts it again on the same port. */
  const restart = async (whileDown: () => Promise<unknown>) => {
    await control!.kill();
    control = null;
    await whileDown();
    control = await startControl(k8s, { port: controlPort, insecureRegistries: [registry.host] });
  };

  before(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), "weft-restart-in-force-"));
    [k8s, registry, inventoryApp] = await Promise.all([
      startCluster({ controllerManager: false }),
      startRegistry(),
      startUpstream("inventory"),
    ]);
    url = `oci://${registry.host}/filters/header-rewrite:v1`;
    const built = await builtFilter("header-rewrite");
    sha256 = built.sha256;
    await new RegistryClient().pushWasm(url, built.wasm, { plainHttp: true, annotations: {} });
    await applyCrds(k8s);
    const [admin, outbound, inbound] = (await freePorts(3)) as [number, number, number];
    [controlPort] = (await freePorts(1)) as [number];
    await apply(`
${namespaceYaml("weft-system")}---
${namespaceYaml("shop")}---
${serviceAccountYaml("shop", "web")}---
${serviceAccountYaml("shop", "inventory")}---
${podYaml({ namespace: "shop", name: "inventory-0", app: "inventory", serviceAccount: "inventory", port: inventoryApp.port, inMesh: true })}---
${podYaml({ namespace: "shop", name: "web-0", app: "web", serviceAccount: "web", port: 8080 })}---
${serviceYaml({ namespace: "shop", name: "inventory", targetPort: inventoryApp.port, address: HOST, endpointPort: inbound, pod: "inventory-0" })}`);
    for (const sa of ["web", "inventory"]) await writeProxyToken(k8s, "shop", sa, path.join(scratch, `${sa}.token`));
    control = await startControl(k8s, { port: controlPort, insecureRegistries: [registry.host] });
    await writeMeshRoot(k8s, "weft-system", path.join(scratch, "ca.crt"));
    inventory = await sidecar("inventory-0", "inventory", { admin, outbound, inbound });
    web = await sidecar("web-0", "web");
  });

  after(async () => {
    for (const s of sidecars) await s.stop();
    await control?.stop();
    await Promise.all([registry?.stop(), inventoryApp?.close()]);
    await k8s?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it("a WasmFilter edited to a config its schema refuses keeps its last accepted config, FailOpen and FailClose alike", async () => {
    const filters = [
      { name: "open", failStrategy: "FailOpen", header: "x-open" },
      { name: "closed", failStrategy: "FailClose", header: "x-closed" },
    ];
    const good = (header: string) => ({ response: { set: [{ name: header, value: "good" }] } });
    const limits = { memoryMiB: 16, callTimeoutMs: 5, bodyBytes: 65536 };
    const reply = (through: SidecarProcess) => request(through.outbound, { path: "/", host: "inventory.shop" });
    /** The request went through both filters, each with its first (accepted) config. */
    const bothGood = (r: Awaited<ReturnType<typeof reply>>) =>
      r.status === 200 && r.headers["x-open"] === "good" && r.headers["x-closed"] === "good";

    for (const f of filters) {
      await apply(
        JSON.stringify({
          apiVersion: "weft.dev/v1alpha1",
          kind: "WasmFilter",
          metadata: { name: f.name, namespace: "shop" },
          spec: { selector: { matchLabels: { app: "web" } }, url, failStrategy: f.failStrategy, config: good(f.header) },
        }),
      );
    }
    await until("web's sidecar to run both filters", async () => bothGood(await reply(web)), 30_000);
    for (const f of filters) {
      const o = await until(`${f.name}'s status.inForce`, async () => {
        const s = await stored("wasmfilter", f.name);
        return s.status?.inForce ? s : null;
      });
      assert.deepEqual(o.status!.inForce, { generation: 1, config: good(f.header), limits }, `${f.name}: the leader wrote what runs`);
    }

    // A set entry without its value: header-rewrite's schema refuses it.
    for (const f of filters)
      await kubectl([
        "patch",
        "wasmfilter",
        f.name,
        "-n",
        "shop",
        "--type=merge",
        "-p",
        JSON.stringify({ spec: { config: { response: { set: [{ name: f.header }] } } } }),
      ]);
    for (const f of filters) await conditionWhen("wasmfilter", f.name, "Accepted", (c) => c.reason === "InvalidConfig");
    assert.ok(bothGood(await reply(web)), "before the restart, the last accepted configs run");

    await restart(() => apply(serviceYaml({ namespace: "shop", name: "witness", targetPort: 8080, address: HOST })));
    await until(
      "web's sidecar to get the configuration of the restarted control plane (the witness Service, made while it was down)",
      async () => hasVirtualHost(await web.dump(), "witness.shop:80"),
      60_000,
    );
    for (let i = 0; i < 5; i++) {
      const r = await reply(web);
      assert.equal(r.status, 200, r.body);
      assert.equal(r.headers["x-open"], "good", "FailOpen: the last accepted config runs, the filter is not skipped");
      assert.equal(r.headers["x-closed"], "good", "FailClose: the last accepted config runs, the request is not refused");
    }

    // A pod that starts now gets the module and the last accepted configs from the restarted control plane.
    await apply(podYaml({ namespace: "shop", name: "web-1", app: "web", serviceAccount: "web", port: 8080 }));
    const web1 = await sidecar("web-1", "web");
    await until(
      "web-1's sidecar to load both filters",
      async () => {
        const running = (await web1.dump()).filterStatus.filter((s) => s.ready && s.sha256 === sha256).map((s) => s.filter);
        return running.includes("shop/open") && running.includes("shop/closed");
      },
      30_000,
    );
    const fresh = await reply(web1);
    assert.equal(fresh.status, 200, fresh.body);
    assert.equal(fresh.headers["x-open"], "good");
    assert.equal(fresh.headers["x-closed"], "good");

    // Counting web-1, which started after the restart, this status is the restarted control plane's.
    for (const f of filters) {
      const ready = await conditionWhen("wasmfilter", f.name, "Ready", (c) => c.message.startsWith("2 of 2"));
      assert.equal(ready.status, "True");
      assert.equal(ready.reason, "Running");
      assert.equal(
        ready.message,
        `2 of 2 selected pods run sha256:${sha256} with its last accepted config (generation 1; this generation's is not accepted, see Accepted)`,
      );
      const o = await stored("wasmfilter", f.name);
      const accepted = o.status!.conditions!.find((c) => c.type === "Accepted")!;
      assert.equal(o.metadata.generation, 2);
      assert.equal(accepted.status, "False");
      assert.equal(accepted.reason, "InvalidConfig");
      assert.match(
        accepted.message,
        new RegExp(
          `^config does not match the filter's schema: .*; sidecars keep running sha256:${sha256} with its last accepted config \\(generation 1\\)$`,
        ),
      );
      assert.deepEqual(o.status!.inForce, { generation: 1, config: good(f.header), limits });
    }
    const table = await kubectl(["get", "wasmfilters", "-n", "shop", "-o", "wide"]);
    assert.match(table, /^NAME\s+PHASE\s+ACCEPTED\s+RESOLVED\s+READY\s+REASON\s+AGE\s+URL\s+DIGEST\s+GENERATION\s+INFORCE$/m, table);
    for (const f of filters) {
      // PHASE is empty: the filters run just before routing.
      assert.match(table, new RegExp(`^${f.name}\\s+False\\s+True\\s+2/2\\s+Running\\s+\\S+\\s+\\S+\\s+${sha256}\\s+2\\s+1$`, "m"), table);
    }
  });

  it("an AccessPolicy whose targetRef Service is deleted keeps enforcing its last good DENY across a restart", async () => {
    // Two Services in front of inventory-0: one is deleted while the control plane runs, the
    // other while it is down, so the restarted one never sees it.
    const service = (name: string) => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: shop }
spec: { selector: { app: inventory }, ports: [{ name: http, port: 80, targetPort: ${inventoryApp.port} }] }
`;
    const policy = (name: string, target: string, path: string) => `apiVersion: weft.dev/v1alpha1
kind: AccessPolicy
metadata: { name: ${name}, namespace: shop }
spec: { targetRefs: [{ kind: Service, name: ${target} }], action: DENY, rules: [{ to: [{ paths: [{ value: ${path} }] }] }] }
`;
    const policies = [
      { name: "deny-admin", service: "inventory-a", path: "/admin" },
      { name: "deny-debug", service: "inventory-b", path: "/debug" },
    ];
    await apply(policies.flatMap((p) => [service(p.service), policy(p.name, p.service, p.path)]).join("---\n"));
    // Called on its inbound listener directly: plaintext callers are served (PERMISSIVE), and refused like any other.
    const call = (path: string) => request(inventory.inbound, { path });
    const enforced = async () => {
      for (const p of policies) {
        const r = await call(p.path);
        if (r.status !== 403) return false;
        assert.match(String(r.headers["x-weft-error"]), new RegExp(`access policy shop/${p.name} denies`));
      }
      return (await call("/stock")).status === 200;
    };
    await until("both DENY policies to be enforced by inventory-0's sidecar", enforced);
    const lastGood = (p: (typeof policies)[number]) => ({
      generation: 1,
      action: "DENY",
      rules: [{ from: [], to: [{ methods: [], paths: [{ type: "PathPrefix", value: p.path }] }] }],
      defaultDeny: false,
      selectors: [{ app: "inventory" }],
    });
    for (const p of policies) {
      await conditionWhen("accesspolicy", p.name, "Ready", (c) => c.reason === "InForce");
      const o = await until(`${p.name}'s status.inForce`, async () => {
        const s = await stored("accesspolicy", p.name);
        return s.status?.inForce ? s : null;
      });
      assert.deepEqual(o.status!.inForce, lastGood(p), `${p.name}: the leader wrote the version enforced`);
    }

    await kubectl(["delete", "service", "inventory-a", "-n", "shop"]);
    await conditionWhen("accesspolicy", "deny-admin", "ResolvedRefs", (c) => c.reason === "TargetNotFound");
    assert.ok(await enforced(), "before the restart, the last good version of deny-admin is enforced");

    await restart(() => kubectl(["delete", "service", "inventory-b", "-n", "shop"]));
    await until(
      "inventory-0's sidecar to get the configuration of the restarted control plane (without inventory-b, deleted while it was down)",
      async () => !hasVirtualHost(await inventory.dump(), "inventory-b.shop:80"),
      60_000,
    );
    assert.deepEqual(
      listener(await inventory.dump(), "inbound")?.authorization?.policies.map((p) => p.name),
      ["shop/deny-admin", "shop/deny-debug"],
    );
    for (let i = 0; i < 5; i++) assert.ok(await enforced(), "the last good DENYs are enforced, and nothing else is refused");

    // deny-debug's TargetNotFound is the restarted control plane's: the one before never saw
    // inventory-b go. Each pass writes every status in order, deny-admin's before deny-debug's, so
    // deny-admin's is the restarted one's too once deny-debug's is.
    await conditionWhen("accesspolicy", "deny-debug", "ResolvedRefs", (c) => c.reason === "TargetNotFound");
    for (const p of policies) {
      const o = await stored("accesspolicy", p.name);
      const resolved = o.status!.conditions!.find((c) => c.type === "ResolvedRefs")!;
      assert.equal(resolved.status, "False");
      assert.equal(resolved.reason, "TargetNotFound");
      assert.equal(
        resolved.message,
        `Service shop/${p.service} does not exist: the sidecars keep enforcing this generation (1) on the pods its Services selected when they all existed (a change that cannot be applied never widens access)`,
      );
      const ready = o.status!.conditions!.find((c) => c.type === "Ready")!;
      assert.deepEqual([ready.status, ready.reason, ready.message], ["True", "InForce", "enforced by the sidecars of 1 pod"]);
      assert.deepEqual(o.status!.inForce, lastGood(p));
    }
    const table = await kubectl(["get", "accesspolicies", "-n", "shop", "-o", "wide"]);
    assert.match(table, /^NAME\s+ACTION\s+DEFAULTDENY\s+ACCEPTED\s+RESOLVEDREFS\s+READY\s+REASON\s+AGE\s+GENERATION\s+INFORCE$/m, table);
    for (const p of policies)
      assert.match(table, new RegExp(`^${p.name}\\s+DENY\\s+false\\s+True\\s+False\\s+True\\s+InForce\\s+\\S+\\s+1\\s+1$`, "m"), table);
  });

  it("an AccessPolicy edited from a label selector to a targetRef naming a missing Service keeps its DENY on the pods its selector picked, across a restart", async () => {
    await apply(`apiVersion: weft.dev/v1alpha1
kind: AccessPolicy
metadata: { name: deny-metrics, namespace: shop }
spec: { selector: { matchLabels: { app: inventory } }, action: DENY, rules: [{ to: [{ paths: [{ value: /metrics-private }] }] }] }
`);
    const refused = async () => {
      const r = await request(inventory.inbound, { path: "/metrics-private" });
      return r.status === 403 && /access policy shop\/deny-metrics denies/.test(String(r.headers["x-weft-error"]));
    };
    await until("deny-metrics to be enforced by inventory-0's sidecar", refused);
    const o = await until("deny-metrics's status.inForce", async () => {
      const s = await stored("accesspolicy", "deny-metrics");
      return s.status?.inForce ? s : null;
    });
    const lastGood = {
      generation: 1,
      action: "DENY",
      rules: [{ from: [], to: [{ methods: [], paths: [{ type: "PathPrefix", value: "/metrics-private" }] }] }],
      defaultDeny: false,
      selectors: [{ app: "inventory" }],
    };
    assert.deepEqual(o.status!.inForce, lastGood);

    // A typo'd Service name: generation 2 cannot say which pods it is for.
    await kubectl([
      "patch",
      "accesspolicy",
      "deny-metrics",
      "-n",
      "shop",
      "--type",
      "json",
      "-p",
      JSON.stringify([
        { op: "remove", path: "/spec/selector" },
        { op: "add", path: "/spec/targetRefs", value: [{ kind: "Service", name: "inventroy" }] },
      ]),
    ]);
    const resolved = await conditionWhen("accesspolicy", "deny-metrics", "ResolvedRefs", (c) => c.reason === "TargetNotFound");
    assert.equal(
      resolved.message,
      "Service shop/inventroy does not exist: this generation is not in force; the sidecars keep enforcing generation 1, the last that could be applied, on the pods it applied to (a change that cannot be applied never widens access)",
    );
    for (let i = 0; i < 3; i++) assert.ok(await refused(), "generation 1's DENY is still enforced");

    // A Service created while the control plane is down shows when the sidecar has the restarted one's configuration.
    await restart(() =>
      apply(`apiVersion: v1
kind: Service
metadata: { name: inventory-c, namespace: shop }
spec: { selector: { app: inventory }, ports: [{ name: http, port: 80, targetPort: ${inventoryApp.port} }] }
`),
    );
    await until(
      "inventory-0's sidecar to get the configuration of the restarted control plane (with inventory-c, created while it was down)",
      async () => hasVirtualHost(await inventory.dump(), "inventory-c.shop:80"),
      60_000,
    );
    for (let i = 0; i < 5; i++) assert.ok(await refused(), "after the restart, generation 1's DENY is still enforced");
    assert.deepEqual((await stored("accesspolicy", "deny-metrics")).status!.inForce, lastGood);
  });
});
