// `weft control`: the control plane, in a cluster or (--local) without one.
import { lazy } from "../cli/command.ts";
import { cidrs, flag, list, path, port, text, type Values } from "../cli/options.ts";
import { API_PORT, DASHBOARD_PORT } from "../../control/install/names.ts";

export const usage = `usage: weft control [--kubeconfig FILE] [--namespace weft-system] [--address 0.0.0.0] [--port ${API_PORT}]
                    [--serving-hosts NAME|IP,...] [--plain-http] [--trust-domain cluster.local]
                    [--insecure-registries HOST:PORT,...] [--no-leader-election] [--image IMAGE]
                    [--outbound-traffic ALLOW_ANY|REGISTRY_ONLY] [--dashboard-port ${DASHBOARD_PORT}] [--marketplace DIR]
                    [--otlp-endpoint URL] [--service-cidr CIDR,...]
       weft control --local DIR [--port ${API_PORT}] [--base-port 16000] [--trust-domain cluster.local]
                    [--outbound-traffic ALLOW_ANY|REGISTRY_ONLY]

Runs the control plane (docs/control-plane.md): the configuration API for sidecars, the
CA that signs their certificates (docs/certificates.md) and the injection webhook
(docs/injection.md). Its HTTPS certificate comes from its own CA, for the weft-control
Service's names, 127.0.0.1 and --serving-hosts. Without --kubeconfig it uses
$KUBECONFIG, ~/.kube/config, or the pod's in-cluster credentials. --image is the Node image
the injector gives pods (docs/images.md; default ghcr.io/weft-dev/weft:<version>).
--outbound-traffic is what apps' requests for hosts outside the mesh get: ALLOW_ANY (default)
passes them through, REGISTRY_ONLY refuses those no Service of type ExternalName declares
(docs/egress.md).
--otlp-endpoint (or $WEFT_OTLP_ENDPOINT) is the OTLP/HTTP receiver the injected sidecars export
their spans to, as their OTEL_EXPORTER_OTLP_ENDPOINT (docs/observability.md; default: none).
--service-cidr is the cluster's IPv4 Service range(s), which injected pods' weft-init sends
through the sidecar (docs/tcp.md; default: read from the cluster's ServiceCIDR objects).
The dashboard is served on 127.0.0.1:--dashboard-port only (0: not at all); weft dashboard
reaches it with kubectl port-forward (docs/dashboard.md).
--marketplace is the folder marketplace://NAME@VERSION filters come from: its index.json and
the modules NAME/VERSION.wasm served without any registry (default: the one shipped with weft,
/opt/plugins in the image; a release it has no module of is pulled from its OCI artifact).

With --local DIR it runs without Kubernetes (docs/local-mode.md): the resources are the YAML
files in DIR, watched for changes; it serves plain HTTP on 127.0.0.1 and keeps its CA in
DIR/.weft. weft up runs it together with the workloads and their sidecars.

SIGTERM or Ctrl-C stops it, then it exits 0.
`;

export const options = {
  kubeconfig: path(),
  namespace: text({ env: "POD_NAMESPACE", default: "weft-system" }),
  address: text({ default: "0.0.0.0" }),
  port: port({ default: API_PORT }),
  "serving-hosts": list(),
  "service-cidr": cidrs(),
  "plain-http": flag(),
  "trust-domain": text(),
  "insecure-registries": list(),
  "no-leader-election": flag(),
  image: text(),
  "outbound-traffic": text(),
  "dashboard-port": port({ default: DASHBOARD_PORT }),
  marketplace: path(),
  "otlp-endpoint": text({ env: "WEFT_OTLP_ENDPOINT" }),
  local: path(),
  "base-port": port({ min: 1 }),
};

export const run = lazy<Values<typeof options>>(async () => (await import("../../control/main.ts")).startControl);
