// mTLS for the node:net adapter, on node:tls. Deno 2 and Bun implement node:tls too; what each
// runtime can and cannot do here was measured and is recorded in docs/runtimes.md ("TLS") and in
// TLS_GAPS below, which makes listenTls/connectTls refuse at start-up rather than run insecurely.
//
// Server: a net.Server peeks at the first byte of each connection. A TLS ClientHello (0x16) goes
// to a non-listening tls.Server that requires a client certificate and verifies it against the
// trust bundle (both modes); anything else is delivered as plaintext in PERMISSIVE and closed in
// STRICT. Measured: this costs the same as listening with the tls.Server directly, on all three
// runtimes, and it lets updateTls swap everything (mode included) without touching the port.
// Client: the server's chain is verified against the trust bundle only, and its identity by the
// caller's verifyPeer (SPIFFE ID), never by hostname.
import net from "node:net";
import tls from "node:tls";
import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import type { Buffer } from "node:buffer";
import type { ClientTlsOptions, Conn, ConnectOptions, ListenOptions, Server, ServerTlsOptions, TlsInfo, TlsRefusal } from "./types.ts";
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
 * feature the adapter uses works (test/tls.test.ts proves each one on all three). A gap found
 * later goes here, so that the proxy refuses at start-up with a clear message.
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
 * Validates the PEM material up front and returns the secure-context options. The runtimes'
 * own checks differ (Deno's tls.createSecureContext accepts a mismatched key or garbage PEM and
 * fails only at handshake time; Node ignores an unparsable CA), so this parses everything itself.
 */
function checkMaterial(side: "server" | "client", options: ServerTlsOptions | ClientTlsOptions): tls.SecureContextOptions {
  const what = side === "server" ? "server TLS" : "client TLS";
  if (!options.certificateChain?.includes(PEM_CERT))
    throw new Error(`${what}: certificateChain must be PEM with at least one CERTIFICATE block`);
  if (!PEM_KEY.test(options.privateKey ?? ""))
    throw new Error(`${what}: privateKey must be a PEM private key (PKCS#8 "PRIVATE KEY", or "EC/RSA PRIVATE KEY")`);
  if (!options.trustBundle?.includes(PEM_CERT)) throw new Error(`${what}: trustBundle must be PEM with at least one CA CERTIFICATE block`);
  const [leaf] = parseCertificates(options.certificateChain, `${what} certificateChain`);
  parseCertificates(options.trustBundle, `${what} trustBundle`);
  let key: KeyObject;
  try {
    key = createPrivateKey(options.privateKey);
  } catch (e) {
    throw new Error(`${what}: privateKey does not parse: ${(e as Error).message}`);
  }
  if (!leaf.checkPrivateKey(key))
    throw new Error(`${what}: privateKey does not match the first certificate of certificateChain (the leaf)`);
  const material: tls.SecureContextOptions = {
    cert: options.certificateChain,
    key: options.privateKey,
    ca: options.trustBundle,
    minVersion: "TLSv1.2",
  };
  try {
    tls.createSecureContext(material);
  } catch (e) {
    throw new Error(`${what}: the certificate, key or trust bundle is not usable: ${(e as Error).message}`);
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
  return { alpn: socket.alpnProtocol || null, peerCertificate: raw && raw.length > 0 ? raw : null };
}

/** The first byte of every TLS connection: a handshake record (ClientHello). */
const TLS_HANDSHAKE = 0x16;
/**
 * When a client sends nothing for this long: PERMISSIVE treats it as plaintext (a
 * server-speaks-first protocol; the proxy's own idle timeouts apply from then on), STRICT closes it.
 */
export const PEEK_TIMEOUT_MS = 5000;

export async function listenTls(options: ListenOptions, tlsOptions: ServerTlsOptions, onConnection: (c: Conn) => void): Promise<Server> {
  // Everything is validated before the port opens, and again before an update takes effect.
  const makeTlsServer = (next: ServerTlsOptions): tls.Server => {
    if (next.mode !== "STRICT" && next.mode !== "PERMISSIVE") {
      throw new Error(`server TLS: mode must be STRICT or PERMISSIVE, got ${JSON.stringify(next.mode)}`);
    }
    assertTlsSupported("server", next.mode);
    const server = tls.createServer({
      ...checkMaterial("server", next),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: alpnOption(next.alpn),
    });
    server.on("secureConnection", (socket: tls.TLSSocket) => onConnection(wrapSocket(socket, tlsInfoOf(socket))));
    // Failed handshakes (no/untrusted/expired client certificate, garbage): the socket is
    // already destroyed and nothing reaches the proxy, but the sidecar counts them.
    server.on("tlsClientError", (error: Error & { code?: string }, socket?: tls.TLSSocket) => {
      // Node and Deno verify the client's chain and then hang up: the verdict is on the socket.
      const verdict = socket?.authorizationError;
      const detail = `${verdict ? `${String(verdict)}: ` : ""}${error.code ?? ""} ${error.message}`.trim();
      next.onRefused?.(refusalOf(detail), detail);
    });
    return server;
  };
  // The tls.Server never listens: the net.Server below peeks at each connection and hands TLS
  // ones to whichever tls.Server is current, so an update swaps the whole configuration for new
  // connections at once, and handshakes already under way finish with the one they started on.
  const state: SniffState = { tls: makeTlsServer(tlsOptions), mode: tlsOptions.mode, onRefused: tlsOptions.onRefused };
  const listener = net.createServer({ noDelay: true }, (socket) => sniff(socket, state, onConnection));
  await listening(listener, options);
  const address = listener.address();
  return {
    port: typeof address === "object" && address ? address.port : 0,
    close: () => new Promise<void>((resolve) => listener.close(() => resolve())),
    /** Replaces certificate, key, trust bundle, and also mode and ALPN, for new connections. */
    updateTls(next: ServerTlsOptions) {
      const server = makeTlsServer(next); // throws on bad input: the current one stays
      state.tls = server;
      state.mode = next.mode;
      state.onRefused = next.onRefused;
    },
  };
}

interface SniffState {
  tls: tls.Server;
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
    if (state.mode === "STRICT") {
      socket.destroy(); // STRICT: mTLS only
      state.onRefused?.("plaintext", "a connection that does not start with a TLS handshake");
      return;
    }
    socket.off("error", ignore);
    const conn = wrapSocket(socket, null);
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

export async function connectTls(options: ConnectOptions, tlsOptions: ClientTlsOptions): Promise<Conn> {
  assertTlsSupported("client");
  const material = checkMaterial("client", tlsOptions);
  if (typeof tlsOptions.verifyPeer !== "function")
    throw new Error("client TLS: verifyPeer is required (servers are verified by SPIFFE ID, not hostname)");
  const target = `${options.address}:${options.port}`;
  return new Promise((resolve, reject) => {
    let peerCertificate: Uint8Array | null = null;
    let identityError: Error | undefined;
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    const socket = tls.connect({
      ...material,
      host: options.address,
      port: options.port,
      servername: tlsOptions.servername,
      ALPNProtocols: alpnOption(tlsOptions.alpn),
      rejectUnauthorized: true,
      // Runs after the chain verified against the trust bundle; replaces the hostname check.
      checkServerIdentity: (_host, cert) => {
        const raw = cert.raw as Buffer | undefined;
        if (!raw || raw.length === 0) return (identityError = peerIdentityError(target, "the server presented no certificate"));
        peerCertificate = raw;
        let problem: string | undefined;
        try {
          problem = tlsOptions.verifyPeer(raw);
        } catch (e) {
          problem = `verifyPeer threw: ${(e as Error).message}`;
        }
        return problem === undefined ? undefined : (identityError = peerIdentityError(target, problem));
      },
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
      settled = true;
      clearTimeout(timer);
      socket.off("error", onError);
      if (!peerCertificate) peerCertificate = (socket.getPeerCertificate().raw as Buffer | undefined) ?? null;
      resolve(wrapSocket(socket, { alpn: socket.alpnProtocol || null, peerCertificate }));
    });
  });
}

function peerIdentityError(target: string, problem: string): Error {
  return Object.assign(new Error(`TLS connect to ${target}: server identity rejected: ${problem}`), { code: "ERR_WEFT_PEER_IDENTITY" });
}
