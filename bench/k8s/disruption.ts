// The shop on a real node under an open-loop load through the frontend, while a catalog rollout
// runs (10 s), a control-plane pod is deleted (25 s), the greeting filter's config changes
// (35 s) and inventory's sidecar is SIGKILLed, which kubelet restarts (45 s). Prints what every
// request got (ok; degraded: a page without stock; failed, by cause; dropped by the generator),
// in which second, the sidecars' peak RSS, and any OOMKilled container. Root only; bounded by
// --seconds. A measurement, not a test: on 2 cores shared by every pod, the rate the machine
// sustains is part of what it measures (docs/k8s-test-env.md records the results).
//   node bench/k8s/disruption.ts [--rate 30] [--seconds 70]
import process from "node:process";
import { parseArgs } from "node:util";
import { applyShop, sidecarProcesses, sidecarRss, startRealMesh } from "../../test/support/real-mesh.ts";
import { until } from "../../test/support/control-process.ts";

const { values } = parseArgs({ options: { rate: { type: "string", default: "30" }, seconds: { type: "string", default: "70" } } });

interface PodJson {
  metadata: { name: string };
  status: {
    initContainerStatuses?: { name: string; lastState?: { terminated?: { reason?: string } } }[];
    containerStatuses?: { name: string; state?: { running?: unknown; terminated?: unknown }; lastState?: { terminated?: { reason?: string } } }[];
  };
}

/** SIGKILLs the sidecar of the shop pod whose name starts with `prefix`, as an OOM kill or a crash would. */
async function killSidecar(prefix: string): Promise<void> {
  const target = (await sidecarProcesses()).find((p) => p.pod.startsWith(`shop/${prefix}`));
  if (!target) throw new Error(`no sidecar for shop/${prefix}*`);
  process.kill(target.pid, "SIGKILL");
}

const mesh = await startRealMesh();
const kubectl = (args: string[], input?: string) => mesh.kubectl(args, input);
const pods = async (ns: string) => (JSON.parse(await kubectl(["get", "pods", "-n", ns, "-o", "json"])) as { items: PodJson[] }).items;
try {
  await mesh.install();
  await applyShop(mesh);
    const RATE = Number(values.rate);
    const SECONDS = Number(values.seconds);
    // Open loop from a meshed pod: one shopper per request (the rate limit counts per x-user), each
    // answer classified; a page whose stock is missing is "degraded" (inventory did not answer).
    const script = `
      const rate = ${RATE}, total = ${RATE * SECONDS}, start = Date.now();
      const out = { ok: 0, degraded: 0, failed: {}, dropped: 0, perSecond: {} };
      let sent = 0, done = 0, inflight = 0;
      const note = (second, what) => { const b = (out.perSecond[second] ??= {}); b[what] = (b[what] ?? 0) + 1; };
      const fire = async (i) => {
        const second = Math.floor((Date.now() - start) / 1000);
        if (inflight >= 300) { out.dropped++; note(second, "dropped"); return finish(); }
        inflight++;
        try {
          const r = await fetch("http://frontend.shop/", { headers: { "x-user": "load" + i }, signal: AbortSignal.timeout(10000) });
          const text = await r.text();
          if (r.status !== 200) { const k = r.status + " " + text.replace(/\\s+/g, " ").slice(0, 160); out.failed[k] = (out.failed[k] ?? 0) + 1; note(second, "failed"); }
          else if (JSON.parse(text).products.some((p) => p.inStock === null)) { out.degraded++; note(second, "degraded"); }
          else out.ok++;
        } catch (e) { const k = "error " + (e.cause?.code ?? e.name); out.failed[k] = (out.failed[k] ?? 0) + 1; note(second, "failed"); }
        inflight--;
        finish();
      };
      const finish = () => { if (++done === total) console.log(JSON.stringify(out)); };
      const timer = setInterval(() => { const due = Math.min(total, Math.floor(((Date.now() - start) / 1000) * rate)); while (sent < due) fire(sent++); if (sent >= total) clearInterval(timer); }, 5);
    `;
    await kubectl(["apply", "-f", "-"], JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "loadgen", namespace: "shop", labels: { app: "loadgen" } },
      spec: { restartPolicy: "Never", containers: [{ name: "loadgen", image: mesh.shopImage, command: ["node", "-e", script], resources: { limits: { memory: "256Mi" } } }] },
    }));
    await until("the load generator to start", async () => {
      const p = JSON.parse(await kubectl(["get", "pod", "loadgen", "-n", "shop", "-o", "json"])) as PodJson;
      return p.status.containerStatuses?.some((c) => c.name === "loadgen" && (c as { state?: { running?: unknown } }).state?.running) ? true : null;
    }, 120_000);
    const began = Date.now();
    const at = (seconds: number) => new Promise((r) => setTimeout(r, Math.max(0, began + seconds * 1000 - Date.now())));
    const rss: Record<string, number[]> = {};
    const sample = setInterval(() => {
      void sidecarRss().then((now) => { for (const [pod, kib] of Object.entries(now)) (rss[pod] ??= []).push(kib); });
    }, 5000);
    try {
      await at(10);
      await kubectl(["rollout", "restart", "deployment/catalog-v1", "deployment/catalog-v2", "-n", "shop"]);
      await at(25);
      const replicas = (await pods("weft-system")).map((p) => p.metadata.name);
      await kubectl(["delete", "pod", replicas[0]!, "-n", "weft-system", "--wait=false"]);
      await at(35);
      await kubectl(["patch", "wasmfilter", "greeting", "-n", "shop", "--type", "merge", "-p", JSON.stringify({ spec: { config: { response: { set: [{ name: "x-shop-greeting", value: "hello again" }] } } } })]);
      await at(45);
      await killSidecar("inventory");
      await until("the load to finish", async () => {
        const p = JSON.parse(await kubectl(["get", "pod", "loadgen", "-n", "shop", "-o", "json"])) as { status: { containerStatuses?: { name: string; state: { terminated?: unknown } }[] } };
        return p.status.containerStatuses?.find((c) => c.name === "loadgen")?.state.terminated ? true : null;
      }, (SECONDS + 60) * 1000);
    } finally {
      clearInterval(sample);
    }
    const result = JSON.parse((await kubectl(["logs", "loadgen", "-n", "shop", "-c", "loadgen"])).trim().split("\n").at(-1)!) as { ok: number; degraded: number; failed: Record<string, number>; dropped: number; perSecond: Record<string, Record<string, number>> };
    console.log(JSON.stringify({ ok: result.ok, degraded: result.degraded, failed: result.failed, dropped: result.dropped }));
    console.log(`seconds with problems: ${JSON.stringify(Object.fromEntries(Object.entries(result.perSecond).filter(([, v]) => Object.keys(v).length > 0)))}`);
    console.log(`sidecar RSS (MiB, sampled every 5 s): ${JSON.stringify(Object.fromEntries(Object.entries(rss).map(([p, v]) => [p, Math.round(Math.max(...v) / 1024)])))}`);

  const oom = (await Promise.all(["shop", "weft-system"].map(pods))).flat().flatMap((p) =>
    [...(p.status.initContainerStatuses ?? []), ...(p.status.containerStatuses ?? [])].filter((c) => c.lastState?.terminated?.reason === "OOMKilled").map((c) => `${p.metadata.name}/${c.name}`),
  );
  console.log(`OOMKilled: ${oom.length ? oom.join(", ") : "none"}`);
} finally {
  await mesh.stop();
}
