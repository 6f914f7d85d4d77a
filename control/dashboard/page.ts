// The dashboard's HTML page, rendered with the current state so that it shows everything
// before (and without) its script, which then keeps it current.
import type { DashboardState } from "./model.ts";
import { escapeHtml, renderFilters, renderGraph, renderProxies } from "./render.ts";

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 24px 24px; color: #1d2430; background: #f7f8fa; }
header { display: flex; align-items: baseline; gap: 16px; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
#status { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #e3e6eb; }
#status.live { background: #d5f2dc; } #status.bad, .bad { color: #a4161a; }
#status.bad { background: #fde2e1; }
.meta { color: #667; font-size: 12px; }
#graph { background: #fff; border: 1px solid #dde; border-radius: 6px; overflow: auto; padding: 8px; }
.node rect { fill: #eaf1fb; stroke: #3a6fb0; stroke-width: 1.5; }
.node-external rect { fill: #f3f3f3; stroke: #888; stroke-dasharray: 4 3; }
.node .name { font-weight: 600; font-size: 13px; } .node .ns { fill: #667; font-size: 11px; }
.edge path { fill: none; stroke: #4a8f4f; stroke-width: 2; }
.edge text { font-size: 12px; fill: #1d2430; paint-order: stroke; stroke: #fff; stroke-width: 4px; }
.edge-warn path { stroke: #c98a00; } .edge-bad path { stroke: #c0392b; } .edge-idle path { stroke: #9aa; stroke-dasharray: 5 4; }
marker path { fill: #555; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e4e6ea; vertical-align: top; }
th { background: #eef0f3; font-weight: 600; }
code { font-size: 12px; } small { color: #667; }
.cond { display: inline-block; margin: 0 6px 2px 0; padding: 1px 6px; border-radius: 4px; }
.cond-True { background: #d5f2dc; } .cond-False { background: #fde2e1; } .cond-Unknown { background: #eee; }
.empty { color: #667; }
`;

/** `base` is where the dashboard is mounted, e.g. "/dashboard". */
export function renderPage(state: DashboardState, base: string, windowSeconds: number): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>weft mesh dashboard</title>
<style>${STYLE}</style>
</head>
<body data-generated-at="${escapeHtml(state.generatedAt)}">
<header><h1>weft mesh</h1><span id="status">loaded</span><span class="meta">state of <span id="updated">${escapeHtml(state.generatedAt)}</span>; rates over the last ${windowSeconds} s</span></header>
<h2>Traffic</h2>
<div id="graph">${renderGraph(state)}</div>
<h2>Proxies</h2>
<div id="proxies">${renderProxies(state)}</div>
<h2>WasmFilters</h2>
<div id="filters">${renderFilters(state)}</div>
<script src="${escapeHtml(base)}/app.js"></script>
</body>
</html>
`;
}
