// The dashboard's HTML fragments from its state: the traffic graph (SVG), the proxies and
// the WasmFilters. The server renders the first page with them and the browser redraws with
// the very same functions (client.ts sends their source), so both always agree.
//
// Hence the rules here: plain function declarations that use only each other and the
// language's built-ins (no imports but types, no module-level constants), and every text
// from the state goes through escapeHtml: names come from users' YAML.
import type { DashboardState, EdgeView, NodeView, ProxyRow } from "./model.ts";

export function escapeHtml(text: string): string {
  return String(text).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
}

export function formatRate(perSecond: number | null): string {
  if (perSecond === null) return "–";
  return perSecond >= 10 ? perSecond.toFixed(1) : perSecond.toFixed(2);
}

export function formatShare(share: number | null): string {
  return share === null ? "–" : (share * 100).toFixed(1) + "%";
}

export function formatMs(ms: number | null): string {
  if (ms === null) return "–";
  return ms >= 10 ? String(Math.round(ms)) + " ms" : ms.toFixed(1) + " ms";
}

/** "in 23 h", "in 40 min", "in 3 d", "expired 2 h ago", relative to the state's time (not the browser's clock). */
export function formatExpiry(notAfter: string, now: string): string {
  const ms = Date.parse(notAfter) - Date.parse(now);
  if (Number.isNaN(ms)) return "unknown";
  const abs = Math.abs(ms);
  const span =
    abs >= 48 * 3600000
      ? Math.floor(abs / 86400000) + " d"
      : abs >= 3600000
        ? Math.floor(abs / 3600000) + " h"
        : Math.floor(abs / 60000) + " min";
  return ms >= 0 ? "in " + span : "expired " + span + " ago";
}

/** What the proxy runs, as `weft status` says it. */
export function proxyState(p: ProxyRow): string {
  if (p.rejected) return "rejected";
  if (p.acked === null) return "applying";
  return p.acked === p.version ? "running" : "updating";
}

/** Columns by distance from the callers (bounded, so cycles end), rows by name. */
export function layoutGraph(nodes: NodeView[], edges: EdgeView[]): Record<string, { x: number; y: number }> {
  const rank: Record<string, number> = {};
  for (const n of nodes) rank[n.id] = 0;
  for (let pass = 0; pass < nodes.length; pass++) {
    let moved = false;
    for (const e of edges) {
      const next = rank[e.source] + 1;
      if (e.source !== e.destination && rank[e.destination] < next && next < nodes.length) {
        rank[e.destination] = next;
        moved = true;
      }
    }
    if (!moved) break;
  }
  const rows: Record<number, number> = {};
  const at: Record<string, { x: number; y: number }> = {};
  for (const n of nodes) {
    const column = rank[n.id];
    const row = rows[column] || 0;
    rows[column] = row + 1;
    // Room between columns for an edge's label.
    at[n.id] = { x: 20 + column * 520, y: 30 + row * 110 };
  }
  return at;
}

export function renderGraph(state: DashboardState): string {
  const width = 190;
  const height = 46;
  if (state.nodes.length === 0) return '<p class="empty">No workloads yet: no proxy is known to the control plane.</p>';
  const at = layoutGraph(state.nodes, state.edges);
  let maxX = 0;
  let maxY = 0;
  for (const id in at) {
    maxX = Math.max(maxX, at[id].x + width);
    maxY = Math.max(maxY, at[id].y + height);
  }
  // Nodes first: edge labels go on top of anything they overlap.
  const parts: string[] = [];
  for (const n of state.nodes) {
    const p = at[n.id];
    parts.push(
      `<g class="node${n.sidecar ? "" : " node-external"}" data-node="${escapeHtml(n.id)}"><title>${escapeHtml(n.id + (n.sidecar ? "" : " (no sidecar known)"))}</title>` +
        `<rect x="${p.x}" y="${p.y}" width="${width}" height="${height}" rx="6"/>` +
        `<text class="name" x="${p.x + width / 2}" y="${p.y + 20}" text-anchor="middle">${escapeHtml(n.name)}</text>` +
        `<text class="ns" x="${p.x + width / 2}" y="${p.y + 36}" text-anchor="middle">${escapeHtml(n.namespace === "unknown" ? "no identity" : n.namespace)}</text></g>`,
    );
  }
  for (const e of state.edges) {
    const a = at[e.source];
    const b = at[e.destination];
    let d: string;
    let lx: number;
    let ly: number;
    if (e.source === e.destination) {
      d = `M${a.x + width} ${a.y + 12} C${a.x + width + 70} ${a.y - 30} ${a.x + width + 70} ${a.y + height + 30} ${a.x + width} ${a.y + height - 12}`;
      lx = a.x + width + 60;
      ly = a.y + height + 30;
    } else if (b.x > a.x) {
      const x1 = a.x + width;
      const y1 = a.y + height / 2;
      const x2 = b.x - 4;
      const y2 = b.y + height / 2;
      const bend = (x2 - x1) / 2;
      d = `M${x1} ${y1} C${x1 + bend} ${y1} ${x2 - bend} ${y2} ${x2} ${y2}`;
      lx = (x1 + x2) / 2;
      ly = (y1 + y2) / 2 - 8;
    } else {
      // Back to an earlier column (or the same one): around underneath.
      const x1 = a.x + width / 2 + 10;
      const y1 = a.y + height;
      const x2 = b.x + width / 2 - 10;
      const y2 = b.y + height + 4;
      const low = Math.max(y1, y2) + 50;
      d = `M${x1} ${y1} C${x1} ${low} ${x2} ${low} ${x2} ${y2}`;
      lx = (x1 + x2) / 2;
      ly = low - 4;
    }
    maxX = Math.max(maxX, lx + 120);
    maxY = Math.max(maxY, ly + 20);
    const health = e.errorRate === null ? "idle" : e.errorRate >= 0.05 ? "bad" : e.errorRate > 0 ? "warn" : "ok";
    const label = `${formatRate(e.requestsPerSecond)} req/s · ${formatShare(e.errorRate)} err · p99 ${formatMs(e.p99Ms)}`;
    const title = `${e.source} → ${e.destination} (${e.services.join(", ")}): ${e.requestsTotal} requests counted by the ${e.reporters.join(" and ")} proxy`;
    parts.push(
      `<g class="edge edge-${health}" data-edge="${escapeHtml(e.id)}" data-requests-total="${e.requestsTotal}" data-rps="${e.requestsPerSecond ?? ""}" data-error-rate="${e.errorRate ?? ""}" data-p99-ms="${e.p99Ms ?? ""}" data-window-seconds="${e.windowSeconds ?? ""}" data-reporters="${escapeHtml(e.reporters.join(","))}">` +
        `<title>${escapeHtml(title)}</title><path d="${d}" marker-end="url(#arrow)"/>` +
        `<text x="${lx}" y="${ly}" text-anchor="middle">${escapeHtml(label)}</text></g>`,
    );
  }
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${maxX + 20}" height="${maxY + 20}" role="img" aria-label="traffic between workloads">` +
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z"/></marker></defs>' +
    parts.join("") +
    "</svg>" +
    (state.edges.length === 0 ? '<p class="empty">No traffic seen yet.</p>' : "")
  );
}

export function renderProxies(state: DashboardState): string {
  if (state.proxies.length === 0) return '<p class="empty">No proxies are connected to the control plane.</p>';
  const rows = state.proxies.map((p) => {
    const status = proxyState(p);
    const config =
      status === "rejected" && p.rejected
        ? `<span class="bad">rejected ${escapeHtml(p.rejected.version)}: ${escapeHtml(p.rejected.error)}</span>` +
          (p.acked ? ` (runs ${escapeHtml(p.acked)})` : "")
        : escapeHtml(status);
    const filters =
      p.filters.length === 0
        ? "–"
        : p.filters
            .map((f) => `<code title="${escapeHtml(f.sha256)}">${escapeHtml(f.name)}@${escapeHtml(f.sha256.slice(0, 12))}</code>`)
            .join(" ");
    const cert = p.certificate
      ? `<span title="${escapeHtml(p.certificate.spiffeId)}">${escapeHtml(formatExpiry(p.certificate.notAfter, state.generatedAt))}</span> <small>${escapeHtml(p.certificate.notAfter)}</small>`
      : "–";
    const scrape =
      p.scrape.state === "ok"
        ? "ok"
        : `<span class="${p.scrape.state === "pending" ? "" : "bad"}">${escapeHtml(p.scrape.state)}</span>` +
          (p.scrape.error ? ` <small>${escapeHtml(p.scrape.error)}</small>` : "") +
          (p.scrape.lastSuccess ? ` <small>(last scraped ${escapeHtml(p.scrape.lastSuccess)})</small>` : "");
    return (
      `<tr data-proxy="${escapeHtml(p.namespace + "/" + p.pod)}" data-version="${escapeHtml(p.version ?? "")}" data-acked="${escapeHtml(p.acked ?? "")}" data-state="${escapeHtml(status)}" data-scrape="${escapeHtml(p.scrape.state)}">` +
      `<td data-field="pod">${escapeHtml(p.namespace)}/${escapeHtml(p.pod)}</td><td data-field="workload">${escapeHtml(p.workload)}</td>` +
      `<td data-field="version"><code>${escapeHtml(p.version ?? "–")}</code></td><td data-field="state">${config}</td>` +
      `<td data-field="filters">${filters}</td><td data-field="certificate">${cert}</td><td data-field="metrics">${scrape}</td></tr>`
    );
  });
  return (
    "<table><thead><tr><th>Pod</th><th>Workload</th><th>Config version</th><th>State</th><th>Filters</th><th>Certificate expires</th><th>Metrics</th></tr></thead><tbody>" +
    rows.join("") +
    "</tbody></table>"
  );
}

export function renderFilters(state: DashboardState): string {
  if (state.filters.length === 0) return '<p class="empty">No WasmFilters.</p>';
  const rows = state.filters.map((f) => {
    const conditions = f.conditions
      .map(
        (c) =>
          `<span class="cond cond-${escapeHtml(c.status)}" data-condition="${escapeHtml(c.type)}" data-status="${escapeHtml(c.status)}" title="${escapeHtml(c.reason + ": " + c.message)}">${escapeHtml(c.type)}` +
          (c.status === "True" ? "" : `: ${escapeHtml(c.reason)} <small>${escapeHtml(c.message)}</small>`) +
          "</span>",
      )
      .join(" ");
    return (
      `<tr data-filter="${escapeHtml(f.namespace + "/" + f.name)}" data-ready="${escapeHtml(f.ready)}" data-sha256="${escapeHtml(f.sha256 ?? "")}">` +
      `<td data-field="name">${escapeHtml(f.namespace)}/${escapeHtml(f.name)}</td><td data-field="url"><code>${escapeHtml(f.url)}</code></td>` +
      `<td data-field="ready">${escapeHtml(f.ready)}</td><td data-field="sha256">${f.sha256 ? `<code title="${escapeHtml(f.sha256)}">${escapeHtml(f.sha256.slice(0, 12))}</code>` : "–"}</td>` +
      `<td data-field="conditions">${conditions || "–"}</td></tr>`
    );
  });
  return (
    "<table><thead><tr><th>WasmFilter</th><th>URL</th><th>Ready</th><th>Resolved digest</th><th>Conditions</th></tr></thead><tbody>" +
    rows.join("") +
    "</tbody></table>"
  );
}
