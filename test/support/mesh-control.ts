// The control plane in the test's own process, as `weft control` runs it: its own CA (kept in
// DIR/ca), HTTPS with a certificate from that CA, and the enrollment route that signs sidecars'
// certificates for their ServiceAccount tokens. For suites that read its state directly;
// test/support/control-process.ts runs it as a separate process instead.
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import type { Cluster } from "../k8s/cluster.ts";
import { freePorts } from "../k8s/cluster.ts";
import { startController, type Controller, type ControllerOptions } from "../../control/controller.ts";
import { openAuthority, type CertificateAuthority } from "../../control/ca/authority.ts";
import { directoryStore } from "../../control/ca/dir-store.ts";
import { ENROLLMENT_PATH, enrollmentHandler } from "../../control/ca/enrollment.ts";
import { kubernetesTokenReviewer } from "../../control/ca/token-review.ts";
import { createLogger, type Logger } from "../../shared/log.ts";

export interface MeshControl {
  controller: Controller;
  authority: CertificateAuthority;
  /** The mesh's roots, as a sidecar's --ca-file. */
  caFile: string;
  port: number;
  /** https://127.0.0.1:PORT */
  url: string;
}

export interface MeshControlOptions extends Partial<Omit<ControllerOptions, "kubeConfig" | "log" | "port" | "tls" | "caBundle">> {
  log?: Logger;
  /** Addresses besides 127.0.0.1 its certificate names (sidecars in other network namespaces). */
  servingIps?: string[];
}

/** Starts it and waits until its informers have synced. `dir` keeps the CA and ca.crt. */
export async function startMeshControl(k8s: Cluster, dir: string, options: MeshControlOptions = {}): Promise<MeshControl> {
  const { log = createLogger({}, "error"), servingIps = [], routes = {}, ...rest } = options;
  const authority = await openAuthority({ store: directoryStore(path.join(dir, "ca")) });
  const serving = await authority.issueServing([], ["127.0.0.1", ...servingIps], 3600_000);
  const caFile = path.join(dir, "ca.crt");
  await writeFile(caFile, authority.trustBundle());
  const [port] = (await freePorts(1)) as [number];
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(k8s.kubeconfig);
  const controller = await startController({
    kubeConfig,
    log,
    address: "127.0.0.1",
    ...rest,
    port,
    tls: { cert: serving.certificateChain, key: serving.privateKey },
    caBundle: authority.trustBundle(),
    routes: { [ENROLLMENT_PATH]: enrollmentHandler({ authority, reviewToken: kubernetesTokenReviewer({ kubeConfig }), log }), ...routes },
  });
  await controller.synced;
  return { controller, authority, caFile, port, url: `https://127.0.0.1:${port}` };
}
