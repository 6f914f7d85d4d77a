// The Helm chart in deploy/helm/weft, generated from the same objects as `weft install`, so
// the two cannot drift: the objects are made with placeholder values, written as YAML, and
// the placeholders turned into the chart's template expressions. CRDs go in the chart's
// crds/ folder (Helm installs them before anything else and never deletes them); the
// namespace is the release's (helm install --create-namespace).
import pkg from "../../package.json" with { type: "json" };
import { toYaml } from "../crd/yaml.ts";
import { installManifests } from "./manifests.ts";
import { DEFAULT_SETTINGS } from "../mesh/proxy-config.ts";
import type { OutboundTraffic } from "../mesh/outbound-traffic.ts";

export const CHART_DIR = "deploy/helm/weft";
const HEADER = "# Generated from control/install/manifests.ts by control/crd/generate.ts: do not edit.\n";

const PLACEHOLDERS: [string | RegExp, string][] = [
  ["__NAMESPACE__", "{{ .Release.Namespace }}"],
  ["__IMAGE__", "{{ .Values.image }}"],
  [/\b987654321\b/, "{{ .Values.replicas }}"],
  ["__INSECURE__", '{{ join "," .Values.insecureRegistries }}'],
  ["__OUTBOUND_TRAFFIC__", "{{ .Values.outboundTraffic }}"],
];

export function helmChart(): Map<string, string> {
  const objects = installManifests({
    namespace: "__NAMESPACE__",
    image: "__IMAGE__",
    replicas: 987654321,
    insecureRegistries: ["__INSECURE__"],
    outboundTraffic: "__OUTBOUND_TRAFFIC__" as OutboundTraffic,
  });
  const templated = (o: Record<string, unknown>) =>
    PLACEHOLDERS.reduce((text, [from, to]) => text.replaceAll(from instanceof RegExp ? new RegExp(from, "g") : from, to), toYaml(o));
  const crds = objects.filter((o) => o.kind === "CustomResourceDefinition");
  const rest = objects.filter((o) => o.kind !== "CustomResourceDefinition" && o.kind !== "Namespace");
  const files = new Map<string, string>();
  files.set(
    `${CHART_DIR}/Chart.yaml`,
    HEADER +
      toYaml({
        apiVersion: "v2",
        name: "weft",
        description: pkg.description,
        type: "application",
        version: pkg.version,
        appVersion: pkg.version,
      }),
  );
  files.set(
    `${CHART_DIR}/values.yaml`,
    HEADER +
      toYaml({
        image: `ghcr.io/weft-dev/weft:${pkg.version}`,
        replicas: 2,
        insecureRegistries: [],
        outboundTraffic: DEFAULT_SETTINGS.outboundTraffic,
      }),
  );
  for (const crd of crds) files.set(`${CHART_DIR}/crds/${(crd.metadata as { name: string }).name}.yaml`, HEADER + toYaml(crd));
  files.set(`${CHART_DIR}/templates/weft.yaml`, HEADER + rest.map(templated).join("---\n"));
  return files;
}
