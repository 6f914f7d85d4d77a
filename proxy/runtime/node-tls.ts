// mTLS for the node:net adapter, on node:tls. Deno 2 and Bun implement node:tls too; what each
// runtime can and cannot do here was measured and is recorded in docs/runtimes.md ("TLS") and in
// TLS_GAPS below, which makes listenTls/connectTls refuse at start-up rather than run insecurely.
//
// Server: a net.Server peeks at the first byte of each connection. A TLS ClientHello (0x16) goes
// to a non-listening tls.Server that requires a client certificate and verifies it against the
// trust bundle (both modes); anything else is delivered as plaintext in PERMISSIVE and closed in
// STRICT. Measured: this costs the same as listening with the tls.Server directly, on all three
// runtimes, and it lets updateTls swap everything (mode included) without touching the port.
// SIMPLE (a gateway's one-way TLS) shares the peek: its tls.Server asks for no client certificate,
// presents the listener's own certificates chosen by SNI (SNICallback), and plaintext is closed.
// Client: the server's chain is verified against the trust bundle only, and its identity by the
// caller's verifyPeer (SPIFFE ID), never by hostname.
//
// Reuse: the material (certificate chain, key, trust bundle) is validated once, and the client's
// tls.SecureContext built once, per material (materialOf): doing both on every connect cost 1.3
// ms of CPU per connect on Node, 1.8 ms on Deno, 0.3 ms on Bun (medians). A tls.Server is
// replaced only when its material or ALPN changes, so its session ticket keys survive a
// configuration pushed again. Clients resume TLS 1.3 sessions ("Sessions" below);
// docs/design/tls-sessions.md has the measurements and the runtimes' quirks.
import net from "node:net";
import tls from "node:tls";
import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import { Buffer } from "node:buffer";
import type {
  ClientTlsOptions,
  Conn,
  ConnectOptions,
  ListenOptions,
  MeshServerTls,
  Server,
  ServerCertificate,
  ServerTlsOptions,
  TlsInfo,
  TlsRefusal,
} from "./types.ts";
import { listening, wrapSocket } from "./node.ts";
import { currentRuntime, type RuntimeName } from "./current.ts";

export { currentRuntime, type RuntimeName } from "./current.ts";

/** Something a runtime cannot do through node:tls, found by experiment (see docs/runtimes.md). */
export interface TlsGap {
  runtime: RuntimeName;
  side: "server" | "client";
  /** Only for these server modes; all when absent. */
  modes?: ServerTlsOptions["mode"][];
  feature: string;
  workaround: string;
}

/**
 * Gaps on the runtimes weft supports. Empty: on Node 24.21, Deno 2.9.6 and Bun 1.4.5 every
 * feature the adapter uses works (test/tls.test.ts and test/listener-tls.test.ts prove each one on
 * all three). A gap found later goes here, so that the proxy refuses at start-up with a clear
 * message. One limit is not refused, as it costs only rare clients a handshake: Deno's SNICallback
 * never answers a ClientHello over 4096 bytes read at once, so a SIMPLE listener sets it only when
 * it has more than one certificate (makeSimpleServer; docs/runtimes.md, "TLS").
 */
export const TLS_GAPS: readonly TlsGap[] = [];

/** Throws when the running runtime has a gap for this side/mode. */
export function assertTlsSupported(side: "server" | "client", mode?: ServerTlsOptions["mode"], gaps: readonly TlsGap[] = TLS_GAPS): void {
  const runtime = currentRuntime();
  const gap = gaps.find(
    (g) => g.runtime === runtime.name && g.side === side && (!g.modes || (mode !== undefined && g.modes.includes(mode))),
  );
  if (gap) {
    throw new Error(
      `weft: mTLS ${side}${mode ? ` (${mode})` : ""} is not supported on ${runtime.name} ${runtime.version}: ` +
        `${gap.feature} does not work through node:tls there. Workaround: ${gap.workaround}`,
    );
  }
}

const PEM_CERT = "-----BEGIN CERTIFICATE-----";
const PEM_CERT_BLOCKS = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const PEM_KEY = /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/;

function parseCertificates(pem: string, what: string): X509Certificate[] {
  return (pem.match(PEM_CERT_BLOCKS) ?? []).map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (e) {
      throw new Error(`${what}: certificate #${i + 1} does not parse: ${(e as Error).message}`);
    }
  });
}

/**
 * Checks a certificate chain and its private key (PEM) up front; `what` names them in messages. The
 * runtimes' own checks differ (Deno's tls.createSecureContext accepts a mismatched key or garbage PEM
 * and fails only at handshake time; Node ignores an unparsable CA), so this parses everything itself.
 */
function checkKeyPair(what: string, certificateChain: string | undefined, privateKey: string | undefined): void {
  const [leaf] = certificateChain?.includes(PEM_CERT) ? parseCertificates(certificateChain, `${what} certificateChain`) : [];
  if (!leaf) throw new Error(`${what}: certificateChain must be PEM with at least one CERTIFICATE block`);
  if (!PEM_KEY.test(privateKey ?? ""))
    throw new Error(`${what}: privateKey must be a PEM private key (PKCS#8 "PRIVATE KEY", or "EC/RSA PRIVATE KEY")`);
  let key: KeyObject;
  try {
    key = createPrivateKey(privateKey!);
  } catch (e) {
    throw new Error(`${what}: privateKey does not parse: ${(e as Error).message}`);
  }
  if (!leaf.checkPrivateKey(key))
    throw new Error(
      `${what}: privateKey does not match the first certificate of certificateChain (the leaf): give the key that certificate was issued for`,
    );
}

/** Validates a mesh identity's material up front (checkKeyPair) and returns the secure-context options. */
function checkMaterial(side: "server" | "client", options: MeshServerTls | ClientTlsOptions): tls.SecureContextOptions {
  const what = side === "server" ? "server TLS" : "client TLS";
  checkKeyPair(what, options.certificateChain, options.privateKey);
  if (!options.trustBundle?.includes(PEM_CERT)) throw new Error(`${what}: trustBundle must be PEM with at least one CA CERTIFICATE block`);
  parseCertificates(options.trustBundle, `${what} trustBundle`);
  return { cert: options.certificateChain, key: options.privateKey, ca: options.trustBundle, minVersion: "TLSv1.2" };
}

/**
 * Builds what the runtime builds from the material (a secure context, a tls.Server), saying so when
 * the runtime refuses what checkMaterial let through (tls.createServer throws where
 * tls.createSecureContext does, on each runtime, so a server needs no context built to check).
 */
function usable<T>(side: "server" | "client", build: () => T): T {
  try {
    return build();
  } catch (e) {
    throw new Error(`${side} TLS: the certificate, key or trust bundle is not usable: ${(e as Error).message}`);
  }
}

/** A map that keeps its `limit` most recently used entries. */
class Recent<K, V> {
  private readonly entries = new Map<K, V>();
  private readonly limit: number;
  constructor(limit: number) {
    this.limit = limit;
  }
  get(key: K): V | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }
  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    if (this.entries.size > this.limit) this.entries.delete(this.entries.keys().next().value!);
  }
  /** Deletes the entry only while it is still `value` (a concurrent connect may have replaced it). */
  forget(key: K, value: V): void {
    if (this.entries.get(key) === value) this.entries.delete(key);
  }
}

/** One identity's material, validated, with what its connects share. */
interface Material {
  /** For tls.createSecureContext and tls.createServer. */
  options: tls.SecureContextOptions;
  /** The client side's context, built at the first connect. */
  context: tls.SecureContext | null;
  /** Resumable client sessions, by sessionKey. A new material starts without any. */
  sessions: Recent<string, Session>;
}

/**
 * A sidecar has one identity at a time (inbound and outbound alike); a few more let the previous
 * one serve connects already under way during a rotation, and tests use several. An evicted
 * material takes its sessions with it: a rotated identity or trust bundle never resumes one.
 */
const MATERIALS = 4;
/** Per material: one per endpoint and expected identity the sidecar talks to. */
const SESSIONS = 1024;
const materials = new Recent<string, Material>(MATERIALS);

function materialOf(side: "server" | "client", options: MeshServerTls | ClientTlsOptions): Material {
  // The three PEM strings are the key: the sidecar hands over new objects (a spread per connect, a
  // parsed identity per configuration push) around the same text.
  const key = `${options.certificateChain}\0${options.privateKey}\0${options.trustBundle}`;
  let material = materials.get(key);
  if (!material) {
    material = { options: checkMaterial(side, options), context: null, sessions: new Recent(SESSIONS) };
    materials.set(key, material);
  }
  return material;
}

function alpnOption(alpn: string[]): string[] | undefined {
  return alpn.length > 0 ? alpn : undefined;
}

/**
 * DER of the peer's leaf, by the cheaper call on each runtime. Measured per call on an established
 * socket (noisy 2-core machine, 4 runs): getPeerCertificate() vs getPeerX509Certificate().raw:
 * Node 24 31-36 vs 4.5-11 us; Deno 19-74 vs 10-43 us (X509 faster in 3 of 4 runs); Bun 13-45 vs 40-95 us.
 */
const peerDer: (socket: tls.TLSSocket) => Buffer | undefined =
  currentRuntime().name === "bun"
    ? (socket) => socket.getPeerCertificate().raw as Buffer | undefined
    : (socket) => socket.getPeerX509Certificate()?.raw;

function tlsInfoOf(socket: tls.TLSSocket): TlsInfo {
  const raw = peerDer(socket);
  return { alpn: socket.alpnProtocol || null, peerCertificate: raw && raw.length > 0 ? raw : null, resumed: socket.isSessionReused() };
}

/** The first byte of every TLS connection: a handshake record (ClientHello). */
const TLS_HANDSHAKE = 0x16;
/**
 * When a client sends nothing for this long: PERMISSIVE treats it as plaintext (a
 * server-speaks-first protocol; the proxy's own idle timeouts apply from then on), STRICT and
 * SIMPLE close it.
 */
export const PEEK_TIMEOUT_MS = 5000;

/**
 * How long a server's session tickets may be resumed: Node's default, set so that Bun uses it too
 * (Deno's server keeps sessions its own way: RESUMES_ACROSS_SERVERS). It bounds how long a session
 * outlives what a full handshake would check again (a client certificate that expires in the
 * meantime is still resumed until then).
 */
const SESSION_LIFETIME_S = 300;

type Refused = NonNullable<ServerTlsOptions["onRefused"]>;

export async function listenTls(options: ListenOptions, tlsOptions: ServerTlsOptions, onConnection: (c: Conn) => void): Promise<Server> {
  // Read at each refusal, so that a kept tls.Server reports to the latest configuration's callback.
  const refused: Refused = (reason, detail) => state.onRefused?.(reason, detail);
  // Everything is validated before the port opens, and again before an update takes effect.
  const configure = (next: ServerTlsOptions, current: SniffState | null): SniffState => {
    if (!SERVER_MODES.includes(next.mode)) {
      throw new Error(
        `server TLS: mode must be STRICT or PERMISSIVE (mesh mTLS), or SIMPLE (the listener's own certificates), got ${JSON.stringify(next.mode)}`,
      );
    }
    assertTlsSupported("server", next.mode);
    const alpn = JSON.stringify(next.alpn);
    const material = next.mode === "SIMPLE" ? null : materialOf("server", next);
    const served = next.mode === "SIMPLE" ? servedOf(next.certificates, current?.served ?? null) : null;
    // The same material or certificates, and ALPN (the same identity in a configuration pushed
    // again): the tls.Server stays, and with it its session ticket keys, so clients keep resuming.
    const keep = current && current.material === material && current.served === served && current.alpn === alpn;
    let server: tls.Server;
    if (keep) server = current.tls;
    else if (served) server = makeSimpleServer(served, next.alpn, refused, onConnection);
    else server = makeTlsServer(material!, next.alpn, refused, onConnection);
    return { tls: server, material, served, alpn, mode: next.mode, onRefused: next.onRefused };
  };
  // The tls.Server never listens: the net.Server below peeks at each connection and hands TLS
  // ones to whichever tls.Server is current, so an update swaps the whole configuration for new
  // connections at once, and handshakes already under way finish with the one they started on.
  const state = configure(tlsOptions, null);
  // Not half-open while peeking and handshaking, so a peer that ends then is closed at once; a
  // delivered connection is, as node.ts's are (halfOpen below).
  const listener = net.createServer({ noDelay: true }, (socket) => sniff(socket, state, onConnection));
  await listening(listener, options);
  const address = listener.address();
  /** Replaces certificates, key, trust bundle, and also mode and ALPN, for new connections. */
  const prepareTls = (next: ServerTlsOptions) => {
    const configured = configure(next, state); // throws on bad input: the current one stays
    return () => void Object.assign(state, configured);
  };
  return {
    port: typeof address === "object" && address ? address.port : 0,
    close: () => new Promise<void>((resolve) => listener.close(() => resolve())),
    prepareTls,
    updateTls: (next) => prepareTls(next)(),
  };
}

/**
 * A delivered socket may stay half-open (Conn.halfOpen; wrapSocket ends it after the peer's
 * otherwise). The runtimes read allowHalfOpen when the peer's end arrives, so setting it now counts.
 */
function halfOpen<T extends net.Socket>(socket: T): T {
  socket.allowHalfOpen = true;
  return socket;
}

// tls.connect takes net.connect's allowHalfOpen (it makes the TLSSocket with it), which
// @types/node's ConnectionOptions leaves out.
const halfOpenOption = (allowHalfOpen: boolean) => ({ allowHalfOpen }) as tls.ConnectionOptions;

const SERVER_MODES: readonly ServerTlsOptions["mode"][] = ["STRICT", "PERMISSIVE", "SIMPLE"];

function makeTlsServer(material: Material, alpn: string[], refused: Refused, onConnection: (c: Conn) => void): tls.Server {
  const server = usable("server", () =>
    tls.createServer({
      ...material.options,
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: alpnOption(alpn),
      sessionTimeout: SESSION_LIFETIME_S,
    }),
  );
  const verified = RESUMES_ACROSS_SERVERS ? verifiedClientsOf(material.options.ca as string) : null;
  server.on("secureConnection", (socket: tls.TLSSocket) => {
    const info = tlsInfoOf(socket);
    const problem = verified && resumptionProblem(socket, info, verified);
    if (problem) {
      socket.destroy();
      refused(refusalOf(problem), problem);
      return;
    }
    onConnection(wrapSocket(halfOpen(socket), info));
  });
  reportFailedHandshakes(server, refused);
  return server;
}

/**
 * Failed handshakes (no/untrusted/expired client certificate, a client that does not trust a SIMPLE
 * server's certificate, garbage, a handshake not finished in time): nothing reaches the proxy, but
 * the sidecar counts them.
 */
function reportFailedHandshakes(server: tls.Server, refused: Refused): void {
  server.on("tlsClientError", (error: Error & { code?: string }, socket?: tls.TLSSocket) => {
    // A failed handshake has destroyed its socket already, but a timed-out one (handshakeTimeout,
    // 120 s: a client that stalls in its ClientHello) is left open on all three runtimes once a
    // tlsClientError listener exists (measured): it would hold its file descriptor for good.
    socket?.destroy();
    // Node and Deno verify the client's chain and then hang up: the verdict is on the socket.
    const verdict = socket?.authorizationError;
    const detail = `${verdict ? `${String(verdict)}: ` : ""}${error.code ?? ""} ${error.message}`.trim();
    refused(refusalOf(detail), detail);
  });
}

// ---- SIMPLE: the listener's own certificates, chosen by SNI ----------------------------------

/** A SIMPLE server's certificates, checked, with a secure context each for the SNICallback. */
interface Served {
  /** Their hostnames and PEM text: an update with the same keeps this object and its tls.Server. */
  key: string;
  /** The tls.Server's own certificate: presented without SNI, or for a name no certificate lists. */
  fallback: tls.SecureContextOptions;
  /** By lower-case name, the first certificate that lists it. */
  exact: Map<string, tls.SecureContext>;
  /** By what "*." stands for ("example.com" for "*.example.com"), the first certificate that lists it. */
  wildcard: Map<string, tls.SecureContext>;
  /** By certificate chain and key: an update reuses these, checked and built, for the certificates it keeps. */
  contexts: Map<string, tls.SecureContext>;
}

function servedOf(certificates: readonly ServerCertificate[], current: Served | null): Served {
  const key = JSON.stringify(certificates.map((c) => [c.hostnames, c.certificateChain, c.privateKey]));
  if (current?.key === key) return current;
  const fallback = certificates.find((c) => c.hostnames.length === 0) ?? certificates[0];
  if (!fallback) throw new Error("server TLS: SIMPLE needs at least one certificate (certificates is empty)");
  const served: Served = {
    key,
    fallback: { cert: fallback.certificateChain, key: fallback.privateKey, minVersion: "TLSv1.2" },
    exact: new Map(),
    wildcard: new Map(),
    contexts: new Map(),
  };
  for (const [i, c] of certificates.entries()) {
    const pem = `${c.certificateChain}\0${c.privateKey}`;
    let context = served.contexts.get(pem) ?? current?.contexts.get(pem);
    if (!context) {
      checkKeyPair(
        `server TLS certificates[${i}]${c.hostnames.length ? ` (${c.hostnames.join(", ")})` : ""}`,
        c.certificateChain,
        c.privateKey,
      );
      context = usable("server", () => tls.createSecureContext({ cert: c.certificateChain, key: c.privateKey, minVersion: "TLSv1.2" }));
    }
    served.contexts.set(pem, context);
    for (const hostname of c.hostnames) {
      const name = hostname.toLowerCase();
      const [names, at] = name.startsWith("*.") ? [served.wildcard, name.slice(2)] : [served.exact, name];
      if (!names.has(at)) names.set(at, context);
    }
  }
  return served;
}

/** The context for a client's SNI (SimpleServerTls's rules); undefined: the tls.Server's own, the fallback. */
function contextFor(served: Served, servername: string): tls.SecureContext | undefined {
  // Node and Bun hand over the name as the client sent it; Deno lower-cased, without a trailing dot,
  // and "" when there is none (Node and Bun do not call without one). DNS names ignore case.
  let name = typeof servername === "string" ? servername.toLowerCase() : "";
  if (name.endsWith(".")) name = name.slice(0, -1);
  const exact = served.exact.get(name);
  if (exact) return exact;
  const dot = name.indexOf(".");
  // A wildcard stands for one whole label: not for none (".example.com"), nor for two ("a.b.example.com").
  return dot > 0 ? served.wildcard.get(name.slice(dot + 1)) : undefined;
}

function makeSimpleServer(served: Served, alpn: string[], refused: Refused, onConnection: (c: Conn) => void): tls.Server {
  // Only when there is a choice to make: Deno's SNICallback never answers a ClientHello of more than
  // 4096 bytes that arrives in one read (docs/runtimes.md, "TLS"), its plain server does.
  const SNICallback: tls.TlsOptions["SNICallback"] = (servername, callback) => callback(null, contextFor(served, servername));
  const server = usable("server", () =>
    tls.createServer({
      ...served.fallback,
      ALPNProtocols: alpnOption(alpn),
      sessionTimeout: SESSION_LIFETIME_S,
      ...(served.contexts.size > 1 ? { SNICallback } : {}),
    }),
  );
  server.on("secureConnection", (socket: tls.TLSSocket) => {
    // No client certificate is asked for, so none counts: one a resumed session carries (Deno resumes
    // sessions of any tls.Server of the process, RESUMES_ACROSS_SERVERS) makes no mesh peer here.
    onConnection(
      wrapSocket(halfOpen(socket), { alpn: socket.alpnProtocol || null, peerCertificate: null, resumed: socket.isSessionReused() }),
    );
  });
  reportFailedHandshakes(server, refused);
  return server;
}

/**
 * Deno's node:tls server resumes a session on any tls.Server of the process, whatever that
 * server's trust bundle or certificate (measured on 2.9.6 with Node and Bun clients, and no server
 * option changes it); Node and Bun keep session tickets per tls.Server. So on Deno a resumed
 * session is delivered only when its client certificate was verified, in a full handshake in this
 * process, against the trust bundle now in force, and has not expired since.
 */
const RESUMES_ACROSS_SERVERS = currentRuntime().name === "deno";
/** Per trust bundle (as many as there are materials). */
const VERIFIED_CLIENTS = 4096;
/** Trust bundle -> client leaves verified against it (DER as latin1) -> their notAfter (ms). */
const verifiedClients = new Recent<string, Recent<string, number>>(MATERIALS);

function verifiedClientsOf(trustBundle: string): Recent<string, number> {
  let verified = verifiedClients.get(trustBundle);
  if (!verified) verifiedClients.set(trustBundle, (verified = new Recent(VERIFIED_CLIENTS)));
  return verified;
}

/** Why a connection must not be delivered (a resumed one the trust bundle in force never verified), or undefined. */
function resumptionProblem(socket: tls.TLSSocket, info: TlsInfo, verified: Recent<string, number>): string | undefined {
  const der = info.peerCertificate;
  if (!der) return "a TLS session with no certificate from the client";
  const key = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString("latin1");
  if (!info.resumed) {
    verified.set(key, Date.parse(socket.getPeerX509Certificate()?.validTo ?? ""));
    return undefined;
  }
  const notAfter = verified.get(key);
  if (notAfter === undefined) return "a resumed TLS session whose client certificate was not verified against the current trust bundle";
  // NaN (an unreadable validity) refuses too.
  if (!(notAfter > Date.now())) return "a resumed TLS session whose client certificate has expired since it was verified";
  return undefined;
}

interface SniffState {
  tls: tls.Server;
  /** What `tls` was built from (mesh material, or SIMPLE certificates): an update with the same keeps it. */
  material: Material | null;
  served: Served | null;
  alpn: string;
  mode: ServerTlsOptions["mode"];
  onRefused: ServerTlsOptions["onRefused"];
}

/** The reason for a failed handshake, from the runtime's words for it (their codes and messages differ). */
function refusalOf(text: string): TlsRefusal {
  if (/did not return a certificate|DID_NOT_RETURN_A_CERTIFICATE|no certificate/i.test(text)) return "no_certificate";
  if (/not yet valid|NOT_YET_VALID/i.test(text)) return "certificate_not_yet_valid";
  if (/expired/i.test(text)) return "certificate_expired";
  if (/certificate|unknown ca|verify|ISSUER|SELF_SIGNED/i.test(text)) return "untrusted_certificate";
  return "handshake";
}

function sniff(socket: net.Socket, state: SniffState, onConnection: (c: Conn) => void): void {
  // Errors before the hand-over (reset during the peek) must not crash the process; for TLS
  // connections the TLSSocket reports errors, this listener stays as a safety net.
  const ignore = () => {};
  socket.on("error", ignore);
  const plaintext = () => {
    if (state.mode !== "PERMISSIVE") {
      socket.destroy(); // STRICT: mTLS only; SIMPLE: TLS only
      state.onRefused?.("plaintext", "a connection that does not start with a TLS handshake");
      return;
    }
    socket.off("error", ignore);
    const conn = wrapSocket(halfOpen(socket), null);
    socket.resume(); // flows from the next tick: onConnection can still pause it
    onConnection(conn);
  };
  const timer = setTimeout(() => {
    socket.off("data", onFirst);
    plaintext();
  }, PEEK_TIMEOUT_MS);
  const onFirst = (first: Buffer) => {
    clearTimeout(timer);
    socket.pause();
    socket.unshift(first);
    if (first[0] === TLS_HANDSHAKE) state.tls.emit("connection", socket);
    else plaintext();
  };
  socket.once("data", onFirst);
  socket.once("close", () => clearTimeout(timer));
}

// ---- Sessions -------------------------------------------------------------------------------
// A client keeps the latest TLS 1.3 session ticket per endpoint, server name and verifyPeer (the
// expected identity), under its material, and offers it on the next connect there. A resumed
// handshake verifies no certificate: the server proves it holds a session made with a server whose
// chain and identity were verified then. Node neither runs checkServerIdentity nor shows the
// peer's certificate on a resumed session (Bun does both; Deno's client never resumes), so the
// session keeps the leaf verified when it was made, verifyPeer checks it again, and the connection
// reports it as its peer. Node and Bun resume a session whatever the trust bundle of the context
// it is offered with: keeping sessions under their material is what makes a new trust bundle (a
// new material) verify the server again.

interface Session {
  ticket: Buffer;
  /** The server's leaf, verified (chain and verifyPeer) in the full handshake that made the session. */
  peerCertificate: Uint8Array;
  /** That leaf's notAfter (ms): a resumed handshake checks no validity, so the session is not offered past it. */
  notAfter: number;
}

const verifierIds = new WeakMap<ClientTlsOptions["verifyPeer"], number>();
let verifierCount = 0;

/** The endpoint and the expected identity, which a verifyPeer function stands for. */
function sessionKey(tlsOptions: ClientTlsOptions, target: string): string {
  let id = verifierIds.get(tlsOptions.verifyPeer);
  if (id === undefined) verifierIds.set(tlsOptions.verifyPeer, (id = verifierCount++));
  return `${id} ${tlsOptions.servername ?? ""} ${target}`;
}

export async function connectTls(options: ConnectOptions, tlsOptions: ClientTlsOptions): Promise<Conn> {
  assertTlsSupported("client");
  const material = materialOf("client", tlsOptions);
  const secureContext = (material.context ??= usable("client", () => tls.createSecureContext(material.options)));
  if (typeof tlsOptions.verifyPeer !== "function")
    throw new Error("client TLS: verifyPeer is required (servers are verified by SPIFFE ID, not hostname)");
  const target = `${options.address}:${options.port}`;
  const key = sessionKey(tlsOptions, target);
  let offered = material.sessions.get(key);
  if (offered && !(offered.notAfter > Date.now())) {
    material.sessions.forget(key, offered);
    offered = undefined;
  }
  return new Promise((resolve, reject) => {
    let verified: { der: Uint8Array; notAfter: number } | null = null;
    /** The last session this connection stored. */
    let stored: Session | undefined;
    let identityError: Error | undefined;
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (offered) material.sessions.forget(key, offered);
      reject(error);
    };
    const check = (der: Uint8Array): Error | undefined => {
      let problem: string | undefined;
      try {
        problem = tlsOptions.verifyPeer(der);
      } catch (e) {
        problem = `verifyPeer threw: ${(e as Error).message}`;
      }
      return problem === undefined ? undefined : peerIdentityError(target, problem);
    };
    const socket = tls.connect({
      secureContext,
      session: offered?.ticket,
      host: options.address,
      port: options.port,
      servername: tlsOptions.servername,
      ALPNProtocols: alpnOption(tlsOptions.alpn),
      ...halfOpenOption(options.halfOpen === true),
      rejectUnauthorized: true,
      // Runs after the chain verified against the trust bundle; replaces the hostname check.
      checkServerIdentity: (_host, cert) => {
        const raw = cert.raw as Buffer | undefined;
        if (!raw || raw.length === 0) return (identityError = peerIdentityError(target, "the server presented no certificate"));
        identityError = check(raw);
        if (!identityError) verified = { der: raw, notAfter: Date.parse(cert.valid_to) };
        return identityError;
      },
    });
    // TLS 1.3 tickets arrive after the handshake (on resumed connections too); each replaces the last.
    socket.on("session", (ticket: Buffer) => {
      if (!verified) return;
      stored = { ticket, peerCertificate: verified.der, notAfter: verified.notAfter };
      material.sessions.set(key, stored);
    });
    const timer = setTimeout(() => {
      fail(
        Object.assign(new Error(`TLS connect to ${target} timed out after ${options.timeoutMs} ms (TCP connect and handshake)`), {
          code: "ETIMEDOUT",
        }),
      );
    }, options.timeoutMs);
    const onError = (e: Error & { code?: string }) => {
      // The runtime reports our checkServerIdentity error; rethrow our own object, whatever it kept.
      if (identityError) return fail(identityError);
      fail(
        Object.assign(new Error(`TLS connect to ${target} failed: ${e.code ? `${e.code}: ` : ""}${e.message}`, { cause: e }), {
          code: e.code,
        }),
      );
    };
    socket.once("error", onError);
    socket.once("secureConnect", () => {
      if (settled) return;
      const resumed = socket.isSessionReused();
      if (!verified) {
        // Resumed on Node: the identity the offered session was made with is checked again.
        if (!resumed || !offered) return fail(peerIdentityError(target, "the handshake verified no server certificate"));
        const error = check(offered.peerCertificate);
        if (error) return fail(error);
        verified = { der: offered.peerCertificate, notAfter: offered.notAfter };
      }
      settled = true;
      clearTimeout(timer);
      socket.off("error", onError);
      if (resumed) {
        forgetIfUnanswered(socket, () => {
          for (const session of [offered, stored]) if (session) material.sessions.forget(key, session);
        });
      }
      resolve(wrapSocket(socket, { alpn: socket.alpnProtocol || null, peerCertificate: verified.der, resumed }));
    });
  });
}

/**
 * A server that refuses a resumed session after the handshake (a Deno one whose trust bundle
 * changed since: RESUMES_ACROSS_SERVERS) closes the connection without a byte of answer, maybe
 * after a new ticket for the same session. `forget` then drops both, so that the next connect makes
 * a full handshake instead of failing the same way. (A connection handed to node:http2 on Node or
 * Deno emits no "data" either: it loses its session when it closes, which costs one full handshake.)
 */
function forgetIfUnanswered(socket: tls.TLSSocket, forget: () => void): void {
  socket.once("close", forget);
  socket.once("data", () => socket.off("close", forget));
}

function peerIdentityError(target: string, problem: string): Error {
  return Object.assign(new Error(`TLS connect to ${target}: server identity rejected: ${problem}`), { code: "ERR_WEFT_PEER_IDENTITY" });
}
