// rate-limit: a token bucket per client. Each key (client IP, a header's value or the peer's
// SPIFFE ID) has `burst` tokens, refilled at `requestsPerSecond`; a request takes one, and
// with none left it gets 429. Buckets are kept in the filter's state, which outlives
// instances and versions of the filter in this proxy.
import { Continue, Header, attribute, configNumber, configString, fail, metrics, now, request, respond, state } from "@weft/sdk";

class Settings {
  constructor(public rate: f64, public burst: f64, public keyBy: string, public header: string) {}
}

let settings: Settings | null = null;

function readSettings(): Settings | null {
  const rate = configNumber("requestsPerSecond", 0);
  const keyBy = configString("keyBy");
  const header = configString("header");
  const by = keyBy === null ? "clientIp" : keyBy;
  if (!(rate > 0)) return null;
  if (by == "header" && header === null) return null;
  return new Settings(rate, configNumber("burst", Math.max(1, Math.ceil(rate))), by, header === null ? "" : header.toLowerCase());
}

// Without the configured header or principal, a client is limited by its address.
function clientKey(s: Settings): string {
  let key: string | null = null;
  if (s.keyBy == "header") key = request.header(s.header);
  else if (s.keyBy == "principal") key = attribute("source.principal");
  if (key !== null && key.length > 0) return s.keyBy + ":" + key;
  const address = attribute("source.address");
  return "clientIp:" + (address === null ? "" : address);
}

export function on_request_headers(): i32 {
  if (settings === null) settings = readSettings();
  const s = settings;
  if (s === null) return fail('rate-limit: config needs "requestsPerSecond" above 0, and "header" when "keyBy" is "header"');

  const key = "bucket/" + clientKey(s);
  const time = now();
  // A bucket is 16 bytes: tokens (f64), then the time they were counted (i64, ms).
  let bucket = state.getBytes(key);
  let tokens = s.burst;
  if (bucket !== null && bucket.byteLength == 16) {
    const elapsed = time - load<i64>(bucket.dataStart, 8);
    tokens = Math.min(s.burst, load<f64>(bucket.dataStart) + (elapsed > 0 ? <f64>elapsed : 0) * s.rate / 1000);
  } else bucket = new Uint8Array(16);

  const allowed = tokens >= 1;
  if (allowed) tokens -= 1;
  store<f64>(bucket.dataStart, tokens);
  store<i64>(bucket.dataStart, time, 8);
  state.setBytes(key, bucket);
  if (allowed) return Continue;

  metrics.counter("rate_limited");
  const wait = (<i64>Math.max(1, Math.ceil((1 - tokens) / s.rate))).toString();
  respond(429, "rate limit exceeded\n", [
    new Header("content-type", "text/plain; charset=utf-8"),
    new Header("retry-after", wait),
    new Header("ratelimit-limit", (<i64>s.burst).toString()),
    new Header("ratelimit-remaining", "0"),
    new Header("ratelimit-reset", wait),
  ]);
  return Continue;
}
