// Stage 5: the cluster's circuit breaker on requests in flight (maxRequests). An admitted
// request holds its place until it ends.
import type { Transaction } from "../transaction.ts";

export function breaker(tx: Transaction): void {
  const cluster = tx.cluster!;
  const release = cluster.admit();
  if (!release) {
    tx.ctx.telemetry.upstreamError(cluster.config.name, "overflow");
    tx.reply(503, `circuit breaker: cluster "${cluster.config.name}" has ${cluster.activeRequests} requests in flight (maxRequests)`, "UO");
    return;
  }
  tx.onEnd(release);
  tx.next();
}
