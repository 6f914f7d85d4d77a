// A CaStore in a Kubernetes Secret (default weft-ca in the control plane's namespace), in
// cert-manager's shape: type kubernetes.io/tls, tls.crt, tls.key and optionally ca.crt. The
// first replica to start creates it; the others get 409 AlreadyExists and read the winner's.
// Needs RBAC: get and create on secrets in that namespace.
import { CoreV1Api, type KubeConfig, type V1Secret } from "@kubernetes/client-node";
import { Buffer } from "node:buffer";
import { apiMessage, apiStatus } from "../kubernetes/errors.ts";
import type { CaMaterial, CaStore } from "./authority.ts";

export const DEFAULT_CA_SECRET = "weft-ca";

export interface SecretStoreOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name?: string;
}

function materialOf(secret: V1Secret, location: string): CaMaterial {
  const data = secret.data ?? {};
  const text = (key: string) => (data[key] ? Buffer.from(data[key], "base64").toString("utf8") : undefined);
  const certPem = text("tls.crt");
  const keyPem = text("tls.key");
  if (!certPem || !keyPem) {
    const has = Object.keys(data).join(", ") || "no data";
    throw new Error(`${location} must have tls.crt and tls.key (it has ${has}); see docs/certificates.md for the shape`);
  }
  const caPem = text("ca.crt");
  return { certPem, keyPem, ...(caPem ? { caPem } : {}) };
}

export function kubernetesSecretStore(options: SecretStoreOptions): CaStore {
  const name = options.name ?? DEFAULT_CA_SECRET;
  const { namespace } = options;
  const location = `Secret ${namespace}/${name}`;
  const api = options.kubeConfig.makeApiClient(CoreV1Api);
  const load = async (): Promise<CaMaterial | null> => {
    let secret: V1Secret;
    try {
      secret = await api.readNamespacedSecret({ name, namespace });
    } catch (e) {
      if (apiStatus(e) === 404) return null;
      throw new Error(`reading ${location} failed: ${apiMessage(e)}`, { cause: e });
    }
    return materialOf(secret, location);
  };
  return {
    location,
    load,
    async create(material) {
      const encode = (pem: string) => Buffer.from(pem, "utf8").toString("base64");
      const body: V1Secret = {
        metadata: { name, namespace, labels: { "app.kubernetes.io/managed-by": "weft", "app.kubernetes.io/component": "ca" } },
        type: "kubernetes.io/tls",
        data: {
          "tls.crt": encode(material.certPem),
          "tls.key": encode(material.keyPem),
          ...(material.caPem ? { "ca.crt": encode(material.caPem) } : {}),
        },
      };
      try {
        await api.createNamespacedSecret({ namespace, body });
        return material;
      } catch (e) {
        if (apiStatus(e) !== 409) throw new Error(`creating ${location} failed: ${apiMessage(e)}`, { cause: e });
      }
      // Another replica created it between our load() and create(): use theirs.
      const winner = await load();
      if (!winner) throw new Error(`${location} was reported to exist (409) but cannot be read: was it deleted just now? Restart to retry`);
      return winner;
    },
  };
}
