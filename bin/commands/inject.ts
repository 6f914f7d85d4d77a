// `weft inject -f FILE|-`: manual injection of Kubernetes YAML.
import { lazy } from "../cli/command.ts";
import { path, text, type Values } from "../cli/options.ts";

export const usage = `usage: weft inject -f FILE|- [--image IMAGE] [--control-plane URL] [--trust-domain DOMAIN]

Adds the weft sidecar to every Pod and pod template in FILE (- reads stdin) and writes the
result to stdout: weft inject -f deploy.yaml | kubectl apply -f -
Pods annotated weft.dev/inject: "false", already injected, or with hostNetwork are left as they
are (said on stderr). See docs/injection.md.
`;

export const options = {
  filename: path({ short: "f" }),
  image: text(),
  "control-plane": text(),
  "trust-domain": text(),
};

export const run = lazy<Values<typeof options>>(async () => (await import("../../control/inject/cli.ts")).injectFile);
