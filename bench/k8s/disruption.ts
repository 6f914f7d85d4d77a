// The shop on a real node under an open-loop load through the frontend, with the disruptions of
// test/support/shop-load.ts (a catalog rollout, a control-plane pod deleted, a filter config
// changed, inventory's sidecar killed). Prints what every request got, in which second, the
// sidecars' peak RSS, any OOMKilled container, and where the machine's CPU went in each second
// (cpu-sampler.ts). Root only; bounded by --seconds. A measurement at any rate;
// test/control/real-pods.test.ts asserts the rate the machine sustains (docs/k8s-test-env.md
// records both).
//   node bench/k8s/disruption.ts [--rate 30] [--seconds 70]
import { parseArgs } from "node:util";
import { applyShop, startRealMesh } from "../../test/support/real-mesh.ts";
import { shopLoad } from "../../test/support/shop-load.ts";
import { cpuTable, sampleCpu } from "./cpu-sampler.ts";

const { values } = parseArgs({ options: { rate: { type: "string", default: "30" }, seconds: { type: "string", default: "70" } } });

const mesh = await startRealMesh();
try {
  await mesh.install();
  await applyShop(mesh);
  const cpu = sampleCpu();
  const result = await shopLoad(mesh, { rate: Number(values.rate), seconds: Number(values.seconds) });
  const rows = await cpu.stop();
  const { ok, degraded, failed, dropped, warmup } = result;
  console.log(JSON.stringify({ ok, degraded, failed, dropped, warmup }));
  console.log(`disruptions (second of the load): ${JSON.stringify(result.disruptions)}`);
  console.log(`seconds with problems: ${JSON.stringify(result.perSecond)}`);
  console.log(`sidecar RSS (MiB, peak of samples every 5 s): ${JSON.stringify(result.peakRssMiB)}`);
  console.log(`OOMKilled: ${result.oomKilled.length ? result.oomKilled.join(", ") : "none"}`);
  console.log(`\nCPU by second of the load (cores; negative seconds are the warm-up):\n${cpuTable(rows, result.began)}`);
} finally {
  await mesh.stop();
}
