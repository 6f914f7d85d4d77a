// `weft status`: what the sidecars run and what the control plane wrote in each resource's status.
import { lazy } from "../cli/command.ts";
import type { Option, Values } from "../cli/options.ts";
import { flag, path, text } from "../cli/options.ts";

export const usage = `usage: weft status [--kubeconfig FILE] [--namespace weft-system] [-o wide|json]

Shows every sidecar connected to the control plane (its configuration version, whether it
runs it, the WasmFilters in it), then every WasmFilter, TrafficPolicy, AccessPolicy and
HTTPRoute with its status; PROBLEM is the first condition that is not True.

Lines fit the terminal (120 columns when the output is not one): long messages are cut
with "…".
  -o wide    print every message whole, however long the line
  -o json    everything, with each resource's whole status (--json means the same)
`;

const output: Option<"wide" | "json"> = {
  type: "string",
  short: "o",
  parse: (t) => {
    if (t !== "wide" && t !== "json") throw new Error(`-o ${t}: use -o wide or -o json`);
    return t;
  },
};

export const options = {
  kubeconfig: path(),
  namespace: text({ default: "weft-system" }),
  output,
  json: flag(),
};

export const run = lazy<Values<typeof options>>(async () => (await import("../../control/status/cli.ts")).showStatus);
