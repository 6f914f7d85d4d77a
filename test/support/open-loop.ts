// An open-loop load generator for fault tests. Request i leaves at start + i / rate whatever
// happened to the requests before it: a closed loop (each client waits for its answer before
// sending again) slows down exactly when the proxy stalls, and so hides the requests a real
// caller would have sent meanwhile. If the event loop falls behind, the overdue requests go
// out together, as a caller's would. Requests use node:http with a keep-alive agent, as an
// app calls its sidecar. In-flight requests are bounded: a request due while the bound is
// reached is dropped (not sent, counted apart, as k6 counts dropped iterations), since waiting
// for a slot would close the loop; a stall of the machine is not a failed request. But a load
// that dropped much of itself did not test what it claims: assertLoad bounds both.
import http from "node:http";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";

export interface LoadRequest {
  path: string;
  host?: string;
  headers?: Record<string, string>;
}

export interface LoadReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface OpenLoopOptions {
  port: number;
  /** Requests per second. */
  rate: number;
  /** How many requests in all: the run lasts count / rate seconds. */
  count: number;
  /** What request i asks for, called as it is sent; default GET /. */
  request?: (i: number) => LoadRequest;
  /** Why a reply is wrong, or undefined when it is right; default: anything but 200 is wrong. */
  check?: (reply: LoadReply, i: number) => string | undefined;
  /** Default 128: half a second of requests at 250 per second. */
  maxInFlight?: number;
  /** A request with no complete answer after this long fails; default 10000 ms. */
  timeoutMs?: number;
}

export interface LoadResult {
  /** Requests sent: ok + failed. */
  sent: number;
  ok: number;
  failed: number;
  /** Requests that came due while maxInFlight were in flight, and were not sent. */
  dropped: number;
  /** Replies by HTTP status, right or wrong. */
  byStatus: Record<string, number>;
  /** Failed requests by reason: what `check` said, or the error code. */
  errors: Record<string, number>;
  /** The most a request went out behind its schedule, in ms: how long the process was too busy to send. */
  lateMs: number;
}

export interface OpenLoop {
  /** How many requests have come due so far. */
  due(): number;
  /** Resolves once `n` requests have come due, so that a fault can be placed in the load. */
  reached(n: number): Promise<void>;
  /** Resolves once the first `n` requests have all finished (answered, failed or dropped). */
  settled(n: number): Promise<void>;
  done: Promise<LoadResult>;
}

/** The default check: 200 is right; anything else fails with the proxy's reason, if it gave one. */
export function expectOk(reply: LoadReply): string | undefined {
  if (reply.status === 200) return undefined;
  const reason = reply.headers["x-weft-error"];
  return `status ${reply.status}${reason ? `: ${String(reason)}` : ""}`;
}

function reasonOf(error: Error): string {
  return (error as Error & { code?: string }).code ?? error.message;
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

export function openLoop(options: OpenLoopOptions): OpenLoop {
  const { port, rate, count } = options;
  const maxInFlight = options.maxInFlight ?? 128;
  const timeoutMs = options.timeoutMs ?? 10000;
  const check = options.check ?? expectOk;
  const agent = new http.Agent({ keepAlive: true, maxSockets: maxInFlight });
  const result: LoadResult = { sent: 0, ok: 0, failed: 0, dropped: 0, byStatus: {}, errors: {}, lateMs: 0 };
  let due = 0;
  let inFlight = 0;
  // Requests finish out of order: `finishedBelow` is the first one that has not finished yet.
  const finished: boolean[] = [];
  let finishedBelow = 0;
  const waiting: { ready: () => boolean; resolve: () => void }[] = [];

  const wake = () => {
    for (const w of waiting.filter((x) => x.ready())) {
      waiting.splice(waiting.indexOf(w), 1);
      w.resolve();
    }
  };
  const until = (ready: () => boolean) => (ready() ? Promise.resolve() : new Promise<void>((resolve) => waiting.push({ ready, resolve })));

  // A check that throws (a body that is not the JSON it expected) has found a wrong reply.
  const judge = (reply: LoadReply, i: number): string | undefined => {
    try {
      return check(reply, i);
    } catch (e) {
      return `the check threw: ${(e as Error).message}`;
    }
  };

  const finish = (i: number) => {
    finished[i] = true;
    while (finished[finishedBelow]) finishedBelow++;
    wake();
  };

  const send = (i: number): Promise<void> => {
    if (inFlight >= maxInFlight) {
      result.dropped++;
      finish(i);
      return Promise.resolve();
    }
    result.sent++;
    inFlight++;
    const spec = options.request?.(i) ?? { path: "/" };
    return new Promise<void>((resolve) => {
      let settled = false;
      const settle = (reason: string | undefined) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        inFlight--;
        if (reason === undefined) {
          result.ok++;
        } else {
          result.failed++;
          bump(result.errors, reason);
        }
        finish(i);
        resolve();
      };
      const headers = { ...spec.headers, ...(spec.host ? { host: spec.host } : {}) };
      const req = http.request({ host: "127.0.0.1", port, method: "GET", path: spec.path, headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const reply: LoadReply = { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() };
          bump(result.byStatus, String(reply.status));
          settle(judge(reply, i));
        });
        res.on("error", (e: Error) => settle(reasonOf(e)));
      });
      const timer = setTimeout(() => {
        settle(`no answer within ${timeoutMs} ms`);
        req.destroy();
      }, timeoutMs);
      req.on("error", (e: Error) => settle(reasonOf(e)));
      req.end();
    });
  };

  const done = new Promise<LoadResult>((resolve) => {
    const start = performance.now();
    const requests: Promise<void>[] = [];
    const tick = () => {
      const elapsed = performance.now() - start;
      const now = Math.min(count, Math.floor((elapsed * rate) / 1000) + 1);
      if (due < now) result.lateMs = Math.max(result.lateMs, Math.round(elapsed - (due * 1000) / rate));
      while (due < now) requests.push(send(due++));
      wake();
      if (due < count) {
        setTimeout(tick, Math.max(0, (due * 1000) / rate - (performance.now() - start)));
        return;
      }
      void Promise.all(requests).then(() => {
        agent.destroy();
        resolve(result);
      });
    };
    tick();
  });

  return {
    due: () => due,
    reached: (n) => until(() => due >= Math.min(n, count)),
    settled: (n) => until(() => finishedBelow >= Math.min(n, count)),
    done,
  };
}

/** How many requests of a load may fail, and how many may be dropped; each test says why its bounds are what they are. */
export interface LoadBounds {
  maxFailed: number;
  maxDropped: number;
}

/**
 * Fails, with the numbers, when more requests failed or were dropped than `bounds` allow. A
 * dropped request was never sent, so it neither passed nor failed: without a bound, a load
 * that sent a handful of its requests would pass.
 */
export function assertLoad(result: LoadResult, bounds: LoadBounds): void {
  const problems: string[] = [];
  if (result.failed > bounds.maxFailed) {
    problems.push(
      `${result.failed} of ${result.sent} requests sent failed, more than the ${bounds.maxFailed} allowed: ${JSON.stringify(result.errors)}`,
    );
  }
  if (result.dropped > bounds.maxDropped) {
    problems.push(
      `${result.dropped} of ${result.sent + result.dropped} requests were dropped (due while the in-flight limit was reached, never sent), ` +
        `more than the ${bounds.maxDropped} allowed; requests went out up to ${result.lateMs} ms late`,
    );
  }
  if (problems.length) assert.fail(`${problems.join("; ")}; replies by status: ${JSON.stringify(result.byStatus)}`);
}
