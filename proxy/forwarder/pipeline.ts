// The request path: the stages every request passes, in order. Each is a small synchronous
// step in stages/; a stage that waits (a filter reading the body, a fault's delay, an attempt
// waiting for its connection) passes the request on later. Responses come back through the
// stages in reverse (response.ts). A new capability (external authorization, a local rate
// limit) is a new stage in this list.
import type { ServerExchange } from "../http/exchange.ts";
import { systemClock } from "./clock.ts";
import type { ForwardContext } from "./context.ts";
import { access } from "./stages/access.ts";
import { attempts } from "./stages/attempts.ts";
import { breaker } from "./stages/breaker.ts";
import { fault } from "./stages/fault.ts";
import { filters } from "./stages/filters.ts";
import { route } from "./stages/route.ts";
import { type Stage, Transaction } from "./transaction.ts";

export const STAGES: readonly Stage[] = [access, filters, route, fault, breaker, attempts];

export function forward(exchange: ServerExchange, ctx: ForwardContext): void {
  new Transaction(exchange, ctx, STAGES, systemClock, Math.random).next();
}
