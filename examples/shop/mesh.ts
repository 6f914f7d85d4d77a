// How the shop's services call each other: through their sidecar, which weft up names in
// WEFT_OUTBOUND_PROXY, as an HTTP proxy. The sidecar routes by host name (catalog.shop),
// originates mTLS and applies routes and policies; the app only speaks plain HTTP.
// In Kubernetes the same code would call http://catalog.shop/ directly and iptables would
// send it through the sidecar.
//
// A call made while serving a request carries that request's W3C trace context (traceparent,
// tracestate), as an OpenTelemetry SDK would: the sidecars then put the whole request, through
// every service it reaches, into one trace. Without it each hop would start a trace of its own.
import { AsyncLocalStorage } from "node:async_hooks";
import http from "node:http";
import process from "node:process";

const TRACE_HEADERS = ["traceparent", "tracestate"];
const incoming = new AsyncLocalStorage<Record<string, string>>();

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export function call(url: string, headers: Record<string, string> = {}): Promise<Reply> {
  const target = new URL(url);
  const proxy = process.env.WEFT_OUTBOUND_PROXY ? new URL(process.env.WEFT_OUTBOUND_PROXY) : null;
  const sent = { ...incoming.getStore(), ...headers };
  return new Promise((resolve, reject) => {
    const req = http.request(
      proxy
        ? { host: proxy.hostname, port: proxy.port, path: target.href, headers: { ...sent, host: target.host } }
        : { host: target.hostname, port: target.port || 80, path: `${target.pathname}${target.search}`, headers: sent },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error(`${url}: no answer in 5 s`)));
    req.on("error", reject);
    req.end();
  });
}

/** A small JSON server on $HOST:$PORT, as weft up starts it. */
export function serve(name: string, handle: (req: http.IncomingMessage) => Promise<{ status?: number; body: unknown }>): void {
  const server = http.createServer((req, res) => {
    const trace: Record<string, string> = {};
    for (const field of TRACE_HEADERS) {
      const value = req.headers[field];
      if (typeof value === "string") trace[field] = value;
    }
    incoming
      .run(trace, () => handle(req))
      .then(({ status, body }) => {
        res.writeHead(status ?? 200, { "content-type": "application/json" });
        res.end(`${JSON.stringify(body, null, 2)}\n`);
      })
      .catch((e: Error) => {
        res.writeHead(502, { "content-type": "application/json" });
        res.end(`${JSON.stringify({ error: `${name}: ${e.message}` })}\n`);
      });
  });
  const port = Number(process.env.PORT ?? 8080);
  server.listen(port, process.env.HOST ?? "127.0.0.1", () => console.log(JSON.stringify({ msg: `${name} listening`, port })));
  process.on("SIGTERM", () => server.close(() => process.exit(0)));
}
