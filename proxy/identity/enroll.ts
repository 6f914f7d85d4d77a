// The proxy's side of certificate enrollment: make a P-256 key that never leaves the process,
// send a CSR with the ServiceAccount token to the control plane's CA (POST /v1/certificates),
// and renew before expiry. Runtime-neutral: WebCrypto and @peculiar/x509 for keys and the CSR,
// proxy/control/http.ts (node:https with the control plane's CA bundle, which works alike on
// Node, Deno and Bun, unlike fetch) for the request.
import { Buffer } from "node:buffer";
import type * as X509 from "@peculiar/x509";
import type { Identity } from "../config/schema.ts";
import { postJson, type ControlEndpoint } from "../control/http.ts";
import { createLogger, type Logger } from "../../shared/log.ts";
import { spiffeIdFromCertificate } from "./spiffe.ts";
import { x509 } from "./x509.ts";

export const ENROLLMENT_PATH = "/v1/certificates";
const P256: EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGNING: EcdsaParams = { name: "ECDSA", hash: "SHA-256" };
const DEFAULT_TIMEOUT_MS = 30_000;
// Renew somewhere in this share of the remaining lifetime, so that a fleet started together
// does not renew together, and a failed renewal has the rest of the lifetime for retries.
const RENEW_FROM = 0.5;
const RENEW_TO = 0.8;
// setTimeout fires at once for delays above 2^31-1 ms (about 24.8 days).
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The proxy's `identity` config, plus what enrollment learned about the certificate. */
export interface EnrolledIdentity extends Identity {
  /** The SPIFFE ID in the certificate (the CA sets it from the token). */
  spiffeId: string;
  notAfter: Date;
}

export interface EnrollOptions {
  /** The control plane: its base URL, the CA bundle its HTTPS certificate chains to, and the token (re-read per request). */
  endpoint: ControlEndpoint;
  /** The SPIFFE ID this proxy expects, put in the CSR for the record; the CA takes the identity from the token. */
  spiffeId?: string;
  /** For the whole request; default 30 s. */
  timeoutMs?: number;
}

export class EnrollmentError extends Error {
  override name = "EnrollmentError";
}

function pem(der: ArrayBuffer, tag: string): string {
  return x509.PemConverter.encode(der, tag) + "\n";
}

function certificates(text: string, field: string, where: string): X509.X509Certificate[] {
  const blocks = x509.PemConverter.decodeWithHeaders(text).filter((b) => b.type === "CERTIFICATE");
  if (blocks.length === 0) throw new EnrollmentError(`${where}: ${field} holds no PEM certificate`);
  return blocks.map((b) => new x509.X509Certificate(b.rawData));
}

/** Checks the answer before the proxy relies on it: our key, a chain that leads to the bundle, a SPIFFE ID. */
async function checkAnswer(
  answer: unknown,
  publicKey: CryptoKey,
  where: string,
): Promise<{ certificateChain: string; trustBundle: string; spiffeId: string; notAfter: Date }> {
  const { certificateChain, trustBundle } = (answer ?? {}) as { certificateChain?: unknown; trustBundle?: unknown };
  if (typeof certificateChain !== "string" || typeof trustBundle !== "string")
    throw new EnrollmentError(`${where}: the answer lacks certificateChain or trustBundle`);
  const chain = certificates(certificateChain, "certificateChain", where);
  const roots = certificates(trustBundle, "trustBundle", where);
  const leaf = chain[0];
  if (!Buffer.from(leaf.publicKey.rawData).equals(Buffer.from(await crypto.subtle.exportKey("spki", publicKey)))) {
    throw new EnrollmentError(`${where}: the certificate issued is not for the key this proxy sent`);
  }
  for (let i = 0; i < chain.length; i++) {
    const issuers = i + 1 < chain.length ? [chain[i + 1]] : roots;
    let signed = false;
    for (const issuer of issuers) if (await chain[i].verify({ publicKey: issuer.publicKey, signatureOnly: true })) signed = true;
    if (!signed)
      throw new EnrollmentError(
        `${where}: "${chain[i].subject || "the leaf"}" in certificateChain is not signed by ${i + 1 < chain.length ? "the next certificate" : "the trust bundle"}`,
      );
  }
  let spiffeId: string;
  try {
    spiffeId = spiffeIdFromCertificate(new Uint8Array(leaf.rawData));
  } catch (e) {
    throw new EnrollmentError(`${where}: ${(e as Error).message}`);
  }
  return { certificateChain, trustBundle, spiffeId, notAfter: leaf.notAfter };
}

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new EnrollmentError(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** One enrollment: a fresh key, a CSR, the certificate. Throws EnrollmentError or the HTTP error saying what went wrong. */
export async function enroll(options: EnrollOptions): Promise<EnrolledIdentity> {
  const where = `POST ${new URL(ENROLLMENT_PATH, options.endpoint.base).href}`;
  const keys = (await crypto.subtle.generateKey(P256, true, ["sign", "verify"])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: SIGNING,
    extensions: options.spiffeId ? [new x509.SubjectAlternativeNameExtension([{ type: "url", value: options.spiffeId }])] : [],
  });
  const answer = await withTimeout(
    postJson(options.endpoint, ENROLLMENT_PATH, { csr: csr.toString("pem") }),
    options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    where,
  );
  const checked = await checkAnswer(answer, keys.publicKey, where);
  return { ...checked, privateKey: pem(await crypto.subtle.exportKey("pkcs8", keys.privateKey), "PRIVATE KEY") };
}

export interface RenewalOptions extends EnrollOptions {
  /** The identity in use now; its expiry sets the first renewal. */
  current: EnrolledIdentity;
  /** Puts a renewed identity to use; if it throws, the renewal counts as failed and is retried. */
  onRenewed: (identity: EnrolledIdentity) => void | Promise<void>;
  log?: Logger;
  /** First retry after a failure; doubles per failure up to maxBackoffMs (each jittered). Defaults 1 s, 60 s. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** For tests: the source of jitter, in [0, 1). */
  random?: () => number;
}

export interface Renewal {
  /** The identity most recently put to use. */
  readonly current: EnrolledIdentity;
  /** No further renewals; one in flight is discarded. */
  stop(): void;
}

/**
 * Renews `current` at a random point between 50% and 80% of its remaining lifetime, then the
 * renewed one likewise. A failed renewal is retried with jittered exponential backoff while the
 * certificate is still valid, and after it expired too (the proxy needs one all the more), at
 * error level then.
 */
export function startRenewal(options: RenewalOptions): Renewal {
  const log = options.log ?? createLogger({ component: "enroll" });
  const random = options.random ?? Math.random;
  const minBackoff = options.minBackoffMs ?? 1000;
  const maxBackoff = options.maxBackoffMs ?? 60_000;
  let current = options.current;
  let failures = 0;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const schedule = (ms: number) => {
    if (!stopped) timer = setTimeout(attempt, Math.min(Math.max(0, ms), MAX_TIMER_MS));
  };
  const renewalDelay = (identity: EnrolledIdentity) =>
    (identity.notAfter.getTime() - Date.now()) * (RENEW_FROM + (RENEW_TO - RENEW_FROM) * random());

  const attempt = async () => {
    try {
      const next = await enroll(options);
      if (stopped) return;
      await options.onRenewed(next);
      current = next;
      failures = 0;
      log.info("renewed workload certificate", { spiffeId: next.spiffeId, notAfter: next.notAfter.toISOString() });
      schedule(renewalDelay(next));
    } catch (e) {
      if (stopped) return;
      failures++;
      const retryInMs = Math.round(Math.min(maxBackoff, minBackoff * 2 ** (failures - 1)) * (0.5 + 0.5 * random()));
      const expired = current.notAfter.getTime() <= Date.now();
      log[expired ? "error" : "warn"]("workload certificate renewal failed", {
        error: (e as Error).message,
        failures,
        retryInMs,
        [expired ? "expiredAt" : "expiresAt"]: current.notAfter.toISOString(),
      });
      schedule(retryInMs);
    }
  };

  schedule(renewalDelay(current));
  return {
    get current() {
      return current;
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
