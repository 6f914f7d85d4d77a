// `weft inject -f FILE|-`: manual injection of Kubernetes YAML.
import { lazy } from "../cli/command.ts";
import { cidrs, path, text, type Values } from "../cli/options.ts";

export const usage = `usage: weft inject -f FILE|- [--image IMAGE] [--control-plane URL] [--trust-domain DOMAIN]
                   [--service-cidr CIDR,...]

Adds the weft sidecar to every Pod and pod template in FILE (- reads stdin) and writes the
result to stdout: weft inject -f deploy.yaml | kubectl apply -f -
Pods annotated weft.dev/inject: "false", already injected, or with hostNetwork are left as they
are (said on stderr). --service-cidr is the cluster's Service range(s), whose TCP the pods'
weft-init sends through their sidecars (docs/tcp.md), as the control plane's injector does. See
docs/injection.md.
`;

export const options = {
  filename: path({ short: "f" }),
  image: text(),
  "control-plane": text(),
  "trust-domain": text(),
  "service-cidr": cidrs(),
};

export const run = lazy<Values<typeof options>>(async () => (await import("../../control/inject/cli.ts")).injectFile);
