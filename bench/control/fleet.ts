// Simulated sidecars for the control plane scale benchmark: N configuration streams, each
// acknowledging what it is sent, as proxy/control/client.ts does, without the proxy behind
// it. Runs as its own process so that its CPU and memory are not the control plane's.
//   node bench/control/fleet.ts URL TOKEN_FILE NAMESPACE POD_PREFIX COUNT MARKER_PATTERN
// Prints JSON lines: {"connected":N} once all streams are open, then
// {"pod":..., "version":..., "marker":..., "at":ms} for every configuration received.
import http from "node:http";
import { readFileSync } from "node:fs";
import process from "node:process";

const [base, tokenFile, namespace, prefix, countText, markerPattern] = process.argv.slice(2);
const count = Number(countText);
const token = readFileSync(tokenFile!, "utf8").trim();
const marker = new RegExp(markerPattern!);
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
const say = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);

function ack(pod: string, version: string): void {
  const body = JSON.stringify({ namespace, pod, version, accepted: true });
  const req = http.request(
    `${base}/v1/proxies/ack`,
    {
      method: "POST",
      agent,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "content-length": Buffer.byteLength(body) },
    },
    (res) => res.resume(),
  );
  req.on("error", (e) => say({ pod, error: `ack: ${e.message}` }));
  req.end(body);
}

let connected = 0;
const opened = new Set<number>();
function open(i: number): void {
  const pod = `${prefix}${i}`;
  const req = http.get(
    `${base}/v1/proxies/config?namespace=${namespace}&pod=${pod}`,
    { headers: { authorization: `Bearer ${token}` } },
    (res) => {
      if (res.statusCode !== 200) {
        say({ pod, error: `HTTP ${res.statusCode}` });
        res.resume();
        retry(i);
        return;
      }
      if (!opened.has(i)) {
        opened.add(i);
        if (++connected === count) say({ connected });
      }
      res.setEncoding("utf8");
      let buffer = "";
      res.on("data", (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block
            .split("\n")
            .find((l) => l.startsWith("data: "))
            ?.slice(6);
          if (!block.startsWith("event: config") || !data) continue;
          const { version } = JSON.parse(data) as { version: string };
          say({ pod, version, marker: marker.exec(data)?.[1] ?? null, at: Date.now() });
          ack(pod, version);
        }
      });
    },
  );
  req.on("error", (e) => {
    say({ pod, error: e.message });
    retry(i);
  });
}

// As a sidecar does: back off with jitter and connect again.
function retry(i: number): void {
  setTimeout(() => open(i), 250 + Math.random() * 500);
}

// Connect in batches, as a rollout would, rather than all in one instant.
let next = 0;
const batch = () => {
  for (let n = 0; n < 100 && next < count; n++) open(next++);
  if (next < count) setTimeout(batch, 20);
};
batch();
