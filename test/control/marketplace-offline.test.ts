// runtimes: node
// needs: k8s
// marketplace://NAME@VERSION in a cluster that reaches no registry: the control plane (`weft
// control --marketplace DIR`, a real process on a real kube-apiserver) serves the modules its
// image ships, from a folder built the way `npm run image` builds /opt/plugins
// (deploy/image/marketplace.ts), and a real sidecar fetches the module from it by digest and
// runs it. Every artifact in that folder's index points at a port nobody listens on, so any
// pull would fail. Also: a shipped module that is not the index's is refused; a release with no
// shipped copy is pulled from its artifact, and the status says which happened; the image build
// refuses a module that does not build to the index's digest; `weft filter mirror` pushes every
// release to a real registry, and a pull by each printed url gets the same bytes. And the rule a
// WasmFilter's status reports (docs/resources.md): a bad edit keeps the last accepted config in
// force, a new filter that cannot be applied gets its failStrategy (never left out), READY counts
// the selected pods, and `weft filter add` prints a filter that works as printed. Node only.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { startCluster, freePorts, type Cluster } from "../k8s/cluster.ts";
import { startUpstream, deadPort, type Upstream } from "../support/upstream.ts";
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
import { marketplaceModules, writeMarketplaceDir } from "../../deploy/image/marketplace.ts";
import type { MarketplaceIndex } from "../../sdk/marketplace/catalog.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..", "..");
const node = path.join(root, "node_modules", ".bin", "node");
const HOST = hostAddress();
const index = JSON.parse(await readFile(path.join(root, "plugins", "index.json"), "utf8")) as MarketplaceIndex;
const release = (name: string) => index.plugins.find((p) => p.name === name)!.versions[0]!;
const REWRITE = release("header-rewrite");

type Condition = { type: string; status: string; reason: string; message: string };

function weft(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(node, ["bin/weft.ts", ...args], { cwd: root, encoding: "utf8" }, (e, stdout, stderr) =>
      resolve({ code: e ? (typeof e.code === "number" ? e.code : 1) : 0, stdout, stderr }),
    ),
  );
}

describe("marketplace filters in a cluster that reaches no registry", () => {
  let k8s: Cluster;
  let registry: TestRegistry;
  let inventoryApp: Upstream;
  let control: ControlProcess | null = null;
  let web: SidecarProcess;
  let scratch: string;
  let marketplace: string;
  const sidecars: SidecarProcess[] = [];
  const kubectl = (args: string[], input?: string) => k8s.kubectl(args, input);
  const apply = (yaml: string) => kubectl(["apply", "-f", "-"], yaml);
  const condition = async (name: string, type: string) =>
    (
      (JSON.parse(await kubectl(["get", "wasmfilter", name, "-n", "shop", "-o", "json"])) as { status?: { conditions?: Condition[] } })
        .status?.conditions ?? []
    ).find((c) => c.type === type);
  const settled = (name: string) =>
    until(
      `WasmFilter ${name} to be resolved or refused`,
      async () => {
        const c = await condition(name, "Resolved");
        return c && c.status !== "Unknown" ? c : null;
      },
      30_000,
    );
  const marketplaceFilter = (name: string, url: string, app: string, config = "{}") => `apiVersion: weft.dev/v1alpha1
kind: WasmFilter
metadata: { name: ${name}, namespace: shop }
spec:
  selector: { matchLabels: { app: ${app} } }
  url: ${url}
  config: ${config}
`;

  before(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), "weft-marketplace-"));
    [k8s, registry, inventoryApp] = await Promise.all([
      startCluster({ controllerManager: false }),
      startRegistry(),
      startUpstream("inventory"),
    ]);

    // The image's /opt/plugins, built the same way; then every artifact made unreachable.
    marketplace = path.join(scratch, "marketplace");
    const shipped = await writeMarketplaceDir(marketplace);
    assert.ok(
      shipped.modules.some((m) => m.name === "header-rewrite" && m.sha256 === REWRITE.sha256),
      "the marketplace folder has header-rewrite's module",
    );
    const nowhere = `127.0.0.1:${await deadPort()}`;
    const offline = structuredClone(index);
    for (const p of offline.plugins) for (const v of p.versions) v.artifact = `oci://${nowhere}/plugins/${p.name}:${v.version}`;
    // ip-filter ships no module here: it must come from its artifact, in the real registry.
    offline.plugins.find((p) => p.name === "ip-filter")!.versions[0]!.artifact = `oci://${registry.host}/plugins/ip-filter:1.0.0`;
    await unlink(path.join(marketplace, "ip-filter", "1.0.0.wasm"));
    await new RegistryClient().pushWasm(`oci://${registry.host}/plugins/ip-filter:1.0.0`, (await builtFilter("ip-filter")).wasm, {
      plainHttp: true,
      annotations: {},
    });
    // cors's shipped file is damaged: it holds header-rewrite's bytes.
    await cp(path.join(marketplace, "header-rewrite", "1.0.0.wasm"), path.join(marketplace, "cors", "1.0.0.wasm"));
    await writeFile(path.join(marketplace, "index.json"), JSON.stringify(offline, null, 2));

    await applyCrds(k8s);
    const [admin, outbound, inbound, controlPort] = (await freePorts(4)) as [number, number, number, number];
    await apply(`
${namespaceYaml("weft-system")}---
${namespaceYaml("shop")}---
${serviceAccountYaml("shop", "web")}---
${serviceAccountYaml("shop", "inventory")}---
${podYaml({ namespace: "shop", name: "inventory-0", app: "inventory", serviceAccount: "inventory", port: inventoryApp.port, inMesh: true })}---
${podYaml({ namespace: "shop", name: "web-0", app: "web", serviceAccount: "web", port: 8080 })}---
${serviceYaml({ namespace: "shop", name: "inventory", targetPort: inventoryApp.port, address: HOST, endpointPort: inbound, pod: "inventory-0" })}`);
    for (const sa of ["web", "inventory"]) await writeProxyToken(k8s, "shop", sa, path.join(scratch, `${sa}.token`));
    control = await startControl(k8s, { port: controlPort, marketplace, insecureRegistries: [registry.host] });
    await writeMeshRoot(k8s, "weft-system", path.join(scratch, "ca.crt"));
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
    await sidecar("inventory-0", "inventory", { admin, outbound, inbound });
    web = await sidecar("web-0", "web");
  });

  after(async () => {
    for (const s of sidecars) await s.stop();
    await control?.stop();
    await Promise.all([registry?.stop(), inventoryApp?.close()]);
    await k8s?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it("resolves marketplace://header-rewrite from the shipped module, and the sidecar runs it", async (t) => {
    const started = Date.now();
    await apply(
      marketplaceFilter(
        "rewrite",
        `marketplace://header-rewrite@${REWRITE.version}`,
        "web",
        "{ response: { set: [{ name: x-from, value: shipped }] } }",
      ),
    );
    const resolved = await settled("rewrite");
    t.diagnostic(`applied to Resolved in ${Date.now() - started} ms`);
    assert.equal(resolved.status, "True", resolved.message);
    assert.equal(resolved.reason, "Resolved");
    assert.equal(
      resolved.message,
      `sha256:${REWRITE.sha256} from marketplace://header-rewrite@${REWRITE.version}, this control plane's own copy ${path.join(marketplace, "header-rewrite", `${REWRITE.version}.wasm`)} (no registry involved)`,
    );
    await until("web's sidecar to run the filter", async () =>
      (await web.dump()).filterStatus.some((f) => f.filter === "shop/rewrite" && f.ready && f.sha256 === REWRITE.sha256),
    );
    const reply = await request(web.outbound, { path: "/", host: "inventory.shop" });
    assert.equal(reply.status, 200, reply.body);
    assert.equal(reply.headers["x-from"], "shipped", "the response went through header-rewrite");
    const ready = await until("Ready=True", async () => {
      const c = await condition("rewrite", "Ready");
      return c?.status === "True" ? c : null;
    });
    assert.equal(ready.reason, "Running");
    t.diagnostic(`applied to a rewritten response in ${Date.now() - started} ms`);
    assert.ok(!registry.accessLog().some((line) => line.includes("header-rewrite")), "nothing asked a registry for header-rewrite");
  });

  const get = async (kind: string, name: string) => (await kubectl(["get", kind, name, "-n", "shop"])).split("\n")[1] ?? "";
  const conditionWhen = (name: string, type: string, check: (c: Condition) => boolean) => {
    let last: Condition | undefined;
    return until(
      `WasmFilter ${name}'s ${type}`,
      async () => {
        last = await condition(name, type);
        return last && check(last) ? last : null;
      },
      30_000,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; it was ${JSON.stringify(last)}`);
    });
  };

  it("a bad edit to a running FailClose filter keeps its last accepted config in force, and its status says so", async () => {
    const reply = () => request(web.outbound, { path: "/", host: "inventory.shop" });
    assert.equal((await reply()).headers["x-from"], "shipped");
    // A set entry without its value: header-rewrite's schema refuses it.
    await kubectl([
      "patch",
      "wasmfilter",
      "rewrite",
      "-n",
      "shop",
      "--type",
      "merge",
      "-p",
      JSON.stringify({ spec: { config: { response: { set: [{ name: "x-from" }] } } } }),
    ]);
    const accepted = await conditionWhen("rewrite", "Accepted", (c) => c.status === "False");
    assert.equal(accepted.reason, "InvalidConfig");
    assert.match(
      accepted.message,
      new RegExp(
        `^config does not match the filter's schema: .*; sidecars keep running sha256:${REWRITE.sha256} with its last accepted config \\(generation 1\\)$`,
      ),
    );
    const ready = await conditionWhen("rewrite", "Ready", (c) => c.message.includes("last accepted"));
    assert.equal(ready.status, "True");
    assert.equal(ready.reason, "Running");
    assert.match(
      ready.message,
      /^1 of 1 selected pods run sha256:[0-9a-f]{64} with its last accepted config \(generation 1; this generation's is not accepted, see Accepted\)$/,
    );
    assert.match(
      await get("wasmfilter", "rewrite"),
      /^rewrite\s+False\s+True\s+1\/1\s+Running\s/,
      "kubectl get shows the refusal and what runs",
    );
    for (let i = 0; i < 5; i++) {
      const r = await reply();
      assert.equal(r.status, 200, r.body);
      assert.equal(r.headers["x-from"], "shipped", "the last accepted config still runs");
    }
    await kubectl([
      "patch",
      "wasmfilter",
      "rewrite",
      "-n",
      "shop",
      "--type",
      "merge",
      "-p",
      JSON.stringify({ spec: { config: { response: { set: [{ name: "x-from", value: "fixed" }] } } } }),
    ]);
    await conditionWhen("rewrite", "Accepted", (c) => c.status === "True");
    await until("the fixed config to run", async () => (await reply()).headers["x-from"] === "fixed");
  });

  it("a new FailClose filter whose config is refused is not left out: the requests it is attached to are refused, and status says why", async () => {
    const guarded = () => request(web.outbound, { path: "/guarded", host: "inventory.shop" });
    // rate-limit needs requestsPerSecond: this config can never be applied.
    await apply(`apiVersion: weft.dev/v1alpha1
kind: WasmFilter
metadata: { name: guard, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  url: marketplace://rate-limit@1.0.0
  failStrategy: FailClose
  match: [{ pathPrefixes: [/guarded] }]
  config: {}
`);
    const accepted = await conditionWhen("guard", "Accepted", (c) => c.status === "False");
    assert.equal(accepted.reason, "InvalidConfig");
    assert.match(
      accepted.message,
      /requestsPerSecond.*; nothing of it is in force yet, so its failStrategy FailClose applies where it is attached: those requests are refused \(500\)$/,
    );
    const refused = await until("the guarded path to be refused", async () => {
      const r = await guarded();
      return r.status === 500 ? r : null;
    });
    assert.match(
      String(refused.headers["x-weft-error"]),
      /shop\/guard .*is not in force: InvalidConfig: config does not match the filter's schema/,
    );
    assert.equal((await request(web.outbound, { path: "/", host: "inventory.shop" })).status, 200, "requests it is not attached to pass");
    const ready = await conditionWhen("guard", "Ready", (c) => c.reason === "NotInForce");
    assert.equal(ready.status, "False");
    assert.equal(
      ready.message,
      "nothing of it is in force (Accepted is False: InvalidConfig), so on the 1 selected pod its failStrategy FailClose applies there (requests are refused)",
    );
    assert.match(await get("wasmfilter", "guard"), /^guard\s+False\s+True\s+0\/1\s+NotInForce\s/);
    // FailOpen is the user's choice to let requests through without the filter.
    await kubectl([
      "patch",
      "wasmfilter",
      "guard",
      "-n",
      "shop",
      "--type",
      "merge",
      "-p",
      JSON.stringify({ spec: { failStrategy: "FailOpen" } }),
    ]);
    await until("FailOpen to let the guarded path through", async () => (await guarded()).status === 200);
    await kubectl(["delete", "wasmfilter", "guard", "-n", "shop"]);
  });

  it("READY counts the selected pods, sidecar or not, and a filter that selects nothing says why", async () => {
    await apply(`${podYaml({ namespace: "shop", name: "inventory-1", app: "inventory", serviceAccount: "inventory", port: 8080, inMesh: true })}---
${podYaml({ namespace: "shop", name: "inventory-2", app: "inventory", serviceAccount: "inventory", port: 8080, inMesh: true })}---
${marketplaceFilter("counted", `marketplace://header-rewrite@${REWRITE.version}`, "inventory", "{ response: { set: [{ name: x-counted, value: counted }] } }")}---
${marketplaceFilter("unselective", `marketplace://header-rewrite@${REWRITE.version}`, "nobody-at-all")}---
apiVersion: weft.dev/v1alpha1
kind: WasmFilter
metadata: { name: mistargeted, namespace: shop }
spec: { targetRefs: [{ group: "", kind: Service, name: ledger }], url: "marketplace://header-rewrite@${REWRITE.version}", config: {} }
`);
    const counted = await conditionWhen("counted", "Ready", (c) => c.message.startsWith("1 of 3"));
    assert.equal(counted.status, "False");
    assert.equal(counted.reason, "Updating");
    assert.match(
      counted.message,
      /^1 of 3 selected pods run sha256:[0-9a-f]{64}; 2 not yet \(a sidecar that is starting, updating or not connected\)$/,
    );
    assert.match(await get("wasmfilter", "counted"), /^counted\s+True\s+True\s+1\/3\s+Updating\s/);
    const none = await conditionWhen("unselective", "Ready", (c) => c.reason === "NoPodsSelected");
    assert.equal(none.message, 'its selector {"app":"nobody-at-all"} selects no pod with a sidecar in namespace shop');
    const missing = await conditionWhen("mistargeted", "Ready", (c) => c.reason === "TargetNotFound");
    assert.equal(missing.message, "it targets Service shop/ledger, which does not exist: fix targetRefs, or create the Service");
    await kubectl(["delete", "wasmfilter", "counted", "unselective", "mistargeted", "-n", "shop"]);
    await kubectl(["delete", "pod", "inventory-1", "inventory-2", "-n", "shop", "--wait=false"]);
  });

  it("weft filter add prints a WasmFilter that works as printed", async () => {
    const added = await weft(["filter", "add", "header-rewrite", "--namespace", "shop", "--app", "web"]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, new RegExp(`url: marketplace://header-rewrite@${REWRITE.version}`));
    await apply(added.stdout);
    const ready = await conditionWhen("header-rewrite", "Ready", (c) => c.status === "True");
    assert.equal(ready.reason, "Running");
    assert.equal((await condition("header-rewrite", "Accepted"))?.status, "True");
    const r = await request(web.outbound, { path: "/", host: "inventory.shop" });
    assert.equal(r.headers["x-served-by"], "orders", "the example config runs: it adds x-served-by");
    await kubectl(["delete", "wasmfilter", "header-rewrite", "-n", "shop"]);
  });

  it("a url that can never resolve is InvalidURL and not tried again: a release the index lacks, a file:// in a cluster", async () => {
    await apply(`${marketplaceFilter("unlisted", "marketplace://header-rewrite@9.9.9", "nobody")}---
${marketplaceFilter("local-file", "file:///etc/passwd", "nobody")}`);
    for (const [name, message] of [
      [
        "unlisted",
        /^marketplace:\/\/header-rewrite@9\.9\.9: the marketplace index has no header-rewrite 9\.9\.9 \(weft filter search lists what it has\); nothing of it is in force yet/,
      ],
      ["local-file", /^file:\/\/\/etc\/passwd: file:\/\/ urls are for local mode only; in a cluster publish the module to a registry/],
    ] as const) {
      const resolved = await settled(name);
      assert.equal(resolved.reason, "InvalidURL", resolved.message);
      assert.match(resolved.message, message);
      assert.doesNotMatch(resolved.message, /tried again/);
    }
    // A retry would come after 1-2 s (2 s, jittered): none in 4 s.
    await new Promise((r) => setTimeout(r, 4000));
    const attempts = control!
      .output()
      .split("\n")
      .filter((l) => l.includes("cannot resolve a WasmFilter") && l.includes('"filter":"shop/unlisted"'));
    assert.equal(attempts.length, 1, attempts.join("\n"));
    await kubectl(["delete", "wasmfilter", "unlisted", "local-file", "-n", "shop"]);
  });

  it("refuses a shipped module whose bytes are not the release the index lists", async () => {
    const cors = release("cors");
    await apply(marketplaceFilter("cors", `marketplace://cors@${cors.version}`, "nobody"));
    const resolved = await settled("cors");
    assert.equal(resolved.status, "False");
    assert.equal(resolved.reason, "DigestMismatch");
    assert.match(
      resolved.message,
      new RegExp(
        `^marketplace://cors@${cors.version}: this control plane's own copy ${path.join(marketplace, "cors", `${cors.version}.wasm`)} has sha256 ${REWRITE.sha256}, not the ${cors.sha256} the marketplace index lists for cors ${cors.version}, so it is not loaded: the file is damaged`,
      ),
    );
    assert.match(
      resolved.message,
      /nothing of it is in force yet, so its failStrategy FailClose applies where it is attached: those requests are refused \(500\)/,
    );
  });

  it("pulls a release with no shipped copy from its artifact, and says so", async () => {
    const ipFilter = release("ip-filter");
    await apply(marketplaceFilter("ip-filter", `marketplace://ip-filter@${ipFilter.version}`, "nobody", "{ allow: [10.0.0.0/8] }"));
    const resolved = await settled("ip-filter");
    assert.equal(resolved.status, "True", resolved.message);
    assert.match(
      resolved.message,
      new RegExp(
        `^sha256:${ipFilter.sha256} from marketplace://ip-filter@${ipFilter.version}, pulled from oci://${registry.host}/plugins/ip-filter:1\\.0\\.0 \\(sha256:[0-9a-f]{64}\\): this control plane has no copy of it$`,
      ),
    );
  });

  it("says what failed when a release has no shipped copy and its artifact cannot be pulled", async () => {
    await unlink(path.join(marketplace, "jwt-auth", "1.0.0.wasm"));
    await apply(marketplaceFilter("jwt", "marketplace://jwt-auth@1.0.0", "nobody"));
    const resolved = await settled("jwt");
    assert.equal(resolved.reason, "PullFailed");
    assert.match(
      resolved.message,
      /^marketplace:\/\/jwt-auth@1\.0\.0: this control plane has no copy of it, and the pull of its artifact failed: .*; ship it in the image \(npm run image\) or mirror the marketplace/,
    );
  });
});

describe("the marketplace modules of the image build (deploy/image/marketplace.ts)", () => {
  it("refuses to ship a module that does not build to the digest the index lists", async () => {
    const plugins = await mkdtemp(path.join(tmpdir(), "weft-plugins-"));
    try {
      await cp(path.join(root, "plugins", "header-rewrite"), path.join(plugins, "header-rewrite"), { recursive: true });
      const wrong = "0".repeat(64);
      await writeFile(
        path.join(plugins, "index.json"),
        JSON.stringify({
          plugins: [{ ...index.plugins.find((p) => p.name === "header-rewrite")!, versions: [{ ...REWRITE, sha256: wrong }] }],
        }),
      );
      await assert.rejects(marketplaceModules(plugins), (e: Error) => {
        assert.match(
          e.message,
          new RegExp(
            `^marketplace module header-rewrite@${REWRITE.version}: .*header-rewrite builds to sha256 ${REWRITE.sha256}, but .*index\\.json lists ${wrong}; the image would ship a different filter`,
          ),
        );
        return true;
      });
    } finally {
      await rm(plugins, { recursive: true, force: true });
    }
  });

  it("weft control refuses a --marketplace folder without an index", async () => {
    const ran = await weft(["control", "--kubeconfig", "/dev/null", "--marketplace", "/nonexistent"]);
    assert.equal(ran.code, 2, ran.stderr);
    assert.match(ran.stderr, /--marketplace \/nonexistent: cannot read the marketplace index \/nonexistent\/index\.json/);
  });
});

describe("weft filter mirror REGISTRY", () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startRegistry();
  });
  after(async () => registry?.stop());

  it("pushes every release of the index, and a pull by each printed url gets the release's bytes", async () => {
    const ran = await weft(["filter", "mirror", registry.host, "--plain-http"]);
    assert.equal(ran.code, 0, ran.stderr);
    const lines = ran.stdout.split("\n").filter((l) => l.startsWith("oci://"));
    const releases = index.plugins.flatMap((p) => p.versions.map((v) => ({ name: p.name, ...v })));
    assert.equal(lines.length, releases.length, ran.stdout);
    for (const r of releases) {
      const url = `oci://${registry.host}/plugins/${r.name}:${r.version}`;
      assert.ok(lines.includes(`${url} sha256 ${r.sha256}`), `${url} is listed:\n${ran.stdout}`);
      const pulled = await new RegistryClient().pullWasm(url, { plainHttp: true, maxBytes: 32 * 1024 * 1024 });
      assert.deepEqual(Buffer.from(pulled.wasm), Buffer.from((await builtFilter(r.name)).wasm), `${url} holds ${r.name}'s build`);
    }
  });
});
