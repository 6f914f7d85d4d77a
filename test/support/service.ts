// Kubernetes objects as YAML, for suites and benchmarks that run the control plane against a
// real API server without a kube-controller-manager or kubelet: pods are only their specs and
// the endpoints are written by hand. EndpointSlices refuse loopback addresses, so `address` is
// one of this machine's others.

export interface ServiceSpec {
  namespace: string;
  name: string;
  /** The Service's targetPort (the app's port). */
  targetPort: number;
  address: string;
  /** The port the endpoint is reached on, when not targetPort (a sidecar's inbound listener, where iptables would redirect). */
  endpointPort?: number;
  /** The pod behind the endpoint, so the control plane knows whether it has a sidecar. */
  pod?: string;
  clusterIP?: string;
}

export function serviceYaml(s: ServiceSpec): string {
  const targetRef = s.pod ? `, targetRef: { kind: Pod, name: ${s.pod}, namespace: ${s.namespace} }` : "";
  return `apiVersion: v1
kind: Service
metadata: { name: ${s.name}, namespace: ${s.namespace} }
spec:
${s.clusterIP ? `  clusterIP: ${s.clusterIP}\n` : ""}  ports: [{ name: http, port: 80, targetPort: ${s.targetPort} }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${s.name}-1
  namespace: ${s.namespace}
  labels: { kubernetes.io/service-name: ${s.name}, endpointslice.kubernetes.io/managed-by: weft-test }
addressType: IPv4
ports: [{ name: http, port: ${s.endpointPort ?? s.targetPort}, protocol: TCP }]
endpoints: [{ addresses: ["${s.address}"], conditions: { ready: true }${targetRef} }]
`;
}

const flow = (labels: Record<string, string>) =>
  `{ ${Object.entries(labels)
    .map(([k, v]) => `${k}: ${v}`)
    .join(", ")} }`;

export function namespaceYaml(name: string, labels: Record<string, string> = {}): string {
  return `apiVersion: v1
kind: Namespace
metadata: { name: ${name}${Object.keys(labels).length ? `, labels: ${flow(labels)}` : ""} }
`;
}

export function serviceAccountYaml(namespace: string, name: string): string {
  return `apiVersion: v1
kind: ServiceAccount
metadata: { name: ${name}, namespace: ${namespace} }
`;
}

export interface PodSpec {
  namespace: string;
  name: string;
  app: string;
  serviceAccount: string;
  /** The app's container port. */
  port: number;
  /** Marked as injected (the injector's status annotation): peers call it over mTLS. */
  inMesh?: boolean;
}

export function podYaml(p: PodSpec): string {
  const annotations = p.inMesh ? `, annotations: { weft.dev/status: '{"version":"test"}' }` : "";
  return `apiVersion: v1
kind: Pod
metadata: { name: ${p.name}, namespace: ${p.namespace}, labels: { app: ${p.app} }${annotations} }
spec:
  serviceAccountName: ${p.serviceAccount}
  containers: [{ name: app, image: example.com/${p.app}:1, ports: [{ containerPort: ${p.port} }] }]
`;
}
