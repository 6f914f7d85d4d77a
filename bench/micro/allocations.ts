// Micro-benchmark: what one request allocates in the sidecar, by function, with V8's sampling
// heap profiler counting objects the young generation already collected (a plain heap profile
// shows only what is still alive, which for a proxy is almost nothing per request). A sidecar
// runs in this process; wrk (bench/setup.sh) sends plain HTTP/1.1 through it to an upstream in a
// child process, so the upstream's allocations are not counted. Node only (node:inspector):
//   node bench/micro/allocations.ts [--requests 20000] [--top 25]
import { spawn } from "node:child_process";
import { Session } from "node:inspector/promises";
import { parseArgs } from "node:util";
import { simpleConfig, startProxy } from "../../test/support/proxy.ts";

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

const { values } = parseArgs({ options: { requests: { type: "string", default: "20000" }, top: { type: "string", default: "25" } } });
const requests = Number(values.requests);

/** An upstream in a child process that answers every request 200 with 100 bytes. */
async function startUpstream(): Promise<{ port: number; stop: () => void }> {
  const code = `const s=require("node:http").createServer((q,r)=>{q.resume();q.on("end",()=>r.end("x".repeat(100)))});s.listen(0,"127.0.0.1",()=>console.log(s.address().port))`;
  const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve) => child.stdout!.once("data", (d: Buffer) => resolve(Number(String(d).trim()))));
  return { port, stop: () => child.kill() };
}

/** wrk with 16 keep-alive connections for `seconds`. */
function load(port: number, seconds: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const wrk = spawn("wrk", ["-t1", "-c16", `-d${seconds}s`, `http://127.0.0.1:${port}/`], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    wrk.stdout!.on("data", (d: Buffer) => (out += d));
    wrk.on("error", (e) => reject(new Error(`cannot run wrk (${e.message}): run bash bench/setup.sh`)));
    wrk.on("exit", () => resolve(out));
  });
}

const upstream = await startUpstream();
const proxy = await startProxy(simpleConfig([upstream.port]));
await load(proxy.outbound, 1); // warm-up: JIT and pools
const session = new Session();
session.connect();
await session.post("HeapProfiler.startSampling", {
  samplingInterval: 512,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
});
const seconds = Math.max(1, Math.round(requests / 3000));
const wrkOutput = await load(proxy.outbound, seconds);
const { profile } = (await session.post("HeapProfiler.stopSampling")) as { profile: { head: ProfileNode } };
session.disconnect();
await proxy.stop();
upstream.stop();

const bySite = new Map<string, number>();
let total = 0;
const walk = (n: ProfileNode) => {
  const { functionName, url, lineNumber } = n.callFrame;
  const site = `${functionName || "(anonymous)"} ${url.replace(/^.*?\/(proxy|shared|node_modules)\//, "$1/")}:${lineNumber + 1}`;
  bySite.set(site, (bySite.get(site) ?? 0) + n.selfSize);
  total += n.selfSize;
  for (const c of n.children) walk(c);
};
walk(profile.head);
const served = Number(/(\d+) requests in/.exec(wrkOutput)?.[1] ?? Number.NaN);
console.log(`${served} requests (${/Requests\/sec:\s*([\d.]+)/.exec(wrkOutput)?.[1] ?? "?"} req/s, sampled every 512 bytes)`);
console.log(`${(total / served).toFixed(0)} bytes allocated per request, by where (top ${values.top}):`);
for (const [site, bytes] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top)))
  console.log(`${(bytes / served).toFixed(0).padStart(8)} B  ${((100 * bytes) / total).toFixed(1).padStart(5)}%  ${site}`);
