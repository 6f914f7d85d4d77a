// `weft up [DIR]`: the whole mesh on this machine (docs/local-mode.md).
import { lazy } from "../cli/command.ts";
import { choice, path, port, text, type Values } from "../cli/options.ts";
import { RUNTIME_NAMES } from "../../proxy/runtime/current.ts";

export const usage = `usage: weft up [DIR] [--port 15012] [--base-port 16000] [--runtime node|deno|bun] [--state DIR/.weft]
               [--outbound-traffic ALLOW_ANY|REGISTRY_ONLY]

Runs the mesh described by the YAML in DIR on this machine (docs/local-mode.md): the control
plane in local mode, a sidecar per LocalWorkload replica and the workload itself. Without DIR,
the shop demo in examples/shop. Logs go to STATE/logs; Ctrl-C stops everything.
--outbound-traffic is what the workloads' requests for hosts outside the mesh get: ALLOW_ANY
(default) passes them through, REGISTRY_ONLY refuses those no Service of type ExternalName
declares (docs/egress.md).
`;

export const positionals = ["[DIR]"];

export const options = {
  port: port({ min: 1 }),
  "base-port": port({ min: 1 }),
  runtime: choice(RUNTIME_NAMES, { default: "node" }),
  state: path(),
  "outbound-traffic": text(),
};

export const run = lazy<Values<typeof options>>(async () => (await import("../../control/local/up.ts")).up);
