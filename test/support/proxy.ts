// Starts a real sidecar in the test's process (the same code `weft proxy` runs) and builds
// configurations for it.
import { parseConfig } from "../../proxy/config/validate.ts";
import type { ProxyConfig, ProxyConfigInput } from "../../proxy/config/schema.ts";
import { Sidecar } from "../../proxy/sidecar/sidecar.ts";
import { selectRuntime } from "../../proxy/runtime/select.ts";
import { createLogger, type Level } from "../../shared/log.ts";
import { createTelemetry } from "../../proxy/telemetry/telemetry.ts";

export interface RunningProxy {
  sidecar: Sidecar;
  /** Port of the first listener with this direction. */
  outbound: number;
  inbound: number;
  admin: number;
  accessLog: string[];
  stop(): Promise<void>;
}

// Errors only, unless WEFT_LOG_LEVEL asks for more (CONTRIBUTING.md, "A proxy's log").
const log = createLogger({}, (process.env.WEFT_LOG_LEVEL as Level | undefined) ?? "error");

export async function startProxy(input: ProxyConfigInput): Promise<RunningProxy> {
  const config: ProxyConfig = parseConfig({ admin: { port: 0 }, accessLog: "off", ...input }, "test");
  const accessLog: string[] = [];
  const telemetry = createTelemetry(config.node, config.accessLog, {
    accessLogSink: (chunk: string) => void accessLog.push(...chunk.trimEnd().split("\n")),
  });
  const sidecar = await Sidecar.start(config, selectRuntime(), log, telemetry);
  const portOf = (direction: "Inbound" | "Outbound") => {
    const l = sidecar.config.listeners.find((x) => x.direction === direction);
    return l ? sidecar.listenerPort(l.name) : 0;
  };
  return {
    sidecar,
    outbound: portOf("Outbound"),
    inbound: portOf("Inbound"),
    admin: sidecar.adminPort,
    accessLog,
    stop: () => sidecar.stop(),
  };
}

/** One outbound listener on an ephemeral port whose catch-all route goes to `cluster`. */
export function simpleConfig(
  endpoints: number[],
  extra: Partial<ProxyConfigInput> = {},
  route: Record<string, unknown> = {},
): ProxyConfigInput {
  return {
    version: "test-1",
    node: { workload: "client", namespace: "test" },
    listeners: [
      {
        name: "outbound",
        direction: "Outbound",
        address: "127.0.0.1",
        port: 0,
        virtualHosts: [{ name: "all", domains: ["*"], routes: [{ backends: [{ cluster: "app" }], ...route }] }],
      },
    ],
    clusters: [
      {
        name: "app",
        service: "app.test.svc.cluster.local",
        namespace: "test",
        endpoints: endpoints.map((port) => ({ address: "127.0.0.1", port })),
      },
    ],
    ...extra,
  } as ProxyConfigInput;
}
