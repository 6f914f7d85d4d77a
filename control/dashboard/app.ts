// The dashboard the control plane serves under /dashboard/ (Hono): the page, its script and
// the state the script polls. Mount it on the API server with
// `routes: { "/dashboard/*": board.fetch }` and call board.stop() when the server closes.
import { Hono } from "hono";
import { graphOf, type Workload } from "./graph.ts";
import type { DashboardSource, DashboardState } from "./model.ts";
import { clientScript } from "./client.ts";
import { renderPage } from "./page.ts";
import { Scraper } from "./scraper.ts";

export const DASHBOARD_PATH = "/dashboard";

export interface DashboardOptions {
  /** How often each proxy's /metrics is scraped while the dashboard is open (default 2000). */
  scrapeIntervalMs?: number;
  /** The window for requests/s, error rate and p99 (default 60000, as Kiali's default 1m). */
  windowMs?: number;
  /** Per scrape (default: the interval, at most 1500). */
  scrapeTimeoutMs?: number;
  /** Scraping stops this long after the page or its state was last asked for (default 5 min). */
  idleAfterMs?: number;
  fetch?: typeof fetch;
}

export interface Dashboard {
  fetch(request: Request): Promise<Response>;
  /** Stops scraping. */
  stop(): void;
}

const SECURITY_HEADERS = {
  // Everything is served from here; nothing inline runs but the page's own style.
  "content-security-policy":
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

export function dashboard(source: DashboardSource, options: DashboardOptions = {}): Dashboard {
  const intervalMs = options.scrapeIntervalMs ?? 2000;
  const windowMs = options.windowMs ?? 60_000;
  const scraper = new Scraper(() => source.proxies(), {
    intervalMs,
    windowMs,
    timeoutMs: options.scrapeTimeoutMs ?? Math.min(intervalMs, 1500),
    idleAfterMs: options.idleAfterMs ?? 5 * 60_000,
    maxBytes: 32 * 1024 * 1024,
    concurrency: 32,
    fetch: options.fetch ?? fetch,
  });
  const script = clientScript(`${DASHBOARD_PATH}/api/state`, intervalMs);

  const state = async (): Promise<DashboardState> => {
    await scraper.fresh();
    const proxies = [...source.proxies()].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.pod.localeCompare(b.pod));
    // Callers seen only by the callee are named by their SPIFFE ID; several workloads
    // sharing one ServiceAccount cannot be told apart, so such an ID names none.
    const workloadOf = new Map<string, Workload>();
    const shared = new Set<string>();
    for (const p of proxies) {
      const id = p.certificate?.spiffeId;
      if (id === undefined) continue;
      const known = workloadOf.get(id);
      if (known !== undefined && (known.namespace !== p.namespace || known.name !== p.workload)) shared.add(id);
      else workloadOf.set(id, { namespace: p.namespace, name: p.workload });
    }
    for (const id of shared) workloadOf.delete(id);
    const { nodes, edges } = graphOf({
      windows: scraper.windows(),
      workloadOf,
      sidecars: proxies.map((p) => ({ namespace: p.namespace, name: p.workload })),
    });
    return {
      generatedAt: new Date().toISOString(),
      proxies: proxies.map((p) => {
        const { adminUrl, ...shown } = p;
        return { ...shown, scrape: scraper.status(p) };
      }),
      filters: [...source.filters()].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name)),
      nodes,
      edges,
    };
  };

  // strict: false: /dashboard and /dashboard/ are the same page.
  const app = new Hono({ strict: false }).basePath(DASHBOARD_PATH);
  app.get("/", async (c) => c.html(renderPage(await state(), DASHBOARD_PATH, windowMs / 1000), 200, SECURITY_HEADERS));
  app.get("/api/state", async (c) => c.json(await state(), 200, SECURITY_HEADERS));
  app.get("/app.js", (c) => c.body(script, 200, { ...SECURITY_HEADERS, "content-type": "text/javascript; charset=utf-8" }));
  app.notFound((c) =>
    c.text(`not found: the dashboard serves ${DASHBOARD_PATH}/, ${DASHBOARD_PATH}/api/state and ${DASHBOARD_PATH}/app.js\n`, 404),
  );
  app.onError((e, c) => c.json({ error: `the dashboard could not be built: ${e.message}` }, 500));
  return { fetch: async (request) => app.fetch(request), stop: () => scraper.stop() };
}
