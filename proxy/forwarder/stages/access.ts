// Stage 1: the listener's access policies. First, so that a refused caller costs no filter
// call and counts in no rate limit.
import type { Transaction } from "../transaction.ts";

export function access(tx: Transaction): void {
  const refused = tx.ctx.refuse?.(tx.exchange);
  if (refused) {
    tx.reply(403, refused, "RBAC");
    return;
  }
  tx.next();
}
