// Whether a peer's or a destination's IP is loopback: 127.0.0.0/8, ::1, and IPv4 loopback in
// IPv6 form (::ffff:127.x), as a dual-stack socket reports an IPv4 peer.
import { isIP } from "node:net";

/** `address` without the ::ffff: prefix a dual-stack socket puts before an IPv4 address. */
export const plainIp = (address: string): string => address.toLowerCase().replace(/^::ffff:(?=\d+\.)/, "");

export function isLoopbackIp(address: string): boolean {
  const a = plainIp(address);
  return (isIP(a) === 4 && a.startsWith("127.")) || a === "::1";
}
