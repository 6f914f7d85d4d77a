// jwt-auth: requires a valid JWT in "Authorization: Bearer <token>". The signature is checked
// against the JWKS in the config (the control plane inlines fetched key sets), then the
// issuer, audience and validity window. Chosen claims are copied into request headers;
// those headers are always cleared first, so a client cannot send its own. A token that
// passed is remembered (see Accepted), so a client that repeats it pays for the signature once.
import { Continue, Header, Json, Jws, config, fail, jwt, log, metrics, now, request, respond } from "@weft/sdk";

class ClaimHeader {
  constructor(public claim: string, public header: string) {}
}

class Settings {
  issuer: string | null = null;
  audiences: Array<string> = [];
  algorithms: Array<string> = [];
  keys: Array<Json> = [];
  skewSeconds: f64 = 60;
  allowMissing: bool = false;
  forwardToken: bool = false;
  claimHeaders: Array<ClaimHeader> = [];
  /** A claim header named "authorization" clears the token before it is read. */
  claimsClearToken: bool = false;
}

let settings: Settings | null = null;

function readSettings(): Settings | null {
  const c = config();
  const s = new Settings();
  s.issuer = c.getString("issuer");
  s.audiences = c.getStrings("audiences");
  s.algorithms = c.getStrings("algorithms");
  if (s.algorithms.length == 0) s.algorithms = ["RS256", "ES256", "HS256", "EdDSA"];
  const jwks = c.get("jwks");
  if (jwks === null) return null;
  const keys = jwks.get("keys");
  if (keys === null || keys.length == 0) return null;
  s.keys = keys.items;
  s.skewSeconds = c.getNumber("clockSkewSeconds", 60);
  s.allowMissing = c.getBool("allowMissing", false);
  s.forwardToken = c.getBool("forwardToken", false);
  const mapping = c.get("claimsToHeaders");
  if (mapping !== null) {
    for (let i = 0; i < mapping.length; i++) s.claimHeaders.push(new ClaimHeader(mapping.items[i].getString("claim")!, mapping.items[i].getString("header")!));
  }
  for (let i = 0; i < s.claimHeaders.length; i++) if (s.claimHeaders[i].header.toLowerCase() == "authorization") s.claimsClearToken = true;
  return s;
}

/** A token whose signature, issuer and audience passed: its bytes, validity window and claim headers' values (null: removed). */
class Accepted {
  constructor(public token: Uint8Array, public exp: f64, public nbf: f64, public values: Array<string | null>) {}
}

// Checking a signature costs tens of microseconds (RS256 in node:crypto), and a client sends
// the same token with every request until it expires. An entry is found by the token's last
// bytes (its signature's: cheap to hash) and then compared whole, since the signature alone
// would let a forged payload ride on a genuine signature. Tokens stay bytes, as the header
// holds them: a request that repeats one decodes nothing. The cache is the instance's, so a
// new config (a new instance) starts empty; it is bounded by entries and bytes, oldest out
// first; exp and nbf are checked again on every request.
const TAIL = 32;
const MAX_ACCEPTED = 1024;
const MAX_ACCEPTED_BYTES = 512 * 1024;
const MAX_CACHED_TOKEN_BYTES = 8 * 1024;
const accepted = new Map<string, Accepted>();
const acceptedOrder = new Array<string>();
let acceptedBytes = 0;

/** The key of the token that is `bytes` from `start` on: its last TAIL bytes. */
function tailOf(bytes: Uint8Array, start: i32): string {
  const from = max(start, bytes.length - TAIL);
  return String.UTF8.decodeUnsafe(bytes.dataStart + from, bytes.length - from);
}

/** The accepted token that `value` holds from `start` on, or null. */
function recall(value: Uint8Array, start: i32): Accepted | null {
  const tail = tailOf(value, start);
  if (!accepted.has(tail)) return null;
  const entry = accepted.get(tail);
  const length = value.length - start;
  return entry.token.length == length && memory.compare(entry.token.dataStart, value.dataStart + start, length) == 0 ? entry : null;
}

function forget(tail: string): void {
  if (!accepted.has(tail)) return;
  acceptedBytes -= accepted.get(tail).token.length;
  accepted.delete(tail);
}

function remember(entry: Accepted): void {
  if (entry.token.length > MAX_CACHED_TOKEN_BYTES) return;
  const tail = tailOf(entry.token, 0);
  forget(tail);
  accepted.set(tail, entry);
  acceptedOrder.push(tail);
  acceptedBytes += entry.token.length;
  // A tail can be queued twice (a replaced entry); the queue still bounds the entries.
  while (acceptedOrder.length > MAX_ACCEPTED || acceptedBytes > MAX_ACCEPTED_BYTES) forget(acceptedOrder.shift());
}

// A token byte: not a space or control (which trim() would remove), ASCII.
function tokenByte(c: u8): bool {
  return c > 0x20 && c < 0x7f;
}

/** "Bearer <token>" (any case) with nothing around the token: then the token is the rest of the value as it is. */
function plainBearer(value: Uint8Array): bool {
  if (value.length <= 7 || value[6] != 0x20 || !tokenByte(value[7]) || !tokenByte(value[value.length - 1])) return false;
  for (let i = 0; i < 6; i++) if ((value[i] | 0x20) != "bearer".charCodeAt(i)) return false;
  return true;
}

// RFC 6750: no error code when the request carried no token at all.
function unauthorized(description: string | null): i32 {
  metrics.counter("jwt_rejected");
  const challenge = description === null ? "Bearer" : 'Bearer error="invalid_token", error_description="' + description + '"';
  respond(401, description === null ? "a bearer token is required\n" : description + "\n", [
    new Header("www-authenticate", challenge),
    new Header("content-type", "text/plain; charset=utf-8"),
  ]);
  return Continue;
}

function keyType(alg: string): string {
  if (alg == "RS256") return "RSA";
  if (alg == "ES256") return "EC";
  if (alg == "HS256") return "oct";
  return "OKP"; // EdDSA
}

/** Whether a configured key verifies the token's signature. */
function verified(s: Settings, token: Jws): bool {
  const alg = token.alg;
  const kid = token.kid;
  for (let i = 0; i < s.keys.length; i++) {
    const key = s.keys[i];
    const keyKid = key.getString("kid");
    const keyAlg = key.getString("alg");
    if (kid !== null && keyKid !== null && kid != keyKid) continue;
    if (keyAlg !== null && keyAlg != alg) continue;
    if (key.getString("kty") != keyType(alg)) continue;
    const result = jwt.verify(alg, key.raw(), token.signingInput, token.signature);
    if (result == jwt.VALID) return true;
    if (result == jwt.UNUSABLE_KEY) log.warn("jwt-auth: jwks key " + i.toString() + " cannot be used for " + alg + " (see the proxy log)");
  }
  return false;
}

function audienceAccepted(s: Settings, payload: Json): bool {
  if (s.audiences.length == 0) return true;
  const aud = payload.get("aud");
  if (aud === null) return false;
  if (aud.isString()) return s.audiences.includes(aud.str);
  for (let i = 0; i < aud.length; i++) if (aud.items[i].isString() && s.audiences.includes(aud.items[i].str)) return true;
  return false;
}

// In seconds; a token without exp (nbf) comes with Infinity (-Infinity): no limit on that side.
function timeProblem(s: Settings, exp: f64, nbf: f64): string | null {
  const seconds = <f64>now() / 1000;
  if (seconds - s.skewSeconds >= exp) return "the token has expired";
  if (seconds + s.skewSeconds < nbf) return "the token is not valid yet";
  return null;
}

/** Why the claims are not acceptable now, or null. */
function claimProblem(s: Settings, payload: Json): string | null {
  // A present exp or nbf that is not a number is never acceptable.
  const exp = payload.get("exp");
  const nbf = payload.get("nbf");
  const window = timeProblem(s, exp === null ? Infinity : exp.isNumber() ? exp.num : -Infinity, nbf === null ? -Infinity : nbf.isNumber() ? nbf.num : Infinity);
  if (window !== null) return window;
  const issuer = s.issuer;
  if (issuer !== null && payload.getString("iss") != issuer) return "the token's issuer is not accepted";
  if (!audienceAccepted(s, payload)) return "the token is not meant for this audience";
  return null;
}

/** A claim as a header value: strings as they are, lists of strings comma-separated, others as JSON. */
function headerValue(claim: Json): string {
  if (claim.isString()) return claim.str;
  if (claim.isArray()) {
    const parts = new Array<string>();
    for (let i = 0; i < claim.length; i++) parts.push(claim.items[i].toString());
    return parts.join(",");
  }
  return claim.raw();
}

function safeHeaderValue(value: string): bool {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    // Visible ASCII, space and tab only: anything else would be refused by the proxy (or, past
    // U+00FF, not survive the trip to the wire), so such a claim is left out.
    if ((c < 0x20 && c != 0x09) || c > 0x7e) return false;
  }
  return true;
}

/** Checks a token not seen before; what it sets when it is accepted, else null (after answering 401). */
function check(s: Settings, text: string): Accepted | null {
  const token = jwt.split(text);
  if (token === null) {
    unauthorized("the token is not a well-formed JWT");
    return null;
  }
  if (!s.algorithms.includes(token.alg)) {
    unauthorized("the token's signing algorithm is not accepted");
    return null;
  }
  if (!verified(s, token)) {
    unauthorized("the token's signature does not match any configured key");
    return null;
  }
  const problem = claimProblem(s, token.payload);
  if (problem !== null) {
    unauthorized(problem);
    return null;
  }
  const values = new Array<string | null>(s.claimHeaders.length);
  for (let i = 0; i < s.claimHeaders.length; i++) {
    const claim = token.payload.get(s.claimHeaders[i].claim);
    if (claim === null) continue;
    const value = headerValue(claim);
    if (safeHeaderValue(value)) values[i] = value;
  }
  const exp = token.payload.get("exp");
  const nbf = token.payload.get("nbf");
  return new Accepted(Uint8Array.wrap(String.UTF8.encode(text)), exp === null ? Infinity : exp.num, nbf === null ? -Infinity : nbf.num, values);
}

export function on_request_headers(): i32 {
  if (settings === null) settings = readSettings();
  const s = settings;
  if (s === null) return fail("jwt-auth: config.jwks.keys must hold at least one key");

  // The claim headers are cleared below, as the request goes on; a refused request goes nowhere.
  let value: Uint8Array | null = null;
  if (!s.claimsClearToken) value = request.headerBytes("authorization");
  let entry: Accepted | null = null;
  if (value !== null && plainBearer(value)) entry = recall(value, 7);
  if (entry !== null) {
    const problem = timeProblem(s, entry.exp, entry.nbf);
    if (problem !== null) return unauthorized(problem);
  } else {
    let authorization: string | null = null;
    if (value !== null) authorization = String.UTF8.decodeUnsafe(value.dataStart, value.length);
    if (authorization === null || authorization.length < 7 || authorization.substring(0, 7).toLowerCase() != "bearer ") {
      if (!s.allowMissing) return unauthorized(null);
      for (let i = 0; i < s.claimHeaders.length; i++) request.removeHeader(s.claimHeaders[i].header);
      return Continue;
    }
    entry = check(s, authorization.substring(7).trim());
    if (entry === null) return Continue;
    remember(entry);
  }

  // Removals first, so that when two claims name one header the last present claim wins.
  for (let i = 0; i < s.claimHeaders.length; i++) if (entry.values[i] === null) request.removeHeader(s.claimHeaders[i].header);
  for (let i = 0; i < s.claimHeaders.length; i++) {
    const value = entry.values[i];
    if (value !== null) request.setHeader(s.claimHeaders[i].header, value);
  }
  if (!s.forwardToken) request.removeHeader("authorization");
  metrics.counter("jwt_accepted");
  return Continue;
}
