// runtimes: node
// `weft init` (control/init/): the rules installed for real, by `weft init` run as a child
// process inside a network namespace made for the test ("pod"), joined by a veth pair to a second
// one ("peer"); then real TCP connections and HTTP requests (curl) from both sides, as root, as
// another user and as the proxy's UID, show where each one lands. In the pod: an app on 8080,
// 9090 and 40000, and a fake sidecar (UID 1337) whose listeners only say which of them got the
// request: 40848 and 41858, where app ports 8080 and 9090 arrive when captured (port + 32768), and
// 15001, the outbound one; in the peer: a real destination on 80, 5432 and 9999. The root namespace and its
// iptables are never touched. Needs root, iproute2 (ip netns), iptables, setpriv and curl.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { cleanupInput, installInput, mangleRules, natRules, type InitOptions } from "../../control/init/rules.ts";
import { must, PodPair, preflight, type Got, type Ran } from "../support/netns.ts";

const pair = new PodPair("init", 77);
const { pod: POD, peer: PEER, podIp: POD_IP, peerIp: PEER_IP, podIp6: POD_IP6, peerIp6: PEER_IP6 } = pair;
const PROXY_UID = 1337;

/** The pod's nat table as iptables-save shows it, without the comments and counters that change between runs. */
async function saved(family: "IPv4" | "IPv6"): Promise<string[]> {
  const text = await must("ip", "netns", "exec", POD, family === "IPv4" ? "iptables-save" : "ip6tables-save", "-t", "nat");
  return text
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, ""));
}
const ruleLines = (lines: string[]) => lines.filter((l) => l.startsWith("-A "));

const get = (...args: Parameters<PodPair["get"]>) => pair.get(...args);
const by = async (...args: Parameters<PodPair["get"]>) => {
  const reply: Got = await get(...args);
  return typeof reply === "object" && "by" in reply ? reply.by : JSON.stringify(reply);
};

async function setUp(): Promise<void> {
  await pair.setUp();
  await Promise.all([
    pair.startServer(POD, undefined, ["app:8080", "app:9090", "app:40000"]),
    pair.startServer(POD, PROXY_UID, ["inbound:40848", "inbound-9090:41858", "outbound:15001"]),
    pair.startServer(PEER, undefined, ["peer:80", "peer:5432", "peer:9999"]),
  ]);
}

const DEFAULTS: InitOptions = {
  proxyUid: PROXY_UID,
  inboundPort: 15006,
  outboundPort: 15001,
  inboundPorts: [8080],
  excludeInboundPorts: [],
  outboundPorts: [80, 8080],
  excludeOutboundPorts: [],
  serviceCidrs: [],
};

describe("weft init in a pod's network namespace", () => {
  let first: Ran;
  before(async () => {
    await preflight("weft init's suite");
    await setUp();
    first = await pair.init(
      "--proxy-uid",
      "1337",
      "--inbound-port",
      "15006",
      "--outbound-port",
      "15001",
      "--include-inbound-ports",
      "8080",
    );
  });
  after(() => pair.tearDown());

  it("installs the rules for IPv4 and IPv6, exactly as generated, and says what it did", async () => {
    assert.equal(first.code, 0, first.stderr);
    assert.match(
      first.stdout,
      /weft init: inbound TCP to ports 8080 goes to the sidecar on port \+ 32768; outbound TCP to ports 80,8080 goes to 15001, except from UID 1337 and over loopback/,
    );
    for (const family of ["IPv4", "IPv6"] as const) {
      assert.match(first.stdout, new RegExp(`weft init: ${family}: ip6?tables-restore --noflush`));
      const table = await saved(family);
      assert.deepEqual(ruleLines(table), natRules(DEFAULTS, family), `${family}: iptables-save shows the generated rules, in order`);
      for (const chain of ["WEFT_INBOUND", "WEFT_IN_REDIRECT", "WEFT_OUTPUT", "WEFT_REDIRECT"])
        assert.ok(table.includes(`:${chain} -`), `${family}: chain ${chain}`);
    }
  });

  it("inbound: a peer's connection to an app port reaches the sidecar on that port + 32768, Host intact (IPv4 and IPv6)", async () => {
    assert.deepEqual(await get(PEER, `http://${POD_IP}:8080/`), { by: "inbound", host: `${POD_IP}:8080` });
    assert.deepEqual(await get(PEER, `http://[${POD_IP6}]:8080/`), { by: "inbound", host: `[${POD_IP6}]:8080` });
  });

  it("inbound: a port not listed goes straight to the app", async () => {
    assert.equal(await by(PEER, `http://${POD_IP}:9090/`), "app");
  });

  it("outbound: the app's HTTP to another address on port 80 reaches the outbound listener with its Host, whatever the app's UID", async () => {
    for (const uid of [undefined, 1000]) {
      assert.deepEqual(
        await get(POD, `http://${PEER_IP}/`, { uid, host: "catalog.shop" }),
        { by: "outbound", host: "catalog.shop" },
        `UID ${uid ?? 0}`,
      );
    }
    assert.deepEqual(
      await get(POD, `http://[${PEER_IP6}]/`, { host: "catalog.shop:80" }),
      { by: "outbound", host: "catalog.shop:80" },
      "IPv6",
    );
  });

  it("outbound: the proxy's own connections (UID 1337) reach the real destination", async () => {
    assert.equal(await by(POD, `http://${PEER_IP}/`, { uid: PROXY_UID, host: "catalog.shop" }), "peer");
    assert.equal(await by(POD, `http://[${PEER_IP6}]/`, { uid: PROXY_UID }), "peer");
  });

  it("outbound: ports not listed are not redirected (non-HTTP keeps working)", async () => {
    assert.equal(await by(POD, `http://${PEER_IP}:9999/`), "peer");
    assert.equal(await by(POD, `http://${PEER_IP}:5432/`), "peer");
  });

  it("loopback: the app reaching itself and the proxy reaching the app on 127.0.0.1 are not redirected", async () => {
    assert.equal(await by(POD, "http://127.0.0.1:8080/"), "app", "app to 127.0.0.1");
    assert.equal(await by(POD, "http://[::1]:8080/"), "app", "app to ::1");
    assert.equal(await by(POD, `http://${POD_IP}:8080/`), "app", "app to its own pod IP");
    assert.equal(await by(POD, "http://127.0.0.1:8080/", { uid: PROXY_UID }), "app", "proxy to the app on 127.0.0.1");
  });

  it("the proxy reaching its own pod IP on an app port goes through its inbound listener, as a peer's would", async () => {
    assert.equal(await by(POD, `http://${POD_IP}:8080/`, { uid: PROXY_UID }), "inbound");
    assert.equal(await by(POD, `http://[${POD_IP6}]:8080/`, { uid: PROXY_UID }), "inbound");
  });

  it("running init again leaves one set of rules", async () => {
    const earlier = { v4: await saved("IPv4"), v6: await saved("IPv6") };
    const again = await pair.init("--include-inbound-ports", "8080");
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await saved("IPv4"), earlier.v4);
    assert.deepEqual(await saved("IPv6"), earlier.v6);
    assert.equal(earlier.v4.filter((l) => l.startsWith("-A PREROUTING")).length, 1);
    assert.equal(earlier.v4.filter((l) => l.startsWith("-A OUTPUT")).length, 1);
  });

  it("--include-outbound-ports * redirects every port but the excluded ones, replacing the earlier rules", async () => {
    const r = await pair.init("--include-inbound-ports", "8080", "--include-outbound-ports", "*", "--exclude-outbound-ports", "5432");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /outbound TCP to every port but 5432 goes to 15001/);
    assert.deepEqual(ruleLines(await saved("IPv4")), natRules({ ...DEFAULTS, outboundPorts: "*", excludeOutboundPorts: [5432] }, "IPv4"));
    assert.deepEqual(await get(POD, `http://${PEER_IP}:9999/`, { host: "orders.shop:9999" }), { by: "outbound", host: "orders.shop:9999" });
    assert.equal(await by(POD, `http://${PEER_IP}:5432/`), "peer", "excluded");
    assert.equal(await by(POD, `http://${PEER_IP}:9999/`, { uid: PROXY_UID }), "peer", "the proxy's own");
    assert.equal(await by(POD, "http://127.0.0.1:9090/"), "app", "loopback");
  });

  it("--include-inbound-ports * captures every port up to 32767 but the excluded ones, and refuses higher ones", async () => {
    const r = await pair.init("--include-inbound-ports", "*", "--exclude-inbound-ports", "15000");
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /inbound TCP to every port but 15000,15001,15006 up to 32767 goes to the sidecar on port \+ 32768 \(higher ports are refused\)/,
    );
    assert.deepEqual(ruleLines(await saved("IPv6")), natRules({ ...DEFAULTS, inboundPorts: "*", excludeInboundPorts: [15000] }, "IPv6"));
    assert.equal(await by(PEER, `http://${POD_IP}:8080/`), "inbound");
    assert.equal(await by(PEER, `http://[${POD_IP6}]:9090/`), "inbound-9090", "a port the app never declared, each to its own listener");
    const refused = /curl failed \(exit 7\)/;
    assert.match(await by(PEER, `http://${POD_IP}:40000/`), refused, "above 32767: refused, not left open to the app");
    assert.match(await by(PEER, `http://${POD_IP}:40848/`), refused, "the sidecar's shifted listener is not reachable directly");
    assert.match(await by(PEER, `http://${POD_IP}:7777/`), refused, "a captured port the sidecar does not serve");
    assert.equal(await by(POD, "http://127.0.0.1:40000/"), "app", "loopback is the app's own");

    const excluded = await pair.init("--include-inbound-ports", "*", "--exclude-inbound-ports", "9090");
    assert.equal(excluded.code, 0, excluded.stderr);
    assert.equal(await by(PEER, `http://${POD_IP}:9090/`), "app", "an excluded port reaches the app directly");
    assert.equal(await by(PEER, `http://${POD_IP}:8080/`), "inbound");
  });

  it("--dry-run prints the rules and changes nothing", async () => {
    const earlier = await saved("IPv4");
    const r = await pair.init("--dry-run", "--include-inbound-ports", "8080,9090", "--exclude-outbound-ports", "8080");
    assert.equal(r.code, 0, r.stderr);
    const options = { ...DEFAULTS, inboundPorts: [8080, 9090], excludeOutboundPorts: [8080] };
    assert.ok(r.stdout.includes(installInput(options, "IPv4", "")) && r.stdout.includes(installInput(options, "IPv6", "")), r.stdout);
    assert.deepEqual(await saved("IPv4"), earlier);
  });

  it("bad flags are refused, each saying what was wrong, and change nothing", async () => {
    const earlier = await saved("IPv4");
    const bad = await pair.init("--include-inbound-ports", "8080,15006,http", "--proxy-uid", "root", "--outbound-port", "70000");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--include-inbound-ports: "http" is not a port \(1-65535\): give comma-separated ports, like 80,8080/);
    assert.match(bad.stderr, /--proxy-uid: "root" is not a user ID/);
    assert.match(bad.stderr, /--outbound-port: "70000" is not a port/);
    const loop = await pair.init("--include-inbound-ports", "8080,15006");
    assert.equal(loop.code, 2);
    assert.match(loop.stderr, /--include-inbound-ports: 15006 is the proxy's inbound port, and redirecting it would loop/);
    const missing = await pair.init();
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--include-inbound-ports is required/);
    const high = await pair.init("--include-inbound-ports", "8080,40000");
    assert.equal(high.code, 2);
    assert.match(
      high.stderr,
      /--include-inbound-ports: 40000 is above 32767, the highest port weft can capture \(the sidecar listens for app port P on P \+ 32768\)/,
    );
    const cidr = await pair.init("--include-inbound-ports", "8080", "--service-cidr", "10.96.0.1/12");
    assert.equal(cidr.code, 2);
    assert.match(cidr.stderr, /--service-cidr: "10\.96\.0\.1\/12" is not an IPv4 range like 10\.96\.0\.0\/12/);
    const everything = await pair.init(
      "--include-inbound-ports",
      "8080",
      "--service-cidr",
      "10.96.0.0/12",
      "--include-outbound-ports",
      "*",
    );
    assert.equal(everything.code, 2);
    assert.match(everything.stderr, /--service-cidr and --include-outbound-ports '\*' do not go together/);
    const rootUid = await pair.init("--include-inbound-ports", "8080", "--proxy-uid", "0");
    assert.match(rootUid.stderr, /--proxy-uid: 0 would let every root process of the app bypass the proxy/);
    assert.deepEqual(await saved("IPv4"), earlier);
  });

  it("--cleanup removes every weft rule and chain, and running it again is harmless", async () => {
    for (let i = 0; i < 2; i++) {
      const r = await pair.init("--cleanup");
      assert.equal(r.code, 0, r.stderr);
      for (const family of ["IPv4", "IPv6"] as const) {
        assert.deepEqual(
          (await saved(family)).filter((l) => l.includes("WEFT")),
          [],
          `${family}, run ${i + 1}`,
        );
      }
    }
    assert.equal(await by(PEER, `http://${POD_IP}:8080/`), "app");
    assert.equal(await by(POD, `http://${PEER_IP}/`), "peer");
  });
});

// A second pod, whose peer also plays kube-proxy: it holds a Service address (CLUSTER_IP, in
// SERVICE_CIDR, routed there from the pod) and answers on its ports as "peer".
const services = new PodPair("init-svc", 81);
const SERVICE_CIDR = "10.181.0.0/16";
const CLUSTER_IP = "10.181.0.10";
// Another Service address, which the peer routes to the pod as an attacker next to it could.
const ROUTED_IP = "10.181.0.99";

describe("weft init --service-cidr: the app's TCP to a Service reaches the sidecar on the Service's address", () => {
  let ran: Ran;
  before(async () => {
    await preflight("weft init's suite");
    await services.setUp();
    await must("ip", "-n", services.peer, "addr", "add", `${CLUSTER_IP}/32`, "dev", "eth0");
    await must("ip", "-n", services.pod, "route", "add", SERVICE_CIDR, "via", services.peerIp);
    await must("ip", "-n", services.peer, "route", "add", `${ROUTED_IP}/32`, "via", services.podIp);
    await Promise.all([
      services.startServer(services.pod, undefined, ["app:5432", "app:8080"]),
      services.startServer(services.pod, PROXY_UID, ["outbound:15001"]),
      services.startServer(services.peer, undefined, ["peer:80", "peer:5432", "peer:40000"]),
    ]);
    ran = await services.init("--include-inbound-ports", "*", "--exclude-inbound-ports", "15000", "--service-cidr", SERVICE_CIDR);
    // Bound after init: the Service address is local only from then on. 5432 + 32768.
    if (ran.code === 0) await services.startServer(services.pod, PROXY_UID, [`service:${CLUSTER_IP}:38200`, `routed:${ROUTED_IP}:38200`]);
  });
  after(() => services.tearDown());
  const at = (url: string, opts: { uid?: number; host?: string } = {}) => services.get(services.pod, url, opts);
  const whoAt = async (url: string, opts: { uid?: number } = {}) => {
    const reply = await at(url, opts);
    return typeof reply === "object" && "by" in reply ? reply.by : JSON.stringify(reply);
  };

  it("installs the mark, the shift and the routes, and says so", async () => {
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(
      ran.stdout,
      /TCP to other ports up to 32767 of Services \(10\.181\.0\.0\/16\) goes to the sidecar on the Service's address, port \+ 32768/,
    );
    const options = { ...DEFAULTS, inboundPorts: "*" as const, excludeInboundPorts: [15000], serviceCidrs: [SERVICE_CIDR] };
    const mangle = (await must("ip", "netns", "exec", services.pod, "iptables-save", "-t", "mangle")).split("\n");
    assert.deepEqual(ruleLines(mangle), mangleRules(options, "IPv4"));
    const rules = await must("ip", "-n", services.pod, "-4", "rule", "show");
    assert.match(
      rules,
      /^5:\s+from all fwmark 0x539 lookup local\n6:\s+from all to 10\.181\.0\.0\/16 lookup main\n10:\s+from all lookup local\n/,
    );
  });

  it("the app's connection to a Service port arrives at ClusterIP:port + 32768, as root or another user", async () => {
    for (const uid of [undefined, 1000])
      assert.deepEqual(await at(`http://${CLUSTER_IP}:5432/`, { uid }), { by: "service", host: `${CLUSTER_IP}:5432` }, `UID ${uid ?? 0}`);
  });

  it("what weft leaves alone leaves the pod: the proxy's own connections, ports above 32767", async () => {
    assert.equal(await whoAt(`http://${CLUSTER_IP}:5432/`, { uid: PROXY_UID }), "peer", "the proxy reaches the Service through kube-proxy");
    assert.equal(await whoAt(`http://${CLUSTER_IP}:40000/`), "peer", "a port the shift cannot carry");
  });

  it("a peer routing a Service address to the pod never reaches the Service listeners, which speak only for the app (only its marked packets are local)", async () => {
    assert.equal(await whoAt(`http://${ROUTED_IP}:5432/`), "routed", "the app reaches it");
    const fromPeer = await services.get(services.peer, `http://${ROUTED_IP}:5432/`);
    assert.match(String(fromPeer), /curl failed \(exit 28\)/, "the peer's connection gets no answer at all");
  });

  it("port 80 still goes to the outbound listener, by Host", async () => {
    assert.deepEqual(await at(`http://${CLUSTER_IP}/`, { host: "catalog.shop" }), { by: "outbound", host: "catalog.shop" });
  });

  it("the app keeps its own ports, and its loopback and pod IP", async () => {
    assert.equal(await whoAt("http://127.0.0.1:5432/"), "app", "a port that is also a Service's");
    assert.equal(await whoAt(`http://${services.podIp}:8080/`), "app", "its own pod IP");
  });

  it("--cleanup restores the routing: the Service address leaves the pod again", async () => {
    const r = await services.init("--cleanup");
    assert.equal(r.code, 0, r.stderr);
    const rules = await must("ip", "-n", services.pod, "-4", "rule", "show");
    assert.match(rules, /^0:\s+from all lookup local\n32766:/);
    assert.equal(await must("ip", "-n", services.pod, "-4", "route", "show", "table", "local", "proto", "87"), "");
    assert.equal(await whoAt(`http://${CLUSTER_IP}:5432/`), "peer");
  });
});

describe("the restore input (pure)", () => {
  const save = (...rules: string[]) =>
    [
      "# Generated by iptables-save",
      "*mangle",
      ":OUTPUT ACCEPT [0:0]",
      "-A OUTPUT -p tcp -j WEFT_SERVICES",
      "COMMIT",
      "*nat",
      ":PREROUTING ACCEPT [0:0]",
      ...rules,
      "COMMIT",
      "",
    ].join("\n");
  const stale = save(
    "-A PREROUTING -p tcp -j WEFT_INBOUND",
    "-A PREROUTING -p tcp -j WEFT_INBOUND",
    "-A PREROUTING -p tcp -j KUBE_OTHER",
    "-A OUTPUT -p tcp -j WEFT_OUTPUT",
  );

  it("removes every earlier jump into weft's chains, duplicates too, and leaves others' rules alone", () => {
    const input = installInput(DEFAULTS, "IPv4", stale).split("\n");
    assert.deepEqual(
      input.filter((l) => l.startsWith("-D")),
      [
        "-D PREROUTING -p tcp -j WEFT_INBOUND",
        "-D PREROUTING -p tcp -j WEFT_INBOUND",
        "-D OUTPUT -p tcp -j WEFT_OUTPUT",
        "-D OUTPUT -p tcp -j WEFT_SERVICES",
      ],
    );
    assert.deepEqual(input.slice(0, 5), [
      "*nat",
      ":WEFT_INBOUND - [0:0]",
      ":WEFT_IN_REDIRECT - [0:0]",
      ":WEFT_OUTPUT - [0:0]",
      ":WEFT_REDIRECT - [0:0]",
    ]);
    assert.deepEqual(input.slice(-2), ["COMMIT", ""]);
  });

  it("cleans up by emptying, unhooking and deleting the chains", () => {
    const input = cleanupInput(stale).split("\n");
    assert.deepEqual(
      input.filter((l) => l.startsWith("-X")),
      ["-X WEFT_INBOUND", "-X WEFT_IN_REDIRECT", "-X WEFT_OUTPUT", "-X WEFT_REDIRECT", "-X WEFT_SERVICES"],
    );
    assert.equal(input.filter((l) => l.startsWith("-D")).length, 4);
    assert.ok(!input.some((l) => l.startsWith("-A")));
  });

  it("takes excluded ports out of a port list, and sorts and dedupes", () => {
    const rules = natRules(
      { ...DEFAULTS, inboundPorts: [9090, 8080, 9090], outboundPorts: [8080, 80, 3000, 80], excludeOutboundPorts: [8080] },
      "IPv4",
    );
    assert.deepEqual(
      rules.filter((l) => l.includes("--dport")),
      [
        "-A WEFT_INBOUND -p tcp -m tcp --dport 8080 -j WEFT_IN_REDIRECT",
        "-A WEFT_INBOUND -p tcp -m tcp --dport 9090 -j WEFT_IN_REDIRECT",
        "-A WEFT_OUTPUT -p tcp -m tcp --dport 80 -j WEFT_REDIRECT",
        "-A WEFT_OUTPUT -p tcp -m tcp --dport 3000 -j WEFT_REDIRECT",
      ],
    );
  });
});
