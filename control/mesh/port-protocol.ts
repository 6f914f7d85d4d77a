// What a Service port carries, as its appProtocol or else its name says (Istio's conventions:
// the name's first dash-separated word). HTTP ports are routed request by request; opaque TCP
// ports are carried byte for byte between sidecars, over mTLS, with AccessPolicies judging the
// peer's identity; on a port that says neither, the sidecar detects HTTP by a connection's first
// bytes (docs/tcp.md).
import type { ServicePort } from "./world.ts";

export type PortProtocol = "http" | "tcp" | "detect";

const HTTP = ["http", "http2", "h2c", "kubernetes.io/h2c", "grpc", "grpc-web"];
/** The app's own TLS (https, tls) is opaque too: only the app holds its keys. */
const OPAQUE = ["tcp", "tls", "https", "redis", "mongo", "mysql", "postgres", "postgresql", "kafka", "amqp", "nats"];

export function portProtocol(port: ServicePort): PortProtocol {
  const said = (port.appProtocol ?? port.name.split("-")[0] ?? "").toLowerCase();
  if (HTTP.includes(said)) return "http";
  if (OPAQUE.includes(said)) return "tcp";
  return "detect";
}

/** How long a sidecar waits for a connection's first bytes on a "detect" port before carrying it as TCP. */
export const DETECT_HTTP_MS = 5_000;
