// The cluster's IPv4 Service ranges, which the injector gives weft-init (--service-cidr) so the
// app's TCP to Services goes through the sidecar. Read from the ServiceCIDR objects the API server
// keeps (networking.k8s.io/v1, Kubernetes 1.33 and later; "kubernetes" is the one of its
// --service-cluster-ip-range), once at start: a range added later reaches pods injected after
// the control plane restarts, or name it with `weft control --service-cidr`.
import { NetworkingV1Api, type KubeConfig } from "@kubernetes/client-node";
import { isIpv4Cidr } from "../../shared/ipv4.ts";
import { apiMessage } from "./errors.ts";

/** The IPv4 ranges of the cluster's ServiceCIDRs, or why there are none to read. */
export async function readServiceCidrs(kubeConfig: KubeConfig): Promise<{ cidrs: string[] } | { problem: string }> {
  try {
    const list = await kubeConfig.makeApiClient(NetworkingV1Api).listServiceCIDR();
    const cidrs = list.items
      .filter((c) => !c.metadata?.deletionTimestamp)
      .flatMap((c) => c.spec?.cidrs ?? [])
      .filter(isIpv4Cidr)
      .sort();
    return cidrs.length > 0 ? { cidrs: [...new Set(cidrs)] } : { problem: "the cluster has no IPv4 ServiceCIDR" };
  } catch (e) {
    return { problem: `cannot list ServiceCIDRs (networking.k8s.io/v1, Kubernetes 1.33 and later): ${apiMessage(e)}` };
  }
}
