// Stage 4: the route's fault injection: answer with an error, or hold the request, for a
// share of requests.
import type { Transaction } from "../transaction.ts";

export function fault(tx: Transaction): void {
  const route = tx.route!;
  const fault = route.config.fault;
  if (fault?.abort && tx.random() * 100 < fault.abort.percent) {
    tx.reply(fault.abort.status, `fault injected by route "${route.name}"`, "FI");
    return;
  }
  if (fault?.delay && tx.random() * 100 < fault.delay.percent) {
    const timer = tx.clock.setTimeout(() => tx.next(), fault.delay.ms);
    tx.onEnd(() => tx.clock.clearTimeout(timer));
    return;
  }
  tx.next();
}
