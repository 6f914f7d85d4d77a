// Everything `weft install | kubectl apply -f -` puts in a cluster: the CRDs, the control
// plane's namespace, identity and RBAC (only what it reads and writes), its Deployment and
// Service, and the injector's webhook configuration (its caBundle is written by the control
// plane when it starts, from its own CA).
import { customResourceDefinition, KINDS } from "../crd/crds.ts";
import { GROUP } from "../resources/meta.ts";
import { injectorWebhookConfiguration } from "../inject/manifest.ts";
import { WEFT_VERSION } from "../inject/settings.ts";
import { DEFAULT_SETTINGS } from "../mesh/proxy-config.ts";
import type { OutboundTraffic } from "../mesh/outbound-traffic.ts";
import { API_PORT, CONTROL_NAME } from "./names.ts";

/**
 * The control plane holds the mesh CA's key: `kill -USR1` must not open Node's inspector beside
 * it, and this replaces the image's NODE_OPTIONS, which says so for the sidecar (images.ts).
 * Node's young generation grows to 16 MB semi-spaces by default; a configuration push to
 * thousands of sidecars fills it with short-lived buffers. 2 MB semi-spaces measured 180 MB
 * idle and 226 MB at the peak of a push to 2,000 sidecars (against 239 and 331), with pushes
 * no slower (bench/control/scale.ts, which runs the control plane with the same options).
 */
export const CONTROL_NODE_OPTIONS = "--disable-sigusr1 --max-semi-space-size=2";

export interface InstallOptions {
  namespace?: string;
  image?: string;
  replicas?: number;
  /** Registries spoken to over plain HTTP (host:port). */
  insecureRegistries?: string[];
  /** What apps' requests for hosts outside the mesh get (default ALLOW_ANY). */
  outboundTraffic?: OutboundTraffic;
}

const labels = { "app.kubernetes.io/name": CONTROL_NAME, "app.kubernetes.io/part-of": "weft" };

export function installManifests(options: InstallOptions = {}): Record<string, unknown>[] {
  const namespace = options.namespace ?? "weft-system";
  const image = options.image ?? `ghcr.io/weft-dev/weft:${WEFT_VERSION}`;
  const meta = (name: string, namespaced = true) => ({ name, ...(namespaced ? { namespace } : {}), labels });
  const watch = ["get", "list", "watch"];
  return [
    ...KINDS.map((k) => customResourceDefinition(k) as Record<string, unknown>),
    { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace, labels: { ...labels, "weft.dev/inject": "disabled" } } },
    { apiVersion: "v1", kind: "ServiceAccount", metadata: meta(CONTROL_NAME) },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: meta(CONTROL_NAME, false),
      rules: [
        { apiGroups: [""], resources: ["services", "pods", "namespaces"], verbs: watch },
        { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: watch },
        // The Service ranges, which weft-init makes go through the sidecar (kubernetes/service-cidrs.ts).
        { apiGroups: ["networking.k8s.io"], resources: ["servicecidrs"], verbs: ["list"] },
        { apiGroups: [GROUP], resources: KINDS.map((k) => k.plural), verbs: watch },
        { apiGroups: [GROUP], resources: KINDS.map((k) => `${k.plural}/status`), verbs: ["get", "patch", "update"] },
        { apiGroups: ["gateway.networking.k8s.io"], resources: ["httproutes"], verbs: watch },
        // status.parents, weft's entries only (control/mesh/route-status.ts); never the spec.
        { apiGroups: ["gateway.networking.k8s.io"], resources: ["httproutes/status"], verbs: ["get", "patch", "update"] },
        // The mesh's root, in every namespace labelled for injection (weft-ca-root), and the
        // report of what each sidecar runs (weft-proxies, read by weft status).
        { apiGroups: [""], resources: ["configmaps"], verbs: ["get", "create", "update", "patch"] },
        // Pull secrets named by WasmFilters, read one at a time where they are named.
        { apiGroups: [""], resources: ["secrets"], verbs: ["get"] },
        // Proxies and certificate requests authenticate with ServiceAccount tokens.
        { apiGroups: ["authentication.k8s.io"], resources: ["tokenreviews"], verbs: ["create"] },
        // Its own webhook only: the control plane writes the caBundle of its CA.
        {
          apiGroups: ["admissionregistration.k8s.io"],
          resources: ["mutatingwebhookconfigurations"],
          resourceNames: ["weft-sidecar-injector"],
          verbs: ["get", "patch"],
        },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: meta(CONTROL_NAME, false),
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: CONTROL_NAME },
      subjects: [{ kind: "ServiceAccount", name: CONTROL_NAME, namespace }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: meta(CONTROL_NAME),
      rules: [
        // The CA's root lives in a Secret of the control plane's namespace.
        { apiGroups: [""], resources: ["secrets"], verbs: ["create", "update"] },
        // One replica leads (writes status); the others serve proxies.
        { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: meta(CONTROL_NAME),
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: CONTROL_NAME },
      subjects: [{ kind: "ServiceAccount", name: CONTROL_NAME, namespace }],
    },
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: meta(CONTROL_NAME),
      spec: {
        replicas: options.replicas ?? 2,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: CONTROL_NAME,
            securityContext: { runAsNonRoot: true, runAsUser: 1337, seccompProfile: { type: "RuntimeDefault" } },
            containers: [
              {
                name: "control",
                image,
                command: ["node", "/opt/weft/weft.mjs", "control"],
                args: [
                  `--namespace=${namespace}`,
                  `--port=${API_PORT}`,
                  `--image=${image}`,
                  `--insecure-registries=${(options.insecureRegistries ?? []).join(",")}`,
                  `--outbound-traffic=${options.outboundTraffic ?? DEFAULT_SETTINGS.outboundTraffic}`,
                ],
                env: [
                  { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
                  { name: "NODE_OPTIONS", value: CONTROL_NODE_OPTIONS },
                ],
                ports: [{ name: "https", containerPort: API_PORT }],
                readinessProbe: { httpGet: { path: "/readyz", port: API_PORT, scheme: "HTTPS" } },
                resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "512Mi" } },
                securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } },
              },
            ],
          },
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: meta(CONTROL_NAME),
      // A sidecar's configuration stream and its acknowledgements are separate requests: each pod's
      // must reach the same replica, which holds its stream (another answers an ack with 409 and
      // status never learns the sidecar runs the version). ClientIP affinity keeps a pod on one
      // replica; when that replica goes, the stream and the acks move together.
      spec: { selector: labels, sessionAffinity: "ClientIP", ports: [{ name: "https", port: API_PORT, targetPort: API_PORT }] },
    },
    injectorWebhookConfiguration({
      controlPlaneNamespace: namespace,
      target: { service: { namespace, name: CONTROL_NAME, port: API_PORT } },
    }),
  ];
}
