// Stage 3: the route and its backend cluster for the request as the filters left it (or the
// route's redirect, answered here), and the route's URL rewrite of what goes on; the route's
// timeout starts here, and its response header modifier wraps the response.
import type { Buffer } from "node:buffer";
import type { HeaderModifier } from "../../config/schema.ts";
import { applyHeaderModifier } from "../../http/headers.ts";
import { pathOf } from "../../http/target.ts";
import { modifiedTarget } from "../../routing/path-modifier.ts";
import { redirectLocation } from "../../routing/redirect.ts";
import { pickBackend } from "../../routing/router.ts";
import type { ResponseOut, ResponseSink } from "../response.ts";
import type { Transaction } from "../transaction.ts";

export function route(tx: Transaction): void {
  const { ctx, request } = tx;
  const path = pathOf(request.path);
  const route = ctx.router.match({
    authority: request.authority,
    method: request.method,
    path,
    target: request.path,
    headers: request.headers,
  });
  if (!route) {
    tx.reply(404, `no route for host "${request.authority}" and path "${path}"${ctx.noRouteReason ? `: ${ctx.noRouteReason}` : ""}`, "NR");
    return;
  }
  tx.route = route;
  const { redirect, rewrite } = route.config;
  if (redirect) {
    const location = redirectLocation(redirect, request, route.config.match.path);
    tx.replyWith({ status: redirect.statusCode, headers: ["location", location], body: new Uint8Array(0) });
    return;
  }
  if (rewrite) {
    tx.request = {
      ...request,
      authority: rewrite.hostname ?? request.authority,
      path: modifiedTarget(rewrite.path, request.path, route.config.match.path),
    };
  }
  const backend = pickBackend(route, tx.random);
  const clusterName = backend.cluster;
  const cluster = ctx.clusters.get(clusterName);
  if (!cluster) {
    tx.reply(500, `route "${route.name}" names unknown cluster "${clusterName}"`, "NR");
    return;
  }
  tx.cluster = cluster;
  if (cluster.config.invalid !== undefined) {
    tx.reply(500, `route "${route.name}" sends this share of its requests to an invalid backend: ${cluster.config.invalid}`, "NR");
    return;
  }
  const { timeoutMs, responseHeaders } = route.config;
  if (timeoutMs > 0) {
    const timer = tx.clock.setTimeout(() => {
      ctx.telemetry.upstreamError(cluster.config.name, "timeout");
      tx.fail(504, `upstream did not answer within the route timeout of ${timeoutMs} ms`, "UT");
    }, timeoutMs);
    tx.onEnd(() => tx.clock.clearTimeout(timer));
  }
  tx.backend = backend;
  // The backend's modifiers apply after the route's, so the more specific wins: on the way back
  // the route's sink is the outer one, which sees the head first.
  if (backend.responseHeaders) tx.response = new ModifiedResponse(backend.responseHeaders, tx.response);
  if (responseHeaders) tx.response = new ModifiedResponse(responseHeaders, tx.response);
  tx.next();
}

/** The route's response header modifier, applied to the upstream's head before the filters see it. */
class ModifiedResponse implements ResponseSink {
  private readonly modifier: HeaderModifier;
  private readonly next: ResponseSink;

  constructor(modifier: HeaderModifier, next: ResponseSink) {
    this.modifier = modifier;
    this.next = next;
  }

  head(out: ResponseOut): void {
    applyHeaderModifier(out.headers, this.modifier);
    this.next.head(out);
  }

  data(chunk: Buffer): boolean {
    return this.next.data(chunk);
  }

  end(trailers: string[] | null): void {
    this.next.end(trailers);
  }
}
