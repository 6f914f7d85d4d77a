// The MutatingWebhookConfiguration that makes the API server send new Pods to the injector
// (webhook.ts), as a plain object for `weft install` to write out.
import { Buffer } from "node:buffer";
import { INJECT, NAMESPACE_INJECT_VALUES } from "./annotations.ts";

export const CONFIGURATION_NAME = "weft-sidecar-injector";
/** The name kubectl shows when the webhook denies a pod: admission webhook "sidecar-injector.weft.dev" denied the request. */
export const WEBHOOK_NAME = "sidecar-injector.weft.dev";
export const WEBHOOK_PATH = "/inject";

export interface InjectorWebhookOptions {
  /**
   * PEM of the CA that signed the injector's serving certificate. Left out by `weft install`:
   * the control plane writes it when it starts, from its own CA.
   */
  caBundle?: string;
  /**
   * Where the API server calls the injector: the control plane's Service (the default:
   * weft-control in weft-system, port 15012, path /inject), or a URL when it runs outside the
   * cluster (tests, local development).
   */
  target?: { service: { namespace: string; name: string; port: number; path?: string } } | { url: string };
  /**
   * Fail (the default, as Istio's injector): while the injector is unreachable, pods in labelled
   * namespaces are not created, rather than created without a sidecar and so outside mTLS and
   * AccessPolicy, which nobody would notice. Ignore (Linkerd's default) favours availability.
   */
  failurePolicy?: "Fail" | "Ignore";
  /** How long the API server waits for an answer (1-30 s). Default 10, as Istio. */
  timeoutSeconds?: number;
  /** The control plane's namespace, never injected even when labelled: its own pods must start while the injector is down. */
  controlPlaneNamespace?: string;
}

export function injectorWebhookConfiguration(options: InjectorWebhookOptions): Record<string, unknown> {
  if (options.caBundle !== undefined && !options.caBundle.includes("-----BEGIN CERTIFICATE-----")) {
    throw new Error("caBundle must be the PEM of the CA that signed the injector's serving certificate (-----BEGIN CERTIFICATE-----)");
  }
  const timeoutSeconds = options.timeoutSeconds ?? 10;
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1 || timeoutSeconds > 30) {
    throw new Error(`timeoutSeconds must be a whole number of seconds from 1 to 30 (the API server's bounds), not ${timeoutSeconds}`);
  }
  const controlPlaneNamespace = options.controlPlaneNamespace ?? "weft-system";
  const target = options.target ?? { service: { namespace: controlPlaneNamespace, name: "weft-control", port: 15012 } };
  const clientConfig = {
    ...("url" in target ? { url: target.url } : { service: { path: WEBHOOK_PATH, ...target.service } }),
    ...(options.caBundle !== undefined ? { caBundle: Buffer.from(options.caBundle).toString("base64") } : {}),
  };
  return {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "MutatingWebhookConfiguration",
    metadata: { name: CONFIGURATION_NAME, labels: { "app.kubernetes.io/part-of": "weft" } },
    webhooks: [
      {
        name: WEBHOOK_NAME,
        clientConfig,
        rules: [{ operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["pods"], scope: "Namespaced" }],
        namespaceSelector: {
          // as Istio ignores them: a label put there by mistake must not make the cluster's own
          // pods wait for the injector
          matchExpressions: [
            { key: INJECT, operator: "In", values: NAMESPACE_INJECT_VALUES },
            {
              key: "kubernetes.io/metadata.name",
              operator: "NotIn",
              values: ["kube-system", "kube-public", "kube-node-lease", controlPlaneNamespace],
            },
          ],
        },
        // The opt-out annotation cannot be selected (patch.ts honours it); the label of the same
        // name can, and then the pod does not depend on the injector being up.
        objectSelector: { matchExpressions: [{ key: INJECT, operator: "NotIn", values: ["false"] }] },
        failurePolicy: options.failurePolicy ?? "Fail",
        // Called again when a later webhook changed the pod; weft.dev/status makes that call a
        // no-op, so no order of webhooks yields two sidecars.
        reinvocationPolicy: "IfNeeded",
        sideEffects: "None",
        admissionReviewVersions: ["v1"],
        timeoutSeconds,
        matchPolicy: "Equivalent",
      },
    ],
  };
}
