// A real node (test/k8s/node.ts) runs real pods: containerd + runc, kubelet, kube-proxy,
// kube-scheduler, CoreDNS, on this machine. Run by hand, as root (test/run.ts does not run
// test/k8s/; nothing here is part of `npm test`):
//   node --test test/k8s/node.test.ts
// Needs test/k8s/build.sh and test/k8s/build-node.sh to have run (it builds what is missing,
// slow on a cold cache), and the Debian packages build-node.sh names.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import process from "node:process";
import { poll, startCluster, type Cluster } from "./cluster.ts";
import type { Node } from "./node.ts";

const NS = "node-smoke";
const say = (s: string) => process.stderr.write(`[node.test] ${s}\n`);

describe("a real single-node cluster", { timeout: 15 * 60_000 }, () => {
  let k8s: Cluster;
  let node: Node;
  const k = (args: string[], input?: string) => k8s.kubectl(["-n", NS, ...args], input);
  const json = async (args: string[]) => JSON.parse(await k([...args, "-o", "json"]));
  let webPod = "";

  before(async () => {
    // A suite that cannot run fails, saying why: it must not pass by skipping.
    if (process.getuid?.() !== 0) throw new Error("the node needs root (network namespaces, iptables, cgroups): run this suite as root");
    const t0 = Date.now();
    k8s = await startCluster({ build: true, node: { build: true } });
    node = k8s.node!;
    say(`control plane + node Ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (${k8s.dir})`);
    await k8s.kubectl(["create", "namespace", NS]);
    await poll("the default ServiceAccount in " + NS, async () => (await k(["get", "sa", "default", "-o", "name"])).trim() || undefined);
  });
  after(async () => {
    if (k8s)
      say(
        `RSS: ${Object.entries(k8s.rss())
          .map(([n, kib]) => `${n} ${(kib / 1024).toFixed(0)} MiB`)
          .join(", ")}`,
      );
    const t0 = Date.now();
    await k8s?.stop();
    say(`stopped in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });

  it("runs a Deployment's pod: init container, then a native sidecar, then the main container; HTTP readiness probe", async () => {
    const t0 = Date.now();
    const img = node.images.busybox;
    await k(
      ["apply", "-f", "-"],
      `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      volumes:
      - {name: www, emptyDir: {}}
      - {name: shared, emptyDir: {}}
      initContainers:
      - name: init
        image: ${img}
        command: [sh, -c, "echo init >> /shared/order; echo hello from web > /www/index.html"]
        volumeMounts: [{name: www, mountPath: /www}, {name: shared, mountPath: /shared}]
      - name: sidecar
        image: ${img}
        restartPolicy: Always
        command: [sh, -c, "echo sidecar >> /shared/order; touch /shared/sidecar-up; echo sidecar running; exec sleep 3600"]
        startupProbe: {exec: {command: [test, -f, /shared/sidecar-up]}, periodSeconds: 1, failureThreshold: 30}
        volumeMounts: [{name: shared, mountPath: /shared}]
      containers:
      - name: web
        image: ${img}
        command: [sh, -c, "echo main >> /shared/order; echo main started; exec httpd -f -p 8080 -h /www"]
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /ready.txt, port: 8080}, periodSeconds: 1, failureThreshold: 1}
        volumeMounts: [{name: www, mountPath: /www}, {name: shared, mountPath: /shared}]
`,
    );
    webPod = await poll(
      "the web pod Running",
      async () => {
        const pods = (await json(["get", "pods", "-l", "app=web"])).items;
        return pods.length === 1 && pods[0].status.phase === "Running" ? pods[0].metadata.name : undefined;
      },
      120_000,
    );
    const running = Date.now() - t0;
    let pod = await json(["get", "pod", webPod]);
    assert.equal(pod.spec.nodeName, node.name);
    assert.equal(
      pod.status.conditions.find((c: { type: string }) => c.type === "Ready").status,
      "False",
      "not ready before /ready.txt exists",
    );
    // the order the three containers wrote, in the emptyDir they share
    assert.equal((await k(["exec", webPod, "-c", "web", "--", "cat", "/shared/order"])).trim(), "init\nsidecar\nmain");
    const sidecar = pod.status.initContainerStatuses.find((s: { name: string }) => s.name === "sidecar");
    assert.ok(sidecar.started && sidecar.state.running, `sidecar running: ${JSON.stringify(sidecar)}`);
    // readiness flips when the HTTP probe starts getting 200
    await k(["exec", webPod, "-c", "web", "--", "sh", "-c", "echo ok > /www/ready.txt"]);
    await poll("the web pod Ready", async () => {
      pod = await json(["get", "pod", webPod]);
      return pod.status.conditions.find((c: { type: string }) => c.type === "Ready").status === "True" ? true : undefined;
    });
    say(
      `web pod Running after ${(running / 1000).toFixed(1)} s, Ready after ${((Date.now() - t0) / 1000).toFixed(1)} s (probe flipped by exec)`,
    );
  });

  it("serves kubectl logs and kubectl exec (apiserver -> kubelet, client certificate both ways)", async () => {
    assert.match(await k(["logs", webPod, "-c", "web"]), /main started/);
    assert.match(await k(["logs", webPod, "-c", "sidecar"]), /sidecar running/);
    assert.equal((await k(["exec", webPod, "-c", "web", "--", "cat", "/www/index.html"])).trim(), "hello from web");
  });

  it("resolves a ClusterIP Service by name through CoreDNS from another pod, and it answers", async () => {
    await k(["expose", "deployment", "web", "--port=80", "--target-port=8080"]);
    const ip = (await k(["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"])).trim();
    // Guaranteed QoS: kubelet asks for oom_score_adj -997 (see restrict_oom_score_adj in
    // node.ts) and a memory limit in the cgroup v1 memory controller
    await k(
      ["apply", "-f", "-"],
      `apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: ${node.images.busybox}
    command: [sleep, "3600"]
    resources: {limits: {cpu: 100m, memory: 32Mi}}
`,
    );
    await poll(
      "the client pod Running",
      async () => ((await json(["get", "pod", "client"])).status.phase === "Running" ? true : undefined),
      60_000,
    );
    const ns = await k(["exec", "client", "--", "nslookup", `web.${NS}.svc.cluster.local`]);
    assert.ok(ns.includes(ip), `nslookup answered ${ns}`);
    // short name through the search path kubelet writes into resolv.conf; busybox wget's -T
    // crashes (Debian's static build), so the timeout is timeout(1)'s
    const viaName = await poll(
      "http://web/ from the client pod",
      async () => (await k(["exec", "client", "--", "timeout", "5", "wget", "-qO-", "http://web/index.html"])).trim() || undefined,
    );
    assert.equal(viaName, "hello from web");
    // pod to pod across the bridge, without the Service
    const podIp = (await json(["get", "pod", webPod])).status.podIP;
    assert.equal(
      (await k(["exec", "client", "--", "timeout", "5", "wget", "-qO-", `http://${podIp}:8080/index.html`])).trim(),
      "hello from web",
    );
  });

  it("reaches the Service's ClusterIP and the pod IP from the host", async () => {
    const ip = (await k(["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"])).trim();
    const res = await fetch(`http://${ip}/index.html`, { signal: AbortSignal.timeout(5000) });
    assert.equal((await res.text()).trim(), "hello from web");
    const podIp = (await json(["get", "pod", webPod])).status.podIP;
    assert.equal(
      (await (await fetch(`http://${podIp}:8080/index.html`, { signal: AbortSignal.timeout(5000) })).text()).trim(),
      "hello from web",
    );
  });

  it("reaches the apiserver from a pod through kubernetes.default.svc (ServiceAccount token, CA verified)", async () => {
    const out = await k(["exec", "client", "--", "kget", "https://kubernetes.default.svc/version"]);
    assert.equal(JSON.parse(out).gitVersion, k8s.version);
    // and it is the ClusterIP 10.0.0.1 through kube-proxy, whose endpoint is the host address
    const eps = JSON.parse(
      await k8s.kubectl(["get", "endpointslices", "-n", "default", "-l", "kubernetes.io/service-name=kubernetes", "-o", "json"]),
    );
    assert.deepEqual(eps.items[0].endpoints[0].addresses, [node.hostIp]);
  });

  it("cleans up a deleted pod: containers, cgroup, network interface", async () => {
    const pod = await json(["get", "pod", "client"]);
    assert.equal(pod.status.qosClass, "Guaranteed"); // so its cgroup is kubepods/pod<uid>, no QoS level
    const cg = path.join("/sys/fs/cgroup/memory", node.cgroupRoot, "kubepods", `pod${pod.metadata.uid}`);
    assert.ok(existsSync(cg), `pod cgroup ${cg} exists while it runs`);
    assert.equal(
      readFileSync(path.join(cg, "memory.limit_in_bytes"), "utf8").trim(),
      String(32 * 1024 * 1024),
      "the memory limit is in the cgroup v1 memory controller",
    );
    const veths = () => node.exec(["ip", "-o", "link", "show", "master", "cni0"]).trim().split("\n").filter(Boolean).length;
    assert.equal(veths(), 2, "one veth per pod on cni0");
    await k(["delete", "pod", "client", "--wait=true", "--timeout=60s", "--grace-period=1"]);
    await poll("the client pod's cgroup removed", async () => (existsSync(cg) ? undefined : true), 30_000);
    await poll("the client pod's veth removed", async () => (veths() === 1 ? true : undefined), 30_000);
  });
});
