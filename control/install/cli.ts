// `weft install` (its command line: bin/commands/install.ts): the manifests for
// `kubectl apply -f -`, as multi-document YAML.
import process from "node:process";
import { UsageError } from "../../shared/command.ts";
import { toYaml } from "../crd/yaml.ts";
import { installManifests } from "./manifests.ts";
import { parseOutboundTraffic } from "../mesh/outbound-traffic.ts";

/** What `weft install`'s flags give (bin/commands/install.ts declares them, and checks at compile time that they fit this). */
export interface InstallValues {
  namespace?: string;
  image?: string;
  replicas?: string;
  "insecure-registries": string[];
  "outbound-traffic"?: string;
}

export function printInstall(values: InstallValues): number {
  const replicas = values.replicas === undefined ? undefined : Number(values.replicas);
  if (replicas !== undefined && (!Number.isInteger(replicas) || replicas < 1))
    throw new UsageError(`--replicas must be a whole number >= 1, not "${values.replicas}"`);
  if (values.namespace !== undefined && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(values.namespace)) {
    throw new UsageError(`--namespace must be a namespace name (lower case letters, digits and '-'), not "${values.namespace}"`);
  }
  const given = values["outbound-traffic"];
  const outboundTraffic = given === undefined ? undefined : parseOutboundTraffic(given, "--outbound-traffic");
  const manifests = installManifests({
    ...(outboundTraffic ? { outboundTraffic } : {}),
    ...(values.namespace ? { namespace: values.namespace } : {}),
    ...(values.image ? { image: values.image } : {}),
    ...(replicas !== undefined ? { replicas } : {}),
    ...(values["insecure-registries"].length > 0 ? { insecureRegistries: values["insecure-registries"] } : {}),
  });
  process.stdout.write(manifests.map((m) => toYaml(m)).join("---\n"));
  return 0;
}
