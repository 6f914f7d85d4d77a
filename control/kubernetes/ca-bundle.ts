// The mesh's roots where sidecars can read them: a ConfigMap (weft-ca-root, key ca.crt) in
// every namespace labelled for injection, which the injected sidecar mounts to trust the
// control plane's certificate; and the caBundle of the injector's webhook configuration, so
// the API server trusts the control plane too. Both are rewritten when they differ.
import { AdmissionregistrationV1Api, CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from "@kubernetes/client-node";
import { Buffer } from "node:buffer";
import type { Logger } from "../../shared/log.ts";
import { INJECT, NAMESPACE_INJECT_VALUES } from "../inject/annotations.ts";
import { CONFIGURATION_NAME, WEBHOOK_NAME } from "../inject/manifest.ts";
import { CA_CONFIG_MAP } from "../inject/patch.ts";
import { apiMessage, apiStatus } from "./errors.ts";

export class CaBundlePublisher {
  private readonly core: CoreV1Api;
  private readonly admission: AdmissionregistrationV1Api;
  private readonly log: Logger;
  private readonly bundle: string;
  /** Namespaces whose ConfigMap holds the bundle already. */
  private readonly done = new Set<string>();
  private webhookDone = false;
  private saidNoWebhook = false;

  constructor(kubeConfig: KubeConfig, bundle: string, log: Logger) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.admission = kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    this.bundle = bundle;
    this.log = log;
  }

  /** Brings every labelled namespace's ConfigMap and the webhook's caBundle up to date. */
  async sync(namespaces: ReadonlyMap<string, Record<string, string>>): Promise<void> {
    for (const [namespace, labels] of namespaces) {
      if (!NAMESPACE_INJECT_VALUES.includes(labels[INJECT] ?? "") || this.done.has(namespace)) continue;
      try {
        await this.configMap(namespace);
        this.done.add(namespace);
      } catch (e) {
        this.log.warn("cannot write the mesh's root certificate into a namespace; its sidecars cannot start until it is there", {
          namespace,
          configMap: CA_CONFIG_MAP,
          error: apiMessage(e),
        });
      }
    }
    for (const namespace of this.done) if (!namespaces.has(namespace)) this.done.delete(namespace);
    if (!this.webhookDone) await this.webhook();
  }

  private async configMap(namespace: string, attempt = 0): Promise<void> {
    const body = {
      metadata: { name: CA_CONFIG_MAP, namespace, labels: { "app.kubernetes.io/part-of": "weft" } },
      data: { "ca.crt": this.bundle },
    };
    const existing = await this.core.readNamespacedConfigMap({ namespace, name: CA_CONFIG_MAP }).catch((e: unknown) => {
      if (apiStatus(e) === 404) return null;
      throw e;
    });
    try {
      if (!existing) await this.core.createNamespacedConfigMap({ namespace, body });
      else if (existing.data?.["ca.crt"] !== this.bundle)
        await this.core.replaceNamespacedConfigMap({ namespace, name: CA_CONFIG_MAP, body: { ...existing, data: body.data } });
    } catch (e) {
      // Another replica wrote it between the read and the write (all replicas publish the same
      // root): read again and see whether anything is left to do.
      if (apiStatus(e) !== 409 || attempt > 0) throw e;
      await this.configMap(namespace, attempt + 1);
    }
  }

  private async webhook(): Promise<void> {
    const patch = { webhooks: [{ name: WEBHOOK_NAME, clientConfig: { caBundle: Buffer.from(this.bundle).toString("base64") } }] };
    try {
      await this.admission.patchMutatingWebhookConfiguration(
        { name: CONFIGURATION_NAME, body: patch },
        setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
      );
      this.webhookDone = true;
      this.log.info("wrote the mesh's root into the injector's webhook configuration", { webhook: CONFIGURATION_NAME });
    } catch (e) {
      // Not installed (a control plane run outside a cluster): nothing to trust it for yet.
      if (apiStatus(e) === 404) {
        if (!this.saidNoWebhook)
          this.log.info("no injector webhook configuration to write the CA bundle into (weft install makes one)", {
            webhook: CONFIGURATION_NAME,
          });
        this.saidNoWebhook = true;
        return;
      }
      this.log.warn("cannot write the CA bundle into the injector's webhook configuration", {
        webhook: CONFIGURATION_NAME,
        error: apiMessage(e),
      });
    }
  }
}
