// `weft proxy --config FILE`: runs a sidecar from a configuration file, reloads it when the
// file changes or on SIGHUP, and drains when stopped (the CLI stops it on SIGTERM/SIGINT).
import { readFile, stat } from "node:fs/promises";
import process from "node:process";
import type { Running } from "../shared/command.ts";
import { parseConfigText } from "./config/validate.ts";
import { selectRuntime } from "./runtime/select.ts";
import { createLogger } from "../shared/log.ts";
import { Sidecar } from "./sidecar/sidecar.ts";
import { createTelemetry } from "./telemetry/telemetry.ts";

const POLL_MS = 1000;

export async function startProxy(configPath: string): Promise<Running> {
  const log = createLogger({ component: "proxy" });
  const load = async () => parseConfigText(await readFile(configPath, "utf8"), configPath);
  const config = await load();
  const telemetry = createTelemetry(config.node, config.accessLog);
  const sidecar = await Sidecar.start(config, selectRuntime(), log, telemetry);

  // Polling the file's mtime works the same on every runtime and on every file system
  // (ConfigMap volumes swap a symlink, which file watchers often miss).
  let lastModified = (await stat(configPath)).mtimeMs;
  const reload = async (reason: string) => {
    try {
      const next = await load();
      await sidecar.apply(next);
      log.info("configuration reloaded", { reason, version: next.version });
    } catch (e) {
      log.error("configuration rejected: keeping the last good one", { reason, error: (e as Error).message, kept: sidecar.config.version });
    }
  };
  const poller = setInterval(async () => {
    try {
      const modified = (await stat(configPath)).mtimeMs;
      if (modified === lastModified) return;
      lastModified = modified;
      await reload("file changed");
    } catch (e) {
      log.warn("cannot read the configuration file", { path: configPath, error: (e as Error).message });
    }
  }, POLL_MS);
  process.on("SIGHUP", () => void reload("SIGHUP"));
  return {
    get stopDeadlineMs() {
      return sidecar.stopDeadlineMs;
    },
    async stop(signal) {
      clearInterval(poller);
      log.info("shutting down", { signal });
      await sidecar.drain();
      log.info("stopped", { signal });
    },
  };
}
