// One replica of the control plane leads: it alone writes status, so replicas never fight
// over a condition. Every replica serves proxies. The lock is a coordination.k8s.io Lease,
// taken over only once its holder has not renewed it for a whole lease duration, and every
// write names the resourceVersion it read, so two replicas cannot both win.
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from "@kubernetes/client-node";
import type { Logger } from "../../shared/log.ts";
import { apiMessage, apiStatus } from "./errors.ts";

export interface LeaderOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name?: string;
  identity: string;
  leaseSeconds?: number;
  log: Logger;
  /** Called when this replica gains or loses the lease. */
  changed: (leading: boolean) => void;
}

export class LeaderElection {
  private readonly api: CoordinationV1Api;
  private readonly options: LeaderOptions;
  private readonly name: string;
  private readonly leaseSeconds: number;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  leading = false;

  constructor(options: LeaderOptions) {
    this.options = options;
    this.api = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.name = options.name ?? "weft-control";
    this.leaseSeconds = options.leaseSeconds ?? 15;
  }

  start(): void {
    void this.round();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.leading) {
      // Handing over at once rather than making the next leader wait out the lease.
      await this.write((lease) => ({ ...lease, spec: { ...lease.spec, holderIdentity: "", renewTime: new V1MicroTime(0) } })).catch(
        () => {},
      );
      this.set(false);
    }
  }

  private set(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.options.log.info(leading ? "leading: this replica writes status" : "not leading: another replica writes status", {
      identity: this.options.identity,
      lease: `${this.options.namespace}/${this.name}`,
    });
    this.options.changed(leading);
  }

  private async read(): Promise<V1Lease | null> {
    return this.api.readNamespacedLease({ namespace: this.options.namespace, name: this.name }).catch((e: unknown) => {
      if (apiStatus(e) === 404) return null;
      throw e;
    });
  }

  private async write(next: (lease: V1Lease) => V1Lease): Promise<void> {
    const lease = await this.read();
    if (!lease) return;
    await this.api.replaceNamespacedLease({ namespace: this.options.namespace, name: this.name, body: next(lease) });
  }

  private async round(): Promise<void> {
    if (this.stopped) return;
    const me = this.options.identity;
    const now = new V1MicroTime(Date.now());
    try {
      const lease = await this.read();
      if (!lease) {
        await this.api.createNamespacedLease({
          namespace: this.options.namespace,
          body: {
            metadata: { name: this.name, namespace: this.options.namespace },
            spec: { holderIdentity: me, leaseDurationSeconds: this.leaseSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
          },
        });
        this.set(true);
      } else {
        const spec = lease.spec ?? {};
        const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
        const expired = Date.now() > renewed + (spec.leaseDurationSeconds ?? this.leaseSeconds) * 1000;
        if (spec.holderIdentity === me || !spec.holderIdentity || expired) {
          const transition = spec.holderIdentity !== me;
          // The resourceVersion in metadata makes this a compare-and-swap.
          await this.api.replaceNamespacedLease({
            namespace: this.options.namespace,
            name: this.name,
            body: {
              ...lease,
              spec: {
                ...spec,
                holderIdentity: me,
                leaseDurationSeconds: this.leaseSeconds,
                renewTime: now,
                ...(transition ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
              },
            },
          });
          this.set(true);
        } else {
          this.set(false);
        }
      }
    } catch (e) {
      // A conflict means another replica wrote first; anything else, we cannot tell: either
      // way this replica does not lead until a round succeeds.
      const code = apiStatus(e);
      if (code !== 409) this.options.log.warn("leader election round failed", { error: apiMessage(e) });
      this.set(false);
    }
    if (!this.stopped) this.timer = setTimeout(() => void this.round(), (this.leaseSeconds * 1000) / 3);
  }
}
