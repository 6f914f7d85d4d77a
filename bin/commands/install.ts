// `weft install`: the manifests that install weft in a cluster.
import { lazy } from "../cli/command.ts";
import { list, text, type Values } from "../cli/options.ts";

export const usage = `usage: weft install [--namespace weft-system] [--image IMAGE] [--replicas N] [--insecure-registries HOST:PORT,...]
                    [--outbound-traffic ALLOW_ANY|REGISTRY_ONLY]

Prints the CRDs, the control plane (Deployment, Service, RBAC) and the injector's webhook:
  weft install | kubectl apply -f -
--outbound-traffic is what apps' requests for hosts outside the mesh get: ALLOW_ANY (default)
passes them through, REGISTRY_ONLY refuses those no Service of type ExternalName declares
(docs/egress.md).
`;

export const options = {
  namespace: text(),
  image: text(),
  replicas: text(),
  "insecure-registries": list(),
  "outbound-traffic": text(),
};

export const run = lazy<Values<typeof options>>(async () => (await import("../../control/install/cli.ts")).printInstall);
