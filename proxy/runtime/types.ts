// The only surface through which the proxy touches the network. Each runtime has one
// adapter implementing it; everything else in proxy/ is runtime-neutral.
import type { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";

interface ServerTlsBase {
  alpn: string[];
  /** Told of every connection refused before a request could be read (a failed handshake, plaintext to STRICT/SIMPLE). */
  onRefused?: (reason: TlsRefusal, detail: string) => void;
}

/** Mesh mTLS with the workload's identity: clients present a certificate the trust bundle verifies. */
export interface MeshServerTls extends ServerTlsBase {
  certificateChain: string;
  privateKey: string;
  trustBundle: string;
  /** STRICT: only TLS with a client certificate; PERMISSIVE: TLS or plaintext on one port. */
  mode: "STRICT" | "PERMISSIVE";
}

/** A certificate a SIMPLE server presents to the clients whose SNI it lists. */
export interface ServerCertificate {
  /** Exact names, or "*.example.com" for one label; none: a default (see SimpleServerTls). */
  hostnames: readonly string[];
  certificateChain: string;
  privateKey: string;
}

/**
 * One-way TLS (Istio's SIMPLE): the server presents a certificate of its own, asks for none, and
 * refuses plaintext. The certificate is the one whose hostnames hold the client's SNI exactly, then
 * by a wildcard, else the first without hostnames, else the first.
 */
export interface SimpleServerTls extends ServerTlsBase {
  mode: "SIMPLE";
  certificates: readonly ServerCertificate[];
}

export type ServerTlsOptions = MeshServerTls | SimpleServerTls;

/** Why a server refused a connection at the TLS layer. */
export type TlsRefusal =
  | "plaintext"
  | "no_certificate"
  | "certificate_expired"
  | "certificate_not_yet_valid"
  | "untrusted_certificate"
  | "handshake";

export interface ClientTlsOptions {
  certificateChain: string;
  privateKey: string;
  trustBundle: string;
  servername?: string;
  alpn: string[];
  /**
   * Returns an error message when the server's leaf certificate (DER) is not acceptable. Resumable
   * sessions are kept per verifyPeer function, so pass the same function for the same expectation
   * (verifyPeerIdentity returns one per list of identities).
   */
  verifyPeer: (leafDer: Uint8Array) => string | undefined;
}

export interface TlsInfo {
  alpn: string | null;
  /** DER of the peer's leaf certificate, when it presented one. */
  peerCertificate: Uint8Array | null;
  /**
   * The handshake resumed a TLS session instead of verifying certificates again. peerCertificate is
   * then the one verified when the session was made (node-tls.ts, "Sessions"). Absent: not known.
   */
  resumed?: boolean;
}

/** A byte stream with callbacks, shaped for a parser that consumes chunks as they come. */
export interface Conn {
  onData: (chunk: Buffer) => void;
  /** The peer finished sending (half-close). */
  onEnd: () => void;
  /**
   * Whether our side stays open after onEnd, so a reply to a half-closed request still goes back
   * (opaque TCP). False (the default, what HTTP wants): our side ends once onEnd has run. Every
   * accepted connection can stay half-open; an upstream one only if made with `halfOpen`.
   */
  halfOpen: boolean;
  onClose: (error?: Error) => void;
  onDrain: () => void;
  /** Returns false when the caller should wait for onDrain before writing more. */
  write(chunk: Uint8Array | string): boolean;
  end(): void;
  destroy(): void;
  pause(): void;
  resume(): void;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localPort: number;
  readonly tls: TlsInfo | null;
  readonly closed: boolean;
  /**
   * Hands the connection, and `leftover` bytes already read from it, to code built on
   * node:http2 (which every supported runtime provides): `take` receives the socket, and
   * the callbacks above stop firing.
   */
  handOver(take: (socket: Duplex) => void, leftover: Buffer | null): void;
}

export interface ListenOptions {
  address: string;
  port: number;
  tls?: ServerTlsOptions;
}

export interface ConnectOptions {
  address: string;
  port: number;
  /** The connection may stay half-open (Conn.halfOpen): opaque TCP to an upstream. */
  halfOpen?: boolean;
  timeoutMs: number;
  tls?: ClientTlsOptions;
}

export interface Server {
  readonly port: number;
  /** Stops accepting; existing connections are left to their owners. */
  close(): Promise<void>;
  /** Replaces the certificate, key and trust bundle for new handshakes: prepareTls(tls)(). */
  updateTls?(tls: ServerTlsOptions): void;
  /**
   * Checks new TLS options and builds what they need, changing nothing (it throws when they are not
   * usable); the function it returns puts them in force for new handshakes. Lets a configuration
   * check every listener's TLS before it switches any.
   */
  prepareTls?(tls: ServerTlsOptions): () => void;
}

/** `peer` is the client's address, for handlers that serve some paths to loopback only. */
export type FetchHandler = (request: Request, peer: { address: string }) => Response | Promise<Response>;

export interface Runtime {
  readonly name: "node" | "deno" | "bun";
  listen(options: ListenOptions, onConnection: (conn: Conn) => void): Promise<Server>;
  connect(options: ConnectOptions): Promise<Conn>;
  /** A fetch-style HTTP server for the admin API (served by Hono), not the fast path. */
  serveHttp(options: { address: string; port: number }, handler: FetchHandler): Promise<Server>;
}
