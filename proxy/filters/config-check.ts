// A WasmFilter's config is checked against the JSON Schema the filter ships in its manifest
// (the same validator `weft filter test` and the control plane use).
import type { FilterManifest } from "./module.ts";
import { validateConfig } from "../../shared/filter-config-schema.ts";

export function checkFilterConfig(manifest: FilterManifest | null, config: unknown): string[] {
  if (!manifest || manifest.configSchema === undefined) return [];
  return validateConfig(manifest.configSchema, config);
}
