// runtimes: node
// Hosts outside the mesh (docs/egress.md), in a pod made of network namespaces
// (test/support/netns.ts): `weft init` redirects the app's port-80 and 8080 traffic to a real weft
// proxy (UID 1337, on Node, Deno and Bun in turn) whose configuration the control plane computed
// for a mesh whose only Services are of type ExternalName, declaring hosts that the pod's
// /etc/hosts puts on the peer. With the default outbound traffic ALLOW_ANY, the app's request
// reaches the host it named, through the proxy; a Host naming the pod itself is refused, since the
// proxy would send it back to itself. With REGISTRY_ONLY, only the declared hosts (by their names
// and by their Services' names, on the Services' ports) go through, and the 404 for any other
// names the setting. IPv4 only: the sidecar's listeners bind 0.0.0.0 (docs/egress.md).
// test/control/external-services.test.ts declares and deletes such a Service on an API server.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { ChildProcess } from "node:child_process";
import type { V1Service } from "@kubernetes/client-node";
import { computeProxyConfig, DEFAULT_SETTINGS, PASSTHROUGH_CLUSTER } from "../../control/mesh/proxy-config.ts";
import { parseOutboundTraffic, REGISTRY_ONLY_REASON, type OutboundTraffic } from "../../control/mesh/outbound-traffic.ts";
import { serviceInfo } from "../../control/kubernetes/convert.ts";
import { parseFile } from "../../control/local/directory.ts";
import { parseConfig } from "../../proxy/config/validate.ts";
import { emptyWorld, keyOf, type MeshWorld, type PodInfo } from "../../control/mesh/world.ts";
import { NODE, PodPair, preflight, ROOT } from "../support/netns.ts";

const pair = new PodPair("egress", 78);
const PROXY_UID = 1337;
const RUNTIMES: [string, (script: string[]) => string[]][] = [
  ["Node.js", (script) => [NODE, ...script]],
  ["Deno", (script) => [path.join(ROOT, "node_modules", ".bin", "deno"), "run", "-A", ...script]],
  ["Bun", (script) => [path.join(ROOT, "node_modules", ".bin", "bun"), ...script]],
];

let scratch: string;
// `ip netns exec` shows a namespace /etc/netns/NAME/hosts as its /etc/hosts.
const HOSTS_DIR = path.join("/etc/netns", pair.pod);
const LOOPBACK_NAME = "sneaky.example";
// Outside hosts on the peer, by name (the pod's /etc/hosts): only the proxy resolves them, as it
// would through the pod's DNS; the Services' own names resolve nowhere, so a request for one
// reaches the peer only if the proxy sends it to the Service's externalName.
const PAYMENTS = "payments.example";
const LEDGER = "ledger.example";
const REPORTS = "reports.example";
const UNDECLARED = "other.example";

/** A Service of type ExternalName as the API server would hold it. */
const externalService = (namespace: string, name: string, externalName: string, ports: number[]): V1Service => ({
  apiVersion: "v1",
  kind: "Service",
  metadata: { namespace, name },
  spec: { type: "ExternalName", externalName, ...(ports.length ? { ports: ports.map((port) => ({ port, protocol: "TCP" })) } : {}) },
});

/** The mesh: hosts declared by ExternalName Services, payments on port 80, reports on 8080, the ledger on any port (no ports). */
function world(): MeshWorld {
  const w = emptyWorld();
  for (const s of [
    externalService("shop", "payments-api", PAYMENTS, [80]),
    externalService("shop", "reports", `${REPORTS}.`, [8080]),
    externalService("billing", "ledger", LEDGER, []),
    // Declared by mistake: the pod itself, which the proxy refuses as it does for passthrough.
    externalService("shop", "loop", "localhost", [15001]),
  ])
    w.services.set(keyOf(s.metadata!.namespace!, s.metadata!.name!), serviceInfo(s));
  return w;
}

const podInfo = (): PodInfo => ({
  namespace: "shop",
  name: "frontend",
  labels: { app: "frontend" },
  workload: "frontend",
  serviceAccount: "frontend",
  ip: pair.podIp,
  inMesh: true,
  containerPorts: [],
});

/** The configuration the control plane computes for the pod in that mesh, on its own ports. */
async function configFile(outboundTraffic: OutboundTraffic, outboundPort: number, adminPort: number): Promise<string> {
  const config = {
    ...computeProxyConfig(world(), podInfo(), new Map(), { ...DEFAULT_SETTINGS, outboundTraffic, outboundPort }),
    admin: { address: "127.0.0.1", port: adminPort },
  };
  const file = path.join(scratch, `${outboundTraffic}.json`);
  await writeFile(file, JSON.stringify(config));
  await chmod(file, 0o644);
  return file;
}

before(async () => {
  await preflight("the egress suite");
  scratch = await mkdtemp(path.join(tmpdir(), "weft-egress-"));
  // The proxy runs as its own user: it reads the configuration and keeps Deno's cache here.
  await chmod(scratch, 0o777);
  await pair.setUp();
  await mkdir(HOSTS_DIR, { recursive: true });
  await writeFile(
    path.join(HOSTS_DIR, "hosts"),
    `127.0.0.1 localhost ${LOOPBACK_NAME}\n${pair.peerIp} ${PAYMENTS} ${LEDGER} ${REPORTS} ${UNDECLARED}\n`,
  );
  await pair.startServer(pair.peer, undefined, ["peer:80", "peer:8080"]);
  const init = await pair.init("--proxy-uid", String(PROXY_UID), "--include-inbound-ports", "");
  assert.equal(init.code, 0, init.stderr);
});
after(async () => {
  await pair.tearDown();
  await rm(HOSTS_DIR, { recursive: true, force: true });
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

for (const [runtime, command] of RUNTIMES) {
  describe(`a meshed pod's requests for hosts outside the mesh, through the proxy on ${runtime}`, () => {
    const proxies: ChildProcess[] = [];
    before(async () => {
      const env = ["env", `DENO_DIR=${path.join(scratch, "deno")}`, `HOME=${scratch}`];
      for (const [traffic, outbound, admin] of [
        ["ALLOW_ANY", 15001, 15000],
        ["REGISTRY_ONLY", 15101, 15100],
      ] as const) {
        const argv = [...env, ...command(["bin/weft.ts", "proxy", "--config", await configFile(traffic, outbound, admin)])];
        proxies.push(await pair.spawn(pair.pod, PROXY_UID, argv, '"msg":"sidecar started"', `the ${traffic} proxy on ${runtime}`));
      }
    });
    after(async () => {
      await Promise.all(
        proxies.map(
          (p) =>
            new Promise<void>((resolve) => {
              if (p.exitCode !== null || p.signalCode !== null) return resolve();
              p.once("exit", () => resolve());
              p.kill("SIGKILL");
            }),
        ),
      );
    });

    it("with ALLOW_ANY, passes the app's HTTP on port 80 and 8080 through to the host it named", async () => {
      for (const [url, host] of [
        [`http://${pair.peerIp}/`, pair.peerIp],
        [`http://${pair.peerIp}:8080/`, `${pair.peerIp}:8080`],
        // Undeclared, and on a port its Service does not declare: passed through to that port all the same.
        [`http://${pair.peerIp}:8080/`, `${PAYMENTS}:8080`],
        [`http://${pair.peerIp}/`, UNDECLARED],
        // A Service's name (resolved nowhere) reaches its externalName.
        [`http://${pair.peerIp}/`, "payments-api.shop"],
      ]) {
        const reply = await pair.get(pair.pod, url, { host });
        assert.ok(typeof reply === "object" && "by" in reply, `${host}: ${JSON.stringify(reply)}`);
        assert.equal(reply.by, "peer", host);
        assert.equal(reply.host, host, host);
        // Only a weft proxy adds X-Forwarded-For here: the request went through it, not around it.
        assert.equal(reply.forwardedFor, pair.podIp, host);
      }
    });

    it("refuses a Host that names the pod itself, which would send the request back to the proxy", async () => {
      const cases: [string, number, RegExp][] = [
        [
          "127.0.0.1:15001",
          403,
          /^passthrough to 127\.0\.0\.1:15001 refused: it is this pod's loopback, and a request sent there would come back to this proxy/,
        ],
        [
          `${pair.podIp}:15001`,
          403,
          new RegExp(`^passthrough to ${pair.podIp.replace(/\./g, "\\.")}:15001 refused: it is this pod's own address`),
        ],
        ["[::1]:15001", 403, /refused: it is this pod's loopback/],
        ["localhost:15000", 403, /^passthrough to localhost:15000 refused: it names this pod's loopback/],
        ["loop.shop:15001", 403, /^passthrough to localhost:15001 refused: it names this pod's loopback/],
        // A name the literal check cannot see through (the pod's /etc/hosts): refused once connected.
        [
          `${LOOPBACK_NAME}:15001`,
          503,
          /passthrough to sneaky\.example:15001 refused: it resolved to 127\.0\.0\.1; it is this pod's loopback/,
        ],
      ];
      for (const [host, status, body] of cases) {
        const reply = await pair.get(pair.pod, `http://${pair.peerIp}/`, { host });
        assert.ok(typeof reply === "object" && "status" in reply, `${host}: ${JSON.stringify(reply)}`);
        assert.equal(reply.status, status, `${host}: ${reply.body}`);
        assert.match(reply.body, body, host);
      }
    });

    // The app reaching the REGISTRY_ONLY proxy directly on loopback (not redirected).
    it("with REGISTRY_ONLY, answers 404 naming the setting for a host no Service declares, or a port it does not", async () => {
      for (const host of [pair.peerIp, UNDECLARED, `${PAYMENTS}:8080`, REPORTS, `${REPORTS}:80`, "payments-api.shop:8080"]) {
        const reply = await pair.get(pair.pod, "http://127.0.0.1:15101/", { host });
        assert.ok(typeof reply === "object" && "status" in reply, `${host}: ${JSON.stringify(reply)}`);
        assert.equal(reply.status, 404, host);
        assert.equal(
          reply.body,
          `no route for host "${host}" and path "/": outbound traffic is REGISTRY_ONLY, so the mesh refuses hosts outside it that no Service of type ExternalName declares: declare this one, or let every host through with --outbound-traffic ALLOW_ANY (docs/egress.md)\n`,
          host,
        );
      }
    });

    it("with REGISTRY_ONLY, passes a host an ExternalName Service declares, by its name or the Service's, keeping the app's Host", async () => {
      for (const host of [
        PAYMENTS,
        `${PAYMENTS}:80`,
        "payments-api",
        "payments-api.shop",
        "payments-api.shop.svc.cluster.local:80",
        `${REPORTS}:8080`,
        "reports.shop.svc:8080",
        // The ledger declares no port: every port.
        LEDGER,
        `${LEDGER}:8080`,
        "ledger.billing:8080",
      ]) {
        const reply = await pair.get(pair.pod, "http://127.0.0.1:15101/", { host });
        assert.ok(typeof reply === "object" && "by" in reply, `${host}: ${JSON.stringify(reply)}`);
        assert.equal(reply.by, "peer", host);
        assert.equal(reply.host, host, host);
        assert.equal(reply.forwardedFor, "127.0.0.1", host);
      }
    });
  });
}

describe("passthrough in the proxy's configuration", () => {
  it('with ALLOW_ANY (the default) the control plane adds a last "*" virtual host to a passthrough cluster; with REGISTRY_ONLY a 404 reason', () => {
    const pod = podInfo();
    const allowAny = computeProxyConfig(emptyWorld(), pod, new Map(), DEFAULT_SETTINGS);
    assert.equal(DEFAULT_SETTINGS.outboundTraffic, "ALLOW_ANY");
    assert.deepEqual(
      allowAny.clusters.filter((c) => c.passthrough),
      [{ name: PASSTHROUGH_CLUSTER, passthrough: true, endpoints: [] }],
    );
    assert.deepEqual(allowAny.listeners[0]!.virtualHosts.at(-1)!.domains, ["*"]);
    assert.equal(allowAny.listeners[0]!.noRouteReason, undefined);
    const registryOnly = computeProxyConfig(emptyWorld(), pod, new Map(), { ...DEFAULT_SETTINGS, outboundTraffic: "REGISTRY_ONLY" });
    assert.deepEqual(
      registryOnly.clusters.filter((c) => c.passthrough),
      [],
    );
    assert.deepEqual(registryOnly.listeners[0]!.virtualHosts, []);
    assert.equal(registryOnly.listeners[0]!.noRouteReason, REGISTRY_ONLY_REASON);
  });

  it("an ExternalName Service becomes a passthrough to its externalName, on its ports (any port without ports), reached by its names and the host's", () => {
    const config = computeProxyConfig(world(), podInfo(), new Map(), { ...DEFAULT_SETTINGS, outboundTraffic: "REGISTRY_ONLY" });
    const byName = new Map(config.clusters.map((c) => [c.name, c]));
    assert.deepEqual(byName.get("outbound|80||payments-api.shop.svc.cluster.local"), {
      name: "outbound|80||payments-api.shop.svc.cluster.local",
      service: "payments-api.shop.svc.cluster.local",
      namespace: "shop",
      workload: "payments-api",
      passthrough: true,
      passthroughTo: { host: PAYMENTS, port: 80 },
      endpoints: [],
    });
    // The trailing dot Kubernetes allows in externalName is dropped.
    assert.deepEqual(byName.get("outbound|8080||reports.shop.svc.cluster.local")?.passthroughTo, { host: REPORTS, port: 8080 });
    assert.deepEqual(byName.get("outbound|*||ledger.billing.svc.cluster.local")?.passthroughTo, { host: LEDGER });
    const domains = new Map(config.listeners[0]!.virtualHosts.map((vh) => [vh.name, vh.domains]));
    assert.deepEqual(domains.get("payments-api.shop:80"), [
      "payments-api:80",
      "payments-api.shop:80",
      "payments-api.shop.svc:80",
      "payments-api.shop.svc.cluster.local:80",
      `${PAYMENTS}:80`,
    ]);
    assert.deepEqual(domains.get("ledger.billing:*"), ["ledger.billing", "ledger.billing.svc", "ledger.billing.svc.cluster.local", LEDGER]);
    // The configuration is one the proxy takes.
    parseConfig(config);
  });

  it("an externalName that a Service of the mesh is called by, or that another ExternalName Service declared first, is not taken from it", () => {
    const w = world();
    w.services.set(keyOf("shop", "catalog"), {
      namespace: "shop",
      name: "catalog",
      clusterIP: "10.0.0.9",
      ports: [{ name: "http", port: 80, targetPort: 8080 }],
      selector: { app: "catalog" },
    });
    for (const s of [
      externalService("shop", "alias", "catalog.shop.svc.cluster.local", [80]),
      externalService("zeta", "payments-again", PAYMENTS, [80]),
    ])
      w.services.set(keyOf(s.metadata!.namespace!, s.metadata!.name!), serviceInfo(s));
    const hosts = computeProxyConfig(w, podInfo(), new Map(), DEFAULT_SETTINGS).listeners[0]!.virtualHosts;
    const owner = (domain: string) => hosts.filter((vh) => vh.domains.includes(domain)).map((vh) => vh.name);
    assert.deepEqual(owner("catalog.shop.svc.cluster.local:80"), ["catalog.shop:80"]);
    assert.deepEqual(owner(`${PAYMENTS}:80`), ["payments-api.shop:80"]);
    assert.deepEqual(owner("payments-again.zeta:80"), ["payments-again.zeta:80"]);
  });

  it("a Service of type ExternalName without a host is refused in local mode, naming the field", () => {
    assert.throws(
      () =>
        parseFile("apiVersion: v1\nkind: Service\nmetadata: { name: pay, namespace: shop }\nspec: { type: ExternalName }\n", "ext.yaml"),
      /ext\.yaml: document 1 \(Service shop\/pay\): a Service of type ExternalName needs spec\.externalName, the host outside the mesh it declares \(a DNS name like api\.example\.com\), not null/,
    );
  });

  it("a passthrough cluster with endpoints, tls or http2 is refused, naming each field", () => {
    const config = {
      identity: { certificateChain: "x", privateKey: "x", trustBundle: "x" },
      listeners: [],
      clusters: [
        {
          name: "out",
          passthrough: true,
          protocol: "http2",
          endpoints: [{ address: "10.0.0.1", port: 80 }],
          tls: { identities: ["spiffe://cluster.local/ns/a/sa/b"] },
        },
      ],
    };
    assert.throws(
      () => parseConfig(config),
      (e: Error) => {
        assert.match(
          e.message,
          /clusters\[0\]\.endpoints: a passthrough cluster takes each request's authority as its endpoint; leave endpoints empty/,
        );
        assert.match(
          e.message,
          /clusters\[0\]\.tls: a passthrough cluster reaches hosts outside the mesh, which have no mesh identity; remove tls/,
        );
        assert.match(e.message, /clusters\[0\]\.protocol: a passthrough cluster speaks http1 to each host/);
        return true;
      },
    );
    assert.throws(
      () => parseConfig({ listeners: [], clusters: [{ name: "out", endpoints: [], passthroughTo: { host: "api.example.com" } }] }),
      /clusters\[0\]\.passthroughTo: only a passthrough cluster has one; set passthrough: true, or give endpoints instead/,
    );
  });
});

describe("the outbound traffic setting on the command line", () => {
  const weft = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(NODE, ["bin/weft.ts", ...args], { cwd: ROOT }, (e, stdout, stderr) =>
        resolve({ code: e ? Number((e as { code?: unknown }).code) : 0, stdout, stderr }),
      ),
    );

  it("takes ALLOW_ANY and REGISTRY_ONLY, and weft's older passthrough and refuse for them", async () => {
    for (const [given, meant] of [
      ["ALLOW_ANY", "ALLOW_ANY"],
      ["REGISTRY_ONLY", "REGISTRY_ONLY"],
      ["passthrough", "ALLOW_ANY"],
      ["refuse", "REGISTRY_ONLY"],
    ]) {
      assert.equal(parseOutboundTraffic(given!, "--outbound-traffic"), meant);
      const installed = await weft(["install", "--outbound-traffic", given!]);
      assert.equal(installed.code, 0, installed.stderr);
      assert.match(installed.stdout, new RegExp(`- "--outbound-traffic=${meant}"\n`));
    }
    assert.match((await weft(["install"])).stdout, /- "--outbound-traffic=ALLOW_ANY"\n/);
  });

  it("refuses any other value with exit 2, listing what it takes", async () => {
    const expected =
      '--outbound-traffic must be ALLOW_ANY or REGISTRY_ONLY (or weft\'s older names, passthrough and refuse), not "allow_any"';
    for (const args of [
      ["install", "--outbound-traffic", "allow_any"],
      ["up", "--outbound-traffic", "allow_any"],
      ["control", "--local", ROOT, "--outbound-traffic", "allow_any"],
    ]) {
      const r = await weft(args);
      assert.equal(r.code, 2, `weft ${args.join(" ")}: ${r.stderr}`);
      assert.ok(r.stderr.includes(expected), `weft ${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stdout, "", `weft ${args.join(" ")} did nothing`);
    }
    assert.throws(() => parseOutboundTraffic("constructor", "--outbound-traffic"), /must be ALLOW_ANY or REGISTRY_ONLY/);
  });
});
