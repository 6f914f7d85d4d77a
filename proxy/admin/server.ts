// The admin API on :15000 (Hono; not on the request path): readiness, Prometheus metrics,
// the configuration in force (secrets redacted), and configuration push.
import { Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Runtime, Server } from "../runtime/types.ts";
import type { ProxyConfig } from "../config/schema.ts";
import { ConfigError, parseConfig } from "../config/validate.ts";
import type { Sidecar } from "../sidecar/sidecar.ts";
import { APP_HEALTH_PREFIX, runAppProbe, type AppProbes } from "./app-health.ts";
import { isLoopbackIp } from "../http/loopback.ts";

const REDACTED = "[redacted]";

/** The configuration as /config_dump shows it: no private key (identity, SIMPLE listeners) leaves the process. */
export function redact(config: ProxyConfig): unknown {
  return {
    ...config,
    listeners: config.listeners.map((l) =>
      l.certificates ? { ...l, certificates: l.certificates.map((c) => ({ ...c, privateKey: REDACTED })) } : l,
    ),
    ...(config.identity ? { identity: { ...config.identity, privateKey: REDACTED } } : {}),
  };
}

export interface AdminOptions {
  /** The control plane that configures the sidecar, or null for one configured by file or PUT. */
  managedBy: string | null;
  /** The app's kubelet probes the injector pointed here (app-health.ts). */
  appProbes: AppProbes;
}

export function adminApp(sidecar: Sidecar, { managedBy, appProbes }: AdminOptions): Hono<{ Bindings: { peer: { address: string } } }> {
  const app = new Hono<{ Bindings: { peer: { address: string } } }>();
  app.get(`${APP_HEALTH_PREFIX}/:container/:kind`, async (c) => {
    const key = `${c.req.param("container")}/${c.req.param("kind")}`;
    const probe = appProbes[key];
    if (!probe) return c.text(`no app probe ${key}: the pod's injected probes are ${Object.keys(appProbes).join(", ") || "none"}\n`, 404);
    const { status, detail } = await runAppProbe(probe);
    // 2xx and 3xx pass as the kubelet counts them; answered 200 so the kubelet follows no redirect of the app's.
    return c.text(`${detail}\n`, (status < 400 ? 200 : status) as ContentfulStatusCode);
  });
  app.get("/ready", (c) =>
    sidecar.draining ? c.text("draining\n", 503) : sidecar.notReady ? c.text(`${sidecar.notReady}\n`, 503) : c.text("ready\n"),
  );
  app.get("/metrics", async (c) => {
    const text = await sidecar.telemetry.metricsText();
    return c.body(text, 200, { "content-type": sidecar.telemetry.contentType });
  });
  // The configuration in force, and whether each of its filters loaded (with the reason if not).
  app.get("/config_dump", (c) => {
    if (managedBy && !isLoopbackIp(c.env.peer.address)) {
      return c.text(
        `the configuration is shown on this pod's loopback only: kubectl port-forward POD 15000, then curl localhost:15000/config_dump\n`,
        403,
      );
    }
    return c.json({ ...(redact(sidecar.config) as object), filterStatus: sidecar.filters.status() });
  });
  // Push: what an operator uses to replace the configuration of a sidecar that has no control plane.
  app.put("/config", async (c) => {
    if (managedBy) {
      return c.text(
        `this sidecar is configured by the control plane at ${managedBy} only (what weft status shows must be what it runs): change the mesh's resources instead\n`,
        405,
        { allow: "GET" },
      );
    }
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return c.json({ error: "the body must be a JSON proxy configuration" }, 400);
    }
    try {
      const config = parseConfig(body, "PUT /config");
      await sidecar.apply(config);
      return c.json({ applied: config.version });
    } catch (e) {
      if (e instanceof ConfigError) return c.json({ error: e.message, problems: e.problems, kept: sidecar.config.version }, 400);
      return c.json({ error: (e as Error).message, kept: sidecar.config.version }, 500);
    }
  });
  app.notFound((c) =>
    c.text(`not found: the admin API serves /ready, /metrics, /config_dump, PUT /config and ${APP_HEALTH_PREFIX}/CONTAINER/KIND\n`, 404),
  );
  return app;
}

export function startAdmin(
  sidecar: Sidecar,
  runtime: Runtime,
  address: { address: string; port: number },
  options: AdminOptions,
): Promise<Server> {
  const app = adminApp(sidecar, options);
  return runtime.serveHttp(address, (request, peer) => app.fetch(request, { peer }));
}
