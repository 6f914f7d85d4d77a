// Kubernetes credentials for the CLI commands: --kubeconfig FILE, else $KUBECONFIG,
// ~/.kube/config or the pod's in-cluster service account (client-node's order).
import { KubeConfig } from "@kubernetes/client-node";

/** The credentials, or a message saying why they cannot be loaded. */
export function loadKubeConfig(file: string | undefined): KubeConfig | string {
  const kubeConfig = new KubeConfig();
  try {
    if (file) kubeConfig.loadFromFile(file);
    else kubeConfig.loadFromDefault();
    return kubeConfig;
  } catch (e) {
    return `cannot load Kubernetes credentials${file ? ` from ${file}` : ""}: ${(e as Error).message}`;
  }
}
