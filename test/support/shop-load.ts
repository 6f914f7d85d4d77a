// The shop on a real node under an open-loop load through the frontend, while the disruptions of
// a working day happen: a catalog rollout (10 s), a control-plane pod deleted (25 s), the greeting
// filter's config changed (35 s) and inventory's sidecar SIGKILLed, which kubelet restarts (45 s).
// For test/control/real-pods.test.ts (what the user is promised) and bench/k8s/disruption.ts (at
// rates the machine may not sustain). Root only, like the node.
import process from "node:process";
import { until } from "./control-process.ts";
import { sidecarProcesses, sidecarRss, type PodJson, type RealMesh } from "./real-mesh.ts";

export interface ShopLoadResult {
  /** Pages with every product's stock. */
  ok: number;
  /** Pages without some stock: inventory did not answer, and the frontend said so. */
  degraded: number;
  /** Anything else, by status and x-weft-error (or the client's error). */
  failed: Record<string, number>;
  /** The warm-up's pages, before the measured load: how many, and how many were not 200. */
  warmup: { pages: number; notOk: number };
  /** Requests the generator did not send because 300 were already waiting. */
  dropped: number;
  /** What happened in each second of the load that was not ok. */
  perSecond: Record<string, Record<string, number>>;
  /** When the measured load began (after the warm-up), ms since the epoch: its second 0. */
  began: number;
  /** The second of the load each disruption started in. */
  disruptions: Record<string, number>;
  /** Each sidecar's peak RSS in MiB, sampled every 5 s. */
  peakRssMiB: Record<string, number>;
  /** Containers whose last state is OOMKilled, as pod/container. */
  oomKilled: string[];
}

// Runs in a meshed pod (its calls go out through its own sidecar): one shopper per request, since
// the rate limit counts per x-user; every answer classified. First a warm-up that ramps from a
// tenth of the rate to all of it, as a rollout's traffic shift would (fresh pods run cold code:
// Node compiles the hot path in the first seconds); its pages are reported apart, in `warmup`.
const generator = (rate: number, seconds: number, warmup: number) => `
  const rate = ${rate}, total = ${rate * seconds}, warmup = ${warmup}, start = Date.now();
  const warmed = Math.round(rate * 0.55 * warmup);
  const out = { ok: 0, degraded: 0, failed: {}, dropped: 0, perSecond: {}, warmup: { pages: warmed, notOk: 0 } };
  let sent = 0, done = 0, inflight = 0;
  const note = (second, what) => { const b = (out.perSecond[second] ??= {}); b[what] = (b[what] ?? 0) + 1; };
  const fire = async (i) => {
    const second = Math.floor((Date.now() - start) / 1000) - warmup;
    if (i < warmed) { try { const r = await fetch("http://frontend.shop/", { headers: { "x-user": "warm" + i }, signal: AbortSignal.timeout(10000) }); await r.text(); if (r.status !== 200) out.warmup.notOk++; } catch { out.warmup.notOk++; } return; }
    if (inflight >= 300) { out.dropped++; note(second, "dropped"); return finish(); }
    inflight++;
    try {
      const r = await fetch("http://frontend.shop/", { headers: { "x-user": "load" + i }, signal: AbortSignal.timeout(10000) });
      const text = await r.text();
      if (r.status !== 200) { const k = r.status + " " + (r.headers.get("x-weft-error") ?? text.replace(/\\s+/g, " ").slice(0, 160)); out.failed[k] = (out.failed[k] ?? 0) + 1; note(second, "failed"); }
      else if (JSON.parse(text).products.some((p) => p.inStock === null)) { out.degraded++; note(second, "degraded"); }
      else out.ok++;
    } catch (e) { const k = "error " + (e.cause?.code ?? e.name); out.failed[k] = (out.failed[k] ?? 0) + 1; note(second, "failed"); }
    inflight--;
    finish();
  };
  const finish = () => { if (++done === total) console.log(JSON.stringify(out)); };
  // pages due by t seconds: the ramp's integral (rate/10 rising to rate over warmup), then rate
  const due = (t) => t < warmup ? Math.floor(rate * (0.1 * t + 0.45 * t * t / warmup)) : warmed + Math.floor((t - warmup) * rate);
  const timer = setInterval(() => { const until = Math.min(warmed + total, due((Date.now() - start) / 1000)); while (sent < until) fire(sent++); if (sent >= warmed + total) clearInterval(timer); }, 5);
`;

/**
 * `rate` pages per second for `seconds` (at least 50, for the disruptions), after `warmup` seconds
 * of ramp (default 10), from a pod named `name`.
 */
export async function shopLoad(
  mesh: RealMesh,
  options: { rate: number; seconds: number; warmup?: number; name?: string },
): Promise<ShopLoadResult> {
  const { rate, seconds, warmup = 10 } = options;
  if (seconds < 50) throw new Error(`the load lasts ${seconds} s; the last disruption is at 45 s, so at least 50`);
  const name = options.name ?? "loadgen";
  const kubectl = (args: string[], input?: string) => mesh.kubectl(args, input);
  const pods = mesh.pods;
  const state = async () =>
    (JSON.parse(await kubectl(["get", "pod", name, "-n", "shop", "-o", "json"])) as PodJson).status.containerStatuses?.find(
      (c) => c.name === name,
    )?.state;

  await kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: "shop", labels: { app: "loadgen" } },
      spec: {
        restartPolicy: "Never",
        containers: [
          {
            name,
            image: mesh.shopImage,
            command: ["node", "-e", generator(rate, seconds, warmup)],
            resources: { limits: { memory: "256Mi" } },
          },
        ],
      },
    }),
  );
  await until("the load generator to start", async () => ((await state())?.running ? true : null), 120_000);
  // the measured load starts after the warm-up; the disruptions' seconds count from there
  const began = Date.now() + warmup * 1000;
  const second = () => Math.floor((Date.now() - began) / 1000);
  const at = (s: number) => new Promise((r) => setTimeout(r, Math.max(0, began + s * 1000 - Date.now())));
  const disruptions: Record<string, number> = {};
  const rss: Record<string, number> = {};
  const sample = setInterval(() => {
    void sidecarRss().then((now) => {
      for (const [pod, kib] of Object.entries(now)) rss[pod] = Math.max(rss[pod] ?? 0, Math.round(kib / 1024));
    });
  }, 5000);
  try {
    await at(10);
    disruptions["catalog rollout restart"] = second();
    await kubectl(["rollout", "restart", "deployment/catalog-v1", "deployment/catalog-v2", "-n", "shop"]);
    await at(25);
    disruptions["control-plane pod deleted"] = second();
    const replica = (await pods("weft-system"))[0]!.metadata.name;
    await kubectl(["delete", "pod", replica, "-n", "weft-system", "--wait=false"]);
    await at(35);
    disruptions["greeting filter config changed"] = second();
    await kubectl([
      "patch",
      "wasmfilter",
      "greeting",
      "-n",
      "shop",
      "--type",
      "merge",
      "-p",
      JSON.stringify({ spec: { config: { response: { set: [{ name: "x-shop-greeting", value: "hello again" }] } } } }),
    ]);
    await at(45);
    disruptions["inventory sidecar killed"] = second();
    // SIGKILL, as an OOM kill or a crash would: kubelet restarts the container.
    const target = (await sidecarProcesses()).find((p) => p.pod.startsWith("shop/inventory"));
    if (!target) throw new Error("no sidecar for shop/inventory*");
    process.kill(target.pid, "SIGKILL");
    await until("the load to finish", async () => ((await state())?.terminated ? true : null), (warmup + seconds + 60) * 1000);
  } finally {
    clearInterval(sample);
  }
  const logs = (await kubectl(["logs", name, "-n", "shop", "-c", name])).trim().split("\n");
  const result = JSON.parse(logs.at(-1)!) as Omit<ShopLoadResult, "began" | "disruptions" | "peakRssMiB" | "oomKilled">;
  const oomKilled = (await Promise.all(["shop", "weft-system"].map(pods)))
    .flat()
    .flatMap((p) =>
      [...(p.status.initContainerStatuses ?? []), ...(p.status.containerStatuses ?? [])]
        .filter((c) => c.lastState?.terminated?.reason === "OOMKilled")
        .map((c) => `${p.metadata.name}/${c.name}`),
    );
  return { ...result, began, disruptions, peakRssMiB: rss, oomKilled };
}
