// The app's kubelet probes, run by the sidecar (Istio's probe rewrite). The kubelet's HTTP or
// TCP probe of an app port would be redirected to the inbound listener, which under STRICT mTLS
// refuses the kubelet (it has no mesh certificate), and which accepts any TCP connection even when
// the app is down. So the injector points each probe at the sidecar's admin port,
// /app-health/CONTAINER/KIND, and hands the sidecar the original probes in WEFT_APP_PROBES; the
// sidecar checks the app on 127.0.0.1, which is never redirected, and answers as the app did.
import http from "node:http";
import https from "node:https";
import net from "node:net";
import * as v from "valibot";

export const APP_PROBES_ENV = "WEFT_APP_PROBES";
export const APP_HEALTH_PREFIX = "/app-health";
export const PROBE_KINDS = { livenessProbe: "livez", readinessProbe: "readyz", startupProbe: "startupz" } as const;

const Port = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535));

/** One probe as the sidecar runs it: the kubelet's httpGet or tcpSocket, its port resolved to a number. */
export const AppProbe = v.variant("kind", [
  v.object({
    kind: v.literal("http"),
    port: Port,
    path: v.string(),
    scheme: v.picklist(["HTTP", "HTTPS"]),
    headers: v.array(v.object({ name: v.string(), value: v.string() })),
    timeoutSeconds: v.pipe(v.number(), v.integer(), v.minValue(1)),
  }),
  v.object({ kind: v.literal("tcp"), port: Port, timeoutSeconds: v.pipe(v.number(), v.integer(), v.minValue(1)) }),
]);
export type AppProbe = v.InferOutput<typeof AppProbe>;

/** Probes by "CONTAINER/KIND" (KIND: livez, readyz, startupz). */
export const AppProbes = v.record(v.string(), AppProbe);
export type AppProbes = v.InferOutput<typeof AppProbes>;

/** WEFT_APP_PROBES's value, or why it cannot be used. */
export function parseAppProbes(text: string): AppProbes | string {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return `${APP_PROBES_ENV} is not JSON (${(e as Error).message}): inject the pod again`;
  }
  const result = v.safeParse(AppProbes, json);
  return result.success
    ? result.output
    : `${APP_PROBES_ENV}: ${result.issues.map((i) => `${v.getDotPath(i) ?? ""}: ${i.message}`).join("; ")}: inject the pod again`;
}

/** What the probe found: the status to answer the kubelet with, and why. */
export interface ProbeResult {
  status: number;
  detail: string;
}

/**
 * Runs one probe against the app on 127.0.0.1: the app's own status for HTTP (the kubelet counts
 * 200-399 as success), 200 or 503 for TCP.
 */
export function runAppProbe(probe: AppProbe): Promise<ProbeResult> {
  const timeoutMs = probe.timeoutSeconds * 1000;
  if (probe.kind === "tcp") {
    return new Promise((resolve) => {
      const socket = net.connect({ host: "127.0.0.1", port: probe.port });
      const done = (result: ProbeResult) => {
        clearTimeout(timer);
        socket.destroy();
        resolve(result);
      };
      // Our own timer, as for HTTP below: not every runtime's socket emits an idle "timeout".
      const timer = setTimeout(
        () => done({ status: 503, detail: `no connection to 127.0.0.1:${probe.port} within ${probe.timeoutSeconds} s` }),
        timeoutMs,
      );
      socket.once("connect", () => done({ status: 200, detail: `127.0.0.1:${probe.port} accepted a connection` }));
      socket.once("error", (e) => done({ status: 503, detail: `127.0.0.1:${probe.port}: ${e.message}` }));
    });
  }
  return new Promise((resolve) => {
    const client = probe.scheme === "HTTPS" ? https : http;
    const headers: Record<string, string> = { "user-agent": "kube-probe (weft)", accept: "*/*" };
    for (const h of probe.headers) headers[h.name.toLowerCase()] = h.value;
    // A timer of our own that decides by itself: Deno's node:http emits no idle "timeout", and
    // may still end a response it was told to destroy.
    let settled = false;
    const done = (result: ProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const timer = setTimeout(() => {
      done({ status: 503, detail: `GET ${probe.path} on 127.0.0.1:${probe.port}: no answer within ${probe.timeoutSeconds} s` });
      request.destroy();
    }, timeoutMs);
    // As the kubelet: a self-signed certificate is fine, only the answer counts.
    const request = client.request(
      { host: "127.0.0.1", port: probe.port, path: probe.path, method: "GET", headers, rejectUnauthorized: false },
      (response) => {
        response.resume();
        response.once("end", () =>
          done({
            status: response.statusCode ?? 503,
            detail: `the app answered ${response.statusCode} to GET ${probe.path} on port ${probe.port}`,
          }),
        );
      },
    );
    request.once("error", (e) => done({ status: 503, detail: `GET ${probe.path} on 127.0.0.1:${probe.port}: ${e.message}` }));
    request.end();
  });
}
