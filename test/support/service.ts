// A Service and its EndpointSlice as YAML, for suites and benchmarks that run the control
// plane against a real API server without a kube-controller-manager or kubelet: the
// endpoints are written by hand. EndpointSlices refuse loopback addresses, so `address` is
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
