// ip-filter: allows or denies requests by the client's address (weft.source.address, or the
// first X-Forwarded-For hop when the proxy sits behind a trusted load balancer). Deny wins;
// with an allow list, only addresses on it get through. Refused requests get 403.
import { Continue, Header, IpRange, attribute, config, fail, inAnyRange, metrics, parseIp, request, respond } from "@weft/sdk";

class Settings {
  allow: Array<IpRange> = [];
  deny: Array<IpRange> = [];
  xForwardedFor: bool = false;
}

let settings: Settings | null = null;
let problem = "";

function ranges(key: string): Array<IpRange> | null {
  const texts = config().getStrings(key);
  const out = new Array<IpRange>();
  for (let i = 0; i < texts.length; i++) {
    const range = IpRange.parse(texts[i]);
    if (range === null) {
      problem = "ip-filter: config." + key + "[" + i.toString() + '] "' + texts[i] + '" is not an IP address or CIDR range';
      return null;
    }
    out.push(range);
  }
  return out;
}

function readSettings(): Settings | null {
  const s = new Settings();
  const allow = ranges("allow");
  const deny = ranges("deny");
  if (allow === null || deny === null) return null;
  s.allow = allow;
  s.deny = deny;
  s.xForwardedFor = config().getBool("xForwardedFor", false);
  return s;
}

function clientAddress(s: Settings): string {
  if (s.xForwardedFor) {
    const forwarded = request.header("x-forwarded-for");
    if (forwarded !== null) {
      const comma = forwarded.indexOf(",");
      return comma < 0 ? forwarded.trim() : forwarded.substring(0, comma).trim();
    }
  }
  const address = attribute("source.address");
  return address === null ? "" : address;
}

function refuse(reason: string): i32 {
  metrics.counter("ip_denied");
  respond(403, reason + "\n", [new Header("content-type", "text/plain; charset=utf-8")]);
  return Continue;
}

export function on_request_headers(): i32 {
  if (settings === null) settings = readSettings();
  const s = settings;
  if (s === null) return fail(problem);
  const address = parseIp(clientAddress(s));
  if (address === null) return refuse("forbidden: the client address is not an IP address");
  if (inAnyRange(address, s.deny)) return refuse("forbidden: the client address is denied");
  if (s.allow.length > 0 && !inAnyRange(address, s.allow)) return refuse("forbidden: the client address is not allowed");
  return Continue;
}
