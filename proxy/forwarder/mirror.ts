// Request mirroring: a copy of the request goes to a second cluster, fire and forget. Its
// answer is read and dropped; its failure never touches the original request.
import type { Buffer } from "node:buffer";
import type { UpstreamCluster } from "../upstream/cluster.ts";
import type { UpstreamRequestHead } from "../upstream/exchange.ts";
import { setHeader } from "../http/headers.ts";

/** Envoy's convention, so mirrored traffic is recognisable: "shop:8080" → "shop-shadow:8080". */
export function shadowHost(host: string): string {
  const colon = host.lastIndexOf(":");
  return colon > 0 && !host.endsWith("]") ? `${host.slice(0, colon)}-shadow${host.slice(colon)}` : `${host}-shadow`;
}

export function mirror(cluster: UpstreamCluster, request: UpstreamRequestHead, body: Buffer[], trailers: string[] | null): void {
  const endpoint = cluster.pick(undefined, null);
  if (!endpoint) return;
  const authority = shadowHost(request.authority);
  const headers = request.headers.slice();
  setHeader(headers, "host", authority);
  endpoint.requestStarted();
  const done = () => endpoint.requestEnded();
  cluster.acquire(endpoint, { cancelled: false }).then((upstream) => {
    upstream.start(
      { ...request, headers, authority },
      {
        head: () => {},
        data: () => {},
        end: done,
        error: done,
      },
    );
    for (const chunk of body) upstream.writeBody(chunk);
    if (request.hasBody) upstream.endBody(trailers);
  }, done);
}
