// The page's script: every couple of seconds it fetches the state and redraws with the same
// render functions the server used. It is sent as their source text, so it is type-checked
// with the rest (tsconfig has the DOM library) and needs no bundler or framework.
import type { DashboardState } from "./model.ts";
import {
  escapeHtml,
  formatExpiry,
  formatMs,
  formatRate,
  formatShare,
  layoutGraph,
  proxyState,
  renderFilters,
  renderGraph,
  renderProxies,
} from "./render.ts";

/** Runs in the browser only. */
function startPolling(stateUrl: string, intervalMs: number): void {
  const byId = (id: string) => {
    const element = document.getElementById(id);
    if (element === null) throw new Error(`the dashboard page has no #${id}`);
    return element;
  };
  const status = byId("status");
  const draw = (state: DashboardState) => {
    byId("graph").innerHTML = renderGraph(state);
    byId("proxies").innerHTML = renderProxies(state);
    byId("filters").innerHTML = renderFilters(state);
    byId("updated").textContent = state.generatedAt;
    document.body.dataset.generatedAt = state.generatedAt;
  };
  const poll = async () => {
    try {
      const response = await fetch(stateUrl, { cache: "no-store", headers: { accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      draw((await response.json()) as DashboardState);
      status.textContent = "live";
      status.className = "live";
    } catch (e) {
      status.textContent = `cannot reach the control plane (${(e as Error).message}), retrying`;
      status.className = "bad";
    }
    setTimeout(poll, intervalMs);
  };
  setTimeout(poll, intervalMs);
}

/** The script for the page at `stateUrl`'s dashboard. */
export function clientScript(stateUrl: string, intervalMs: number): string {
  const functions = [
    escapeHtml,
    formatRate,
    formatShare,
    formatMs,
    formatExpiry,
    proxyState,
    layoutGraph,
    renderGraph,
    renderProxies,
    renderFilters,
  ];
  // Called as an expression, not by name: a bundler may rename the declaration.
  return `"use strict";\n(() => {\n${functions.map(String).join("\n\n")}\n\n(${String(startPolling)})(${JSON.stringify(stateUrl)}, ${intervalMs});\n})();\n`;
}
