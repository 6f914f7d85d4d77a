// Scrapes every proxy's /metrics at a fixed interval, but only while someone is looking at
// the dashboard: a control plane for thousands of sidecars should not poll them all every
// 2 s for a page nobody has open. Each proxy's scrapes go into its traffic window (never the
// raw text), which is forgotten when the dashboard goes idle.
import { readBoundedText } from "../api/body.ts";
import type { ProxyView, ScrapeView } from "./model.ts";
import { parseExposition } from "./prometheus.ts";
import { isTrafficMetric, trafficOf } from "./traffic.ts";
import { TrafficWindow, type WindowSummary } from "./window.ts";

export interface ScraperOptions {
  intervalMs: number;
  /** How long scrapes are kept for rates, error rates and latency. */
  windowMs: number;
  /** Per scrape. */
  timeoutMs: number;
  /** Scraping stops this long after the dashboard was last asked for its state. */
  idleAfterMs: number;
  /** A larger /metrics answer is refused. */
  maxBytes: number;
  /** Scrapes in flight at once. */
  concurrency: number;
  fetch: typeof fetch;
}

interface Target {
  window: TrafficWindow;
  state: ScrapeView["state"];
  error?: string;
  lastSuccess?: number;
}

const keyOf = (p: ProxyView) => `${p.namespace}/${p.pod}`;

function describe(e: unknown, timeoutMs: number): string {
  const error = e as Error & { cause?: { code?: string; message?: string } };
  if (error.name === "TimeoutError") return `no answer within ${timeoutMs} ms`;
  const cause = error.cause?.code ?? error.cause?.message;
  return cause ? `${error.message} (${cause})` : error.message;
}

export class Scraper {
  readonly #proxies: () => ProxyView[];
  readonly #options: ScraperOptions;
  readonly #targets = new Map<string, Target>();
  readonly #abort = new AbortController();
  #wantedUntil = 0;
  #round: Promise<void> | null = null;
  #completedAt = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;

  constructor(proxies: () => ProxyView[], options: ScraperOptions) {
    this.#proxies = proxies;
    this.#options = options;
  }

  /**
   * Keeps scraping for the next idleAfterMs. When the last scrape is older than an interval
   * (the dashboard was idle), waits for a new one so that the caller sees current numbers.
   */
  async fresh(): Promise<void> {
    if (this.#abort.signal.aborted) return;
    this.#wantedUntil = Date.now() + this.#options.idleAfterMs;
    if (this.#round === null && this.#timer === null) this.#start();
    if (this.#round !== null && Date.now() - this.#completedAt > this.#options.intervalMs) await this.#round;
  }

  /** Each proxy's traffic in the window. */
  windows(): WindowSummary[] {
    const now = Date.now();
    return [...this.#targets.values()].map((t) => t.window.summary(now));
  }

  status(proxy: ProxyView): ScrapeView {
    const t = this.#targets.get(keyOf(proxy));
    if (t === undefined) return { state: proxy.adminUrl ? "pending" : "no metrics address" };
    return {
      state: t.state,
      ...(t.error !== undefined ? { error: t.error } : {}),
      ...(t.lastSuccess !== undefined ? { lastSuccess: new Date(t.lastSuccess).toISOString() } : {}),
    };
  }

  stop(): void {
    this.#abort.abort();
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #start(): void {
    this.#timer = null;
    const started = Date.now();
    this.#round = this.#scrapeAll().finally(() => {
      this.#round = null;
      this.#completedAt = Date.now();
      if (this.#abort.signal.aborted) return;
      if (Date.now() >= this.#wantedUntil) {
        // Idle: what is kept would be stale by the next look, and memory for nothing meanwhile.
        this.#targets.clear();
        return;
      }
      this.#timer = setTimeout(() => this.#start(), Math.max(0, started + this.#options.intervalMs - Date.now()));
      // An open dashboard must not keep a stopping control plane alive.
      this.#timer.unref?.();
    });
  }

  async #scrapeAll(): Promise<void> {
    const proxies = this.#proxies();
    const listed = new Set(proxies.map(keyOf));
    for (const key of this.#targets.keys()) if (!listed.has(key)) this.#targets.delete(key);
    const queue = [...proxies];
    const worker = async () => {
      for (let p = queue.shift(); p !== undefined; p = queue.shift()) await this.#scrape(p);
    };
    await Promise.all(Array.from({ length: Math.min(this.#options.concurrency, queue.length) }, worker));
  }

  async #scrape(proxy: ProxyView): Promise<void> {
    const key = keyOf(proxy);
    let target = this.#targets.get(key);
    if (target === undefined) this.#targets.set(key, (target = { window: new TrafficWindow(this.#options.windowMs), state: "pending" }));
    const { timeoutMs, maxBytes } = this.#options;
    if (!proxy.adminUrl) {
      target.state = "no metrics address";
      return;
    }
    const url = `${proxy.adminUrl.replace(/\/+$/, "")}/metrics`;
    let text: string | null;
    try {
      const response = await this.#options.fetch(url, { signal: AbortSignal.any([this.#abort.signal, AbortSignal.timeout(timeoutMs)]) });
      if (!response.ok) {
        await response.body?.cancel();
        throw new Error(`answered HTTP ${response.status}`);
      }
      text = await readBoundedText(response, maxBytes);
    } catch (e) {
      if (this.#abort.signal.aborted) return;
      target.state = "unreachable";
      target.error = `GET ${url}: ${describe(e, timeoutMs)}`;
      return;
    }
    const at = Date.now();
    try {
      if (text === null) throw new Error(`the answer is larger than ${maxBytes} bytes`);
      target.window.add(at, trafficOf(parseExposition(text, isTrafficMetric)));
    } catch (e) {
      target.state = "unreadable";
      target.error = `GET ${url}: ${(e as Error).message}`;
      return;
    }
    target.state = "ok";
    target.lastSuccess = at;
    delete target.error;
  }
}
