// runtimes: node
// Hosts outside the mesh (docs/egress.md), in a pod made of network namespaces
// (test/support/netns.ts): `weft init` redirects the app's port-80 and 8080 traffic to a real weft
// proxy (UID 1337, on Node, Deno and Bun in turn) whose configuration the control plane computed
// for a mesh with no Services. With the default outbound traffic "passthrough", the app's request
// reaches the host it named, through the proxy; a Host naming the pod itself is refused, since the
// proxy would send it back to itself. With "refuse", the 404 names the option. IPv4 only: the
// sidecar's listeners bind 0.0.0.0 (docs/egress.md).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { ChildProcess } from "node:child_process";
import { computeProxyConfig, DEFAULT_SETTINGS, PASSTHROUGH_CLUSTER, type OutboundTraffic } from "../../control/mesh/proxy-config.ts";
import { parseConfig } from "../../proxy/config/validate.ts";
import { emptyWorld, type PodInfo } from "../../control/mesh/world.ts";
import { NODE, PodPair, preflight, ROOT, run } from "../support/netns.ts";

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

const podInfo = (): PodInfo => ({
  namespace: "shop",
  name: "frontend",
  labels: { app: "frontend" },
  serviceAccount: "frontend",
  ip: pair.podIp,
  inMesh: true,
  containerPorts: [],
});

/** The configuration the control plane computes for a pod in a mesh with no Services, on its own ports. */
async function configFile(outboundTraffic: OutboundTraffic, outboundPort: number, adminPort: number): Promise<string> {
  const config = {
    ...computeProxyConfig(emptyWorld(), podInfo(), new Map(), { ...DEFAULT_SETTINGS, outboundTraffic, outboundPort }),
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
  await writeFile(path.join(HOSTS_DIR, "hosts"), `127.0.0.1 localhost ${LOOPBACK_NAME}\n`);
  await pair.startServer(pair.peer, undefined, ["peer:80", "peer:8080"]);
  const init = await run("ip", [
    "netns",
    "exec",
    pair.pod,
    NODE,
    "bin/weft.ts",
    "init",
    "--proxy-uid",
    String(PROXY_UID),
    "--include-inbound-ports",
    "",
  ]);
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
        ["passthrough", 15001, 15000],
        ["refuse", 15101, 15100],
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

    it("passes the app's HTTP on port 80 and 8080 through to the host it named", async () => {
      for (const [url, host] of [
        [`http://${pair.peerIp}/`, pair.peerIp],
        [`http://${pair.peerIp}:8080/`, `${pair.peerIp}:8080`],
      ]) {
        const reply = await pair.get(pair.pod, url);
        assert.ok(typeof reply === "object" && "by" in reply, `${url}: ${JSON.stringify(reply)}`);
        assert.equal(reply.by, "peer", url);
        assert.equal(reply.host, host, url);
        // Only a weft proxy adds X-Forwarded-For here: the request went through it, not around it.
        assert.equal(reply.forwardedFor, pair.podIp, url);
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

    it('with outbound traffic "refuse", answers 404 naming the option', async () => {
      // The app reaching the refusing proxy directly on loopback (not redirected).
      const reply = await pair.get(pair.pod, "http://127.0.0.1:15101/", { host: pair.peerIp });
      assert.ok(typeof reply === "object" && "status" in reply, JSON.stringify(reply));
      assert.equal(reply.status, 404);
      assert.match(
        reply.body,
        new RegExp(
          `no route for host "${pair.peerIp.replace(/\./g, "\\.")}" and path "/": the mesh refuses hosts outside it \\(outbound traffic is "refuse": weft install --outbound-traffic passthrough lets them through; docs/egress\\.md\\)`,
        ),
      );
    });
  });
}

describe("passthrough in the proxy's configuration", () => {
  it('the control plane adds a last "*" virtual host to a passthrough cluster, or a 404 reason when it refuses', () => {
    const pod = podInfo();
    const passthrough = computeProxyConfig(emptyWorld(), pod, new Map(), DEFAULT_SETTINGS);
    assert.deepEqual(
      passthrough.clusters.filter((c) => c.passthrough),
      [{ name: PASSTHROUGH_CLUSTER, passthrough: true, endpoints: [] }],
    );
    assert.deepEqual(passthrough.listeners[0]!.virtualHosts.at(-1)!.domains, ["*"]);
    assert.equal(passthrough.listeners[0]!.noRouteReason, undefined);
    const refuse = computeProxyConfig(emptyWorld(), pod, new Map(), { ...DEFAULT_SETTINGS, outboundTraffic: "refuse" });
    assert.deepEqual(
      refuse.clusters.filter((c) => c.passthrough),
      [],
    );
    assert.deepEqual(refuse.listeners[0]!.virtualHosts, []);
    assert.match(refuse.listeners[0]!.noRouteReason ?? "", /^the mesh refuses hosts outside it/);
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
  });
});
