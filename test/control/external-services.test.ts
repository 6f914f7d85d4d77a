// runtimes: node
// needs: k8s
// Declaring a host outside the mesh with a Service of type ExternalName (docs/egress.md), the whole
// way: the Service is applied to and deleted from a real kube-apiserver, a control plane with
// outbound traffic REGISTRY_ONLY watches it and streams the configuration to a real sidecar (UID
// 1337) in a pod made of network namespaces (test/support/netns.ts), and `weft init`'s rules
// redirect the app's plain HTTP to that sidecar. The outside host is an echo server on the peer,
// named payments.example in the pod's /etc/hosts; the Service's own names resolve nowhere, so a
// request for one reaches the peer only if the sidecar sends it to the externalName. Deviations
// from a cluster, each for want of a node: the sidecar reaches the control plane through a Unix
// socket (PodPair.forward), and its token and CA are files written here.
// Needs root, iproute2, iptables, setpriv and curl (.ci/run installs them).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { startCluster, type Cluster } from "../k8s/cluster.ts";
import { applyCrds, until, writeProxyToken } from "../support/control-process.ts";
import { startMeshControl, type MeshControl } from "../support/mesh-control.ts";
import { namespaceYaml, podYaml, serviceAccountYaml } from "../support/service.ts";
import { NODE, PodPair, preflight, type Got } from "../support/netns.ts";

const pair = new PodPair("extname", 76);
const PROXY_UID = 1337;
const HOSTS_DIR = path.join("/etc/netns", pair.pod);
/** Where the sidecar finds the control plane, in the pod's own namespace. */
const CONTROL_PORT_IN_POD = 15012;
const PAYMENTS = "payments.example";

const SERVICE = `apiVersion: v1
kind: Service
metadata: { name: payments-api, namespace: shop }
spec:
  type: ExternalName
  externalName: ${PAYMENTS}
  ports: [{ name: http, port: 80 }]
`;

const REFUSED = (host: string) =>
  `no route for host "${host}" and path "/": outbound traffic is REGISTRY_ONLY, so the mesh refuses hosts outside it that no Service of type ExternalName declares: declare this one, or let every host through with --outbound-traffic ALLOW_ANY (docs/egress.md)\n`;

/** The app's request for `host`, redirected by weft init's rules to the sidecar. */
const request = (host: string): Promise<Got> => pair.get(pair.pod, `http://${pair.peerIp}/`, { host });

const reachedPeer = (got: Got): got is Extract<Got, { by: string }> => typeof got === "object" && "by" in got && got.by === "peer";
const refused = (got: Got, host: string) => typeof got === "object" && "status" in got && got.status === 404 && got.body === REFUSED(host);

describe("a Service of type ExternalName on the API server declares a host the sidecar lets through under REGISTRY_ONLY", () => {
  let k8s: Cluster;
  let control: MeshControl;
  let scratch: string;

  before(async () => {
    await preflight("the ExternalName suite");
    scratch = await mkdtemp(path.join(tmpdir(), "weft-extname-"));
    // The sidecar runs as its own user: it reads the token and CA here and keeps its temporary files.
    await chmod(scratch, 0o777);
    await pair.setUp();
    await mkdir(HOSTS_DIR, { recursive: true });
    await writeFile(path.join(HOSTS_DIR, "hosts"), `127.0.0.1 localhost\n${pair.peerIp} ${PAYMENTS}\n`);
    await pair.startServer(pair.peer, undefined, ["peer:80"]);

    k8s = await startCluster({ controllerManager: false });
    await applyCrds(k8s);
    control = await startMeshControl(k8s, scratch, { settings: { outboundTraffic: "REGISTRY_ONLY" } });
    await k8s.kubectl(
      ["apply", "-f", "-"],
      `${namespaceYaml("shop")}---\n${serviceAccountYaml("shop", "frontend")}---\n${podYaml({ namespace: "shop", name: "frontend-0", app: "frontend", serviceAccount: "frontend", port: 8080 })}`,
    );
    const token = path.join(scratch, "token");
    await writeProxyToken(k8s, "shop", "frontend", token);
    await Promise.all([chmod(token, 0o644), chmod(control.caFile, 0o644)]);

    const init = await pair.init("--proxy-uid", String(PROXY_UID), "--include-inbound-ports", "");
    assert.equal(init.code, 0, init.stderr);
    await pair.forward(pair.pod, CONTROL_PORT_IN_POD, control.port, path.join(scratch, "control.sock"));
    await pair.spawn(
      pair.pod,
      PROXY_UID,
      [
        "env",
        `HOME=${scratch}`,
        `TMPDIR=${scratch}`,
        NODE,
        "bin/weft.ts",
        "proxy",
        "--control-plane",
        `https://127.0.0.1:${CONTROL_PORT_IN_POD}`,
        "--ca-file",
        control.caFile,
        "--namespace",
        "shop",
        "--pod",
        "frontend-0",
        "--token-file",
        token,
      ],
      '"msg":"configuration from the control plane applied"',
      "the sidecar",
    );
  });
  after(async () => {
    await pair.tearDown();
    await control?.controller.stop();
    await k8s?.stop();
    await rm(HOSTS_DIR, { recursive: true, force: true });
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it("refuses a host no Service declares, and the Service's names before it exists, with a 404 naming the setting", async () => {
    for (const host of [pair.peerIp, PAYMENTS, "payments-api.shop"]) {
      const got = await request(host);
      assert.ok(refused(got, host), `${host}: ${JSON.stringify(got)}`);
    }
  });

  it("passes the host once the Service declares it, by its externalName and by the Service's names, on the Service's port", async () => {
    await k8s.kubectl(["apply", "-f", "-"], SERVICE);
    await until(`the sidecar to let ${PAYMENTS} through`, async () => reachedPeer(await request(PAYMENTS)));
    for (const host of [PAYMENTS, "payments-api", "payments-api.shop", "payments-api.shop.svc.cluster.local"]) {
      const got = await request(host);
      assert.ok(reachedPeer(got), `${host}: ${JSON.stringify(got)}`);
      // The Host the app gave, as through the cluster's DNS; X-Forwarded-For: through the sidecar.
      assert.equal(got.host, host);
      assert.equal(got.forwardedFor, pair.podIp, host);
    }
    for (const host of [pair.peerIp, `${PAYMENTS}:8080`]) {
      const got = await request(host);
      assert.ok(refused(got, host), `${host} is still refused: ${JSON.stringify(got)}`);
    }
  });

  it("refuses the host again once the Service is deleted", async () => {
    await k8s.kubectl(["delete", "service", "payments-api", "-n", "shop"]);
    await until(`the sidecar to refuse ${PAYMENTS} again`, async () => refused(await request(PAYMENTS), PAYMENTS));
    for (const host of [PAYMENTS, "payments-api.shop", "payments-api.shop.svc.cluster.local"]) {
      const got = await request(host);
      assert.ok(refused(got, host), `${host}: ${JSON.stringify(got)}`);
    }
  });
});
