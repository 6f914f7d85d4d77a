// A real Prometheus for the tests: Debian's `prometheus` as a process on 127.0.0.1, with its own
// storage folder and the scrape jobs a test gives it, and its HTTP API to query (the API Grafana
// uses, so a query answers here as it would on a dashboard).
import { access, constants, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePorts } from "../k8s/cluster.ts";
import { startServerProcess } from "./server-process.ts";

const BINARY = "/usr/bin/prometheus";

export interface PromSample {
  metric: Record<string, string>;
  value: number;
}

export interface TestPrometheus {
  url: string;
  /** An instant query (`time` in ms since the epoch; default now): the vector it answers. */
  query(expr: string, time?: number): Promise<PromSample[]>;
  /** The active targets' scrape URLs and health ("up", "down", "unknown"). */
  targets(): Promise<{ scrapeUrl: string; health: string; lastError: string; labels: Record<string, string> }[]>;
  /** What Prometheus printed, for a test's failure message. */
  output(): string;
  stop(): Promise<void>;
}

/** Throws, saying how to install it, when Debian's Prometheus is not there. */
export async function needPrometheus(): Promise<void> {
  await access(BINARY, constants.X_OK).catch(() => {
    throw new Error(
      `${BINARY} is missing: the telemetry backends' suite scrapes the sidecars with a real Prometheus; install it with "apt-get install -y prometheus" (npm test does, as root: test/setup.ts)`,
    );
  });
}

/**
 * Starts Prometheus with `scrapeConfigs` (its scrape_configs: list, as objects) and a global
 * scrape interval of `intervalSeconds`; `files` are written beside the configuration first (file_sd
 * target lists: a job names them by their file name, relative to the configuration's folder).
 */
export async function startPrometheus(options: {
  scrapeConfigs: object[];
  intervalSeconds?: number;
  files?: Record<string, string>;
}): Promise<TestPrometheus> {
  await needPrometheus();
  const dir = await mkdtemp(path.join(tmpdir(), "weft-prometheus-"));
  const interval = `${options.intervalSeconds ?? 1}s`;
  // JSON is YAML: no YAML writer needed.
  const config = { global: { scrape_interval: interval, evaluation_interval: interval }, scrape_configs: options.scrapeConfigs };
  await writeFile(path.join(dir, "prometheus.yml"), JSON.stringify(config, null, 2));
  for (const [name, text] of Object.entries(options.files ?? {})) await writeFile(path.join(dir, name), text);
  const [port] = await freePorts(1);
  const url = `http://127.0.0.1:${port}`;
  const server = await startServerProcess(
    "prometheus",
    BINARY,
    [
      `--config.file=${path.join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${path.join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    {
      cwd: dir,
      ready: () =>
        fetch(`${url}/-/ready`).then(
          (r) => r.ok,
          () => false,
        ),
      readyWithinMs: 30_000,
    },
  ).catch(async (e: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw e;
  });

  const api = async <T>(pathAndQuery: string): Promise<T> => {
    const res = await fetch(`${url}${pathAndQuery}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== "success") throw new Error(`Prometheus ${pathAndQuery}: ${body.error ?? res.status}`);
    return body.data;
  };

  return {
    url,
    output: server.output,
    async query(expr, time) {
      const at = time === undefined ? "" : `&time=${(time / 1000).toFixed(3)}`;
      const data = await api<{ resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }>(
        `/api/v1/query?query=${encodeURIComponent(expr)}${at}`,
      );
      if (data.resultType !== "vector") throw new Error(`${expr}: expected a vector, got a ${data.resultType}`);
      return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
    async targets() {
      const data = await api<{ activeTargets: { scrapeUrl: string; health: string; lastError: string; labels: Record<string, string> }[] }>(
        "/api/v1/targets?state=active",
      );
      return data.activeTargets;
    },
    async stop() {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
