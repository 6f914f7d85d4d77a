// Request mirroring: a copy of the request goes to a second cluster, fire and forget. Its
// answer is read and dropped; its failure never touches the original request.
import type { Buffer } from "node:buffer";
import type { UpstreamCluster } from "../upstream/cluster.ts";
import { encodeRequestHead } from "../http1/encode.ts";
import { setHeader } from "../http/headers.ts";

/** Envoy's convention, so mirrored traffic is recognisable: "shop:8080" → "shop-shadow:8080". */
export function shadowHost(host: string): string {
  const colon = host.lastIndexOf(":");
  return colon > 0 && !host.endsWith("]") ? `${host.slice(0, colon)}-shadow${host.slice(colon)}` : `${host}-shadow`;
}

export function mirror(
  cluster: UpstreamCluster,
  method: string,
  target: string,
  headers: string[],
  authority: string,
  body: Buffer[],
  trailers: string[] | null,
  chunked: boolean,
): void {
  const endpoint = cluster.pick(undefined, null);
  if (!endpoint) return;
  const copy = headers.slice();
  setHeader(copy, "host", shadowHost(authority));
  const head = encodeRequestHead(method, target, copy);
  endpoint.active++;
  const done = () => {
    endpoint.active--;
  };
  cluster.acquire(endpoint, { cancelled: false }).then(
    (upstream) => {
      const hasBody = body.length > 0 || chunked;
      upstream.start(method, head, chunked, hasBody, {
        head: () => {},
        data: () => {},
        end: done,
        error: done,
      });
      for (const chunk of body) upstream.writeBody(chunk);
      if (hasBody) upstream.endBody(trailers);
    },
    done,
  );
}
