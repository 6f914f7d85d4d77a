// `weft install`: the manifests for `kubectl apply -f -`, as multi-document YAML.
import process from "node:process";
import { parseArgs } from "node:util";
import { toYaml } from "../crd/yaml.ts";
import { installManifests } from "./manifests.ts";
import { isOutboundTraffic, OUTBOUND_TRAFFIC } from "../mesh/proxy-config.ts";

const USAGE = `usage: weft install [--namespace weft-system] [--image IMAGE] [--replicas N] [--insecure-registries HOST:PORT,...]
                    [--outbound-traffic passthrough|refuse]

Prints the CRDs, the control plane (Deployment, Service, RBAC) and the injector's webhook:
  weft install | kubectl apply -f -
`;

export function installCommand(argv: string[]): number {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        namespace: { type: "string" },
        image: { type: "string" },
        replicas: { type: "string" },
        "insecure-registries": { type: "string" },
        "outbound-traffic": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    process.stderr.write(`weft install: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const replicas = values.replicas === undefined ? undefined : Number(values.replicas);
  if (replicas !== undefined && (!Number.isInteger(replicas) || replicas < 1)) {
    process.stderr.write(`weft install: --replicas must be a whole number >= 1, not "${values.replicas}"\n`);
    return 2;
  }
  if (values.namespace !== undefined && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(values.namespace)) {
    process.stderr.write(`weft install: --namespace must be a namespace name (lower case letters, digits and '-'), not "${values.namespace}"\n`);
    return 2;
  }
  const outboundTraffic = values["outbound-traffic"];
  if (outboundTraffic !== undefined && !isOutboundTraffic(outboundTraffic)) {
    process.stderr.write(`weft install: --outbound-traffic must be ${OUTBOUND_TRAFFIC.join(" or ")}, not "${outboundTraffic}"\n`);
    return 2;
  }
  const manifests = installManifests({
    ...(outboundTraffic ? { outboundTraffic } : {}),
    ...(values.namespace ? { namespace: values.namespace } : {}),
    ...(values.image ? { image: values.image } : {}),
    ...(replicas !== undefined ? { replicas } : {}),
    ...(values["insecure-registries"] ? { insecureRegistries: values["insecure-registries"].split(",").filter(Boolean) } : {}),
  });
  process.stdout.write(manifests.map((m) => toYaml(m)).join("---\n"));
  return 0;
}
